"""`ovseg export --format yolo`: Ultralytics segmentation labels of a committed round."""

import dataclasses
from pathlib import Path

import numpy as np
import yaml

from storage.export import export_round
from storage.polygons import mask_polygons
from tests.storage.conftest import make_images

H, W = 24, 32


def commit_named_round(workspace) -> list:
    """Round 1: four images with 3, 0, 2 and 3 regions; class c is named "name c"."""
    images = make_images(4, [3, 0, 2], seed=1, height=H, width=W)
    for image in images:
        image.regions = [dataclasses.replace(r, class_name=f"name {r.class_id}")
                         for r in image.regions]
    workspace.write_shard(1, 0, "k", images)
    workspace.commit_round(1, 1)
    return images


def read_labels(path: Path) -> list[tuple[int, np.ndarray]]:
    """(class index, `(K, 2)` normalised XY) per line of a YOLO label file."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(int(r[0]), np.array(r[1:], dtype=np.float64).reshape(-1, 2)) for r in rows]


def test_yolo_export_writes_one_label_file_per_image(workspace, tmp_path):
    images = commit_named_round(workspace)
    written = export_round(workspace, 1, str(tmp_path), "yolo")
    stems = [im.image_id.rsplit(".", 1)[0] for im in images]
    assert written == [str(tmp_path / "labels" / f"{stem}.txt") for stem in stems]
    for image, stem in zip(images, stems, strict=True):
        expected = [(r.class_id, polygon) for r in image.regions
                    for polygon in mask_polygons(r.refined_mask if r.paints == "refined"
                                                 else r.coarse_mask)]
        labels = read_labels(tmp_path / "labels" / f"{stem}.txt")
        assert len(labels) == len(expected)  # no regions: an empty file
        for (class_id, points), (stored_id, polygon) in zip(labels, expected, strict=True):
            assert class_id == stored_id and len(points) >= 3
            assert (points >= 0).all() and (points <= 1).all()
            np.testing.assert_allclose(points * [W, H], polygon, atol=W * 1e-6)
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    present = {r.class_id for im in images for r in im.regions}
    assert present != set(range(max(present) + 1))  # the data leaves an id out
    assert data["nc"] == max(present) + 1 and data["train"] == data["val"] == "images"
    assert data["names"] == {c: f"name {c}" if c in present else f"class{c}"
                             for c in range(data["nc"])}


def test_yolo_export_follows_the_selection(workspace, tmp_path):
    images = commit_named_round(workspace)
    export_round(workspace, 1, str(tmp_path), "yolo", where="class_id = ?",
                 params=[images[0].regions[0].class_id])
    ids = {class_id for path in (tmp_path / "labels").rglob("*.txt")
           for class_id, _ in read_labels(path)}
    assert ids == {images[0].regions[0].class_id}
    assert len(list((tmp_path / "labels").rglob("*.txt"))) == len(images)


def test_export_command_writes_yolo_labels(workspace, tmp_path, capsys):
    from flows.cli import main

    images = commit_named_round(workspace)
    out = tmp_path / "yolo"
    assert main(["export", "--round", "1", "--format", "yolo", "--out", str(out),
                 "--workspace", workspace.root]) == 0
    assert f"wrote {len(images)} file(s)" in capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["data.yaml"] + sorted(f"labels/{im.image_id.rsplit('.', 1)[0]}.txt" for im in images)
