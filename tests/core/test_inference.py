"""Inference: probabilities at the input size (whole image and sliding windows) and evaluation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ovseg_core import inference
from ovseg_core.config import preset
from ovseg_core.data import open_dataset, write_synthetic_dataset
from ovseg_core.device import pick_runtime
from ovseg_core.inference import (
    _starts,
    evaluate,
    predict_labels,
    predict_probabilities,
    upsampled_argmax,
)
from ovseg_core.metrics import ConfusionMatrix
from ovseg_core.modeling.build import build_model
from ovseg_core.visualize import ALPHA, _edges, class_colours, overlay, palette, panels

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


def test_upsampled_argmax_in_class_chunks_is_the_whole_argmax(monkeypatch):
    """Chunks of 2 classes (LABEL_CHUNK_ELEMENTS lowered) give the argmax of the whole resize,
    the first class among equals: classes 3 and 5 copy 1, so they can only lose."""
    torch.manual_seed(1)
    scores = torch.randn(2, 7, 9, 13)
    scores[:, 1] += 2.0  # class 1 (and its copies) wins often
    scores[:, 3] = scores[:, 1]
    scores[:, 5] = scores[:, 1]
    size = (40, 30)
    monkeypatch.setattr(inference, "LABEL_CHUNK_ELEMENTS", 2 * 2 * 40 * 30)
    whole = F.interpolate(scores, size=size, mode="bilinear", align_corners=False).argmax(dim=1)
    labels = upsampled_argmax(scores, size)
    assert labels.shape == (2, 40, 30) and (labels == 1).any()
    assert torch.equal(labels, whole)
    assert not ((labels == 3) | (labels == 5)).any()


def test_forward_at_decoder_resolution_resizes_to_its_logits(model):
    text = model.encode_vocabulary(["sky", "grass", "road"])
    images = torch.rand(1, 3, 40, 70)
    with torch.no_grad():
        full = model(images, text).logits
        low = model(images, text, upsample=False).logits
    assert low.shape[:2] == (1, 3) and low.shape[-2:] != (40, 70)
    up = F.interpolate(low, size=(40, 70), mode="bilinear", align_corners=False)
    assert torch.equal(up, full)


@pytest.mark.parametrize("kwargs", [{}, {"size": 64}, {"size": 32, "sliding": True}])
def test_labels_are_the_argmax_of_the_probabilities(model, kwargs, monkeypatch):
    """`predict_labels` (a few classes resized at a time) labels every pixel as the argmax of
    `predict_probabilities` (every class resized at once) does: whole image, resized first,
    sliding."""
    monkeypatch.setattr(inference, "LABEL_CHUNK_ELEMENTS", 2 * 40 * 70)
    text = model.encode_vocabulary(["sky", "grass", "road", "tree", "car"])
    images = torch.rand(2, 3, 40, 70)
    probs, _ = predict_probabilities(model, images, text, CPU, **kwargs)
    labels = predict_labels(model, images, text, CPU, **kwargs)
    assert labels.shape == (2, 40, 70) and len(labels.unique()) > 1
    assert torch.equal(labels, probs.argmax(dim=1))


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
    named = class_colours(target.class_names)
    cls = int(label[label != 0][0]) if (label != 0).any() else 0
    inside = (label == cls) & ~_edges(label)
    ys, xs = np.nonzero(inside)
    expected = ((1 - ALPHA) * image[ys[0], xs[0]] + ALPHA * named[cls]).astype(np.uint8)
    np.testing.assert_allclose(picture[ys[0], xs[0]], expected, atol=1)
    ys, xs = np.nonzero((label == cls) & _edges(label))
    np.testing.assert_array_equal(picture[ys[0], xs[0]], named[cls])  # outlined at full colour
    row = panels([image, picture], ["image", "overlay"])
    assert row.shape[1] == image.shape[1] + picture.shape[1] + 4
