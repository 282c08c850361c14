"""`ovseg review import` on files the real tools wrote (docs/review.md), trimmed.

fixtures/label_studio_1.23.2_export.json: Label Studio 1.23.2's JSON export (snapshot export,
the UI's Export > JSON) of a project made from `ovseg review export --tool label-studio` of the
built-in world's round 1; the tasks were reviewed in Label Studio's own editor (headless
Chromium): on target_0003.png region r0 relabelled ground -> cyan cross (origin
"prediction-changed"), one region deleted, a 4-point purple bar drawn (origin "manual");
target_0008.png accepted as predicted. Trimmed: 2 of 3 tasks, 8 of 22 results, the
annotation's embedded copy of the prediction without its `result`.

fixtures/cvat_datumaro_0.3_coco.json: what CVAT's COCO 1.0 export writes for
`ovseg review export --tool cvat` of the same round, made with CVAT's own Datumaro fork
(cvat-ai/datumaro 0.3: coco_instances import of annotations.json, export with
save_images=False; the masks kept, as CVAT does with "Convert masks to polygons" off):
uncompressed RLE, iscrowd 1. Trimmed: 7 of 29 annotations, the 2 images they are on.

The expected areas are those of the round's pseudo-label masks as ovseg's CVAT export listed
them (region ids in the comments), except the drawn rectangle.
"""

from pathlib import Path

import numpy as np
import pytest

from storage.query import run_sql
from storage.records import ImageRegions
from storage.review_import import import_review
from storage.rle import decode_masks
from storage.workspace import Workspace

FIXTURES = Path(__file__).parent / "fixtures"
CLASSES = ["ground", "red disk", "blue square", "green triangle", "yellow ring", "purple bar",
           "orange star", "cyan cross", "checkerboard"]
LABEL_STUDIO = {  # (class, area) per image, in the file's order
    "target_0003.png": [("cyan cross", 1738),  # r0, relabelled from ground
                        ("green triangle", 16), ("green triangle", 54),  # r3, r4
                        ("checkerboard", 128),  # r11
                        ("purple bar", 950)],  # drawn: 38 x 25 pixels
    "target_0008.png": [("yellow ring", 32), ("cyan cross", 600),  # r1, r4
                        ("checkerboard", 339)],  # r6
}
DATUMARO = {
    "target_0003.png": [("green triangle", 16), ("green triangle", 54),  # r3, r4
                        ("yellow ring", 808),  # r5: its hole kept (a polygon fills it)
                        ("checkerboard", 128)],  # r11
    "target_0008.png": [("yellow ring", 32), ("purple bar", 395), ("cyan cross", 600)],
}


def round_one(root: str) -> Workspace:
    """A committed round 1 holding the two 128 x 128 images the fixtures annotate."""
    ws = Workspace(root)
    ws.write_shard(1, 0, "k0", [ImageRegions(image_id=name, height=128, width=128,
                                             gate_threshold=0.9, checkpoint_sha256="c" * 64)
                                for name in ("target_0003.png", "target_0008.png")])
    ws.commit_round(1, 1)
    return ws


def imported(ws: Workspace, fixture: str) -> tuple[dict, dict]:
    done = import_review(ws, str(FIXTURES / fixture), CLASSES, round=1)
    rows = run_sql(ws, "SELECT * FROM human_labels WHERE source_sha256 = ? "
                       "ORDER BY image_id, label_id", [done["sha256"]]).to_pylist()
    return done, rows


def by_image(rows: list[dict]) -> dict:
    out = {}
    for row in rows:
        out.setdefault(row["image_id"], []).append((row["class_name"], row["area"]))
    return out


def masks(rows: list[dict], image_id: str) -> np.ndarray:
    rles = [r["rle"] for r in rows if r["image_id"] == image_id]
    return decode_masks(rles, 128, 128)


@pytest.fixture
def ws(tmp_path):
    return round_one(str(tmp_path / "ws"))


def test_label_studio_export_gives_the_reviewed_classes_and_areas(ws):
    done, rows = imported(ws, "label_studio_1.23.2_export.json")
    assert (done["tool"], done["rows"], done["images"]) == ("label-studio", 8, 2)
    assert by_image(rows) == LABEL_STUDIO
    drawn = masks(rows, "target_0003.png")[-1]
    rectangle = np.zeros((128, 128), bool)
    rectangle[77:102, 13:51] = True  # clicked at 10 % / 40 % of the width, 60 % / 80 % height
    assert np.array_equal(drawn, rectangle)
    assert {r["annotator"] for r in rows} == {"1"}  # completed_by: the user's id
    assert rows[0]["annotated_at"] == "2026-11-22T10:28:41.017437Z"  # the annotation's updated_at


def test_cvat_datumaro_export_gives_the_exact_masks(ws):
    done, rows = imported(ws, "cvat_datumaro_0.3_coco.json")
    assert (done["tool"], done["rows"], done["images"]) == ("cvat", 7, 2)
    assert by_image(rows) == DATUMARO


def test_both_tools_give_the_same_pixels_for_the_same_regions(ws):
    _, studio = imported(ws, "label_studio_1.23.2_export.json")
    _, cvat = imported(ws, "cvat_datumaro_0.3_coco.json")
    for image_id, pairs in {"target_0003.png": [(1, 0), (2, 1), (3, 3)],  # r3, r4, r11
                            "target_0008.png": [(0, 0), (1, 2)]}.items():  # r1, r4
        a, b = masks(studio, image_id), masks(cvat, image_id)
        for i, j in pairs:
            assert a[i].sum() > 0 and np.array_equal(a[i], b[j])
