"""Inference: probabilities at the input size (whole image and sliding windows) and evaluation."""

import numpy as np
import pytest
import torch
from PIL import Image

from ovseg_core.config import preset
from ovseg_core.data import open_dataset, write_synthetic_dataset
from ovseg_core.device import pick_runtime
from ovseg_core.inference import _starts, evaluate, predict_probabilities
from ovseg_core.metrics import ConfusionMatrix
from ovseg_core.modeling.build import build_model
from ovseg_core.visualize import overlay, palette, panels

CPU = pick_runtime("cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(preset("tiny", input_size=64)).eval()


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    out = write_synthetic_dataset(tmp_path_factory.mktemp("synth"), seed=2, image_size=48,
                                  num_train=0, num_val=0, num_target=3)
    return open_dataset("generic", out / "target")


def test_probabilities_whole_image_and_sliding(model):
    text = model.encode_vocabulary(["sky", "grass", "road"])
    images = torch.rand(2, 3, 40, 70)
    probs, sam = predict_probabilities(model, images, text, CPU)
    assert probs.shape == (2, 3, 40, 70) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 40, 70))
    assert sam is not None and sam.shape[0] == 2
    resized, _ = predict_probabilities(model, images, text, CPU, size=64)
    assert resized.shape == (2, 3, 40, 70)
    slid, sam_none = predict_probabilities(model, images, text, CPU, size=32, sliding=True)
    assert slid.shape == (2, 3, 40, 70) and sam_none is None
    torch.testing.assert_close(slid.sum(1), torch.ones(2, 40, 70))
    assert not torch.allclose(slid, probs)


def test_whole_image_probabilities_are_the_softmax_of_the_models_logits(model):
    """The model returns logits at the image's size, so `predict_probabilities` no longer
    resizes them; this pins its output to what the resize gave (bitwise)."""
    text = model.encode_vocabulary(["sky", "grass", "road"])
    images = torch.rand(1, 3, 40, 70)
    probs, _ = predict_probabilities(model, images, text, CPU)
    with torch.no_grad():
        logits = model(images, text).logits  # already (1, 3, 40, 70)
    resized = torch.nn.functional.interpolate(logits, size=(40, 70), mode="bilinear",
                                              align_corners=False)  # what ran before
    assert torch.equal(probs, resized.softmax(dim=1))


def test_window_starts_cover_the_image():
    assert _starts(100, 64, 42) == [0, 36]
    assert _starts(64, 64, 42) == [0]
    assert _starts(130, 64, 42) == [0, 42, 66]


def test_evaluate_matches_saved_predictions(model, target, tmp_path):
    seen = [True] * 6 + [False] * 3
    result = evaluate(model, target, CPU, seen=seen, save_predictions=tmp_path, progress=False)
    assert result["num_images"] == 3
    assert set(result) >= {"miou", "per_class", "seen_miou", "unseen_miou", "pixel_acc"}
    assert list(result["per_class"]) == target.class_names
    independent = ConfusionMatrix(9, target.class_names)
    for i, image_id in enumerate(target.image_ids):
        saved = np.asarray(Image.open(tmp_path / image_id.split("/")[-1]))
        assert saved.shape == (48, 48)
        independent.update(saved, target[i][1])
    expected = independent.compute(seen)
    for key in ("miou", "per_class", "seen_miou", "unseen_miou", "pixel_acc"):
        assert result[key] == pytest.approx(expected[key]), key
    np.testing.assert_array_equal(independent.counts.sum(), 3 * 48 * 48)


def test_overlay_and_panels(target):
    image, label = target[0]
    picture = overlay(image, label, target.class_names)
    assert picture.dtype == np.uint8 and picture.shape[0] >= 48 and picture.shape[1] > 48
    colours = palette(9)
    assert len({tuple(c) for c in colours}) == 9
    cls = int(label[label != 0][0]) if (label != 0).any() else 0
    ys, xs = np.nonzero(label == cls)
    expected = (0.5 * image[ys[0], xs[0]] + 0.5 * colours[cls]).astype(np.uint8)
    np.testing.assert_allclose(picture[ys[0], xs[0]], expected, atol=1)
    row = panels([image, picture], ["image", "overlay"])
    assert row.shape[1] == image.shape[1] + picture.shape[1] + 4
