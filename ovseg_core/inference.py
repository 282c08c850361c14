"""Inference: class probabilities or label maps for a batch (whole-image or sliding windows),
and dataset evaluation.

The paper's protocol resizes every image to `input_size` x `input_size` (768), predicts, and
resizes the logits back to the image's size. Sliding-window inference instead resizes the short
side to `size` and averages softmax probabilities over overlapping `size` x `size` windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ovseg_core.data.io import write_label
from ovseg_core.data.transforms import to_model_input
from ovseg_core.device import Runtime
from ovseg_core.metrics import ConfusionMatrix
from ovseg_core.modeling.decoder import resize_bilinear
from ovseg_core.progress import track


def model_input_size(model) -> int:
    """The model's configured CLIP input side in px (`model.config.input_size`), 768 by default."""
    config = getattr(model, "config", None)
    return int(getattr(config, "input_size", 768))


# Upsampled scores held at once when a label map is made a few classes at a time: 16 Mi floats
# (64 MiB). One image's N x H x W at once is 7.2 GB for 150 classes on 12 MP.
LABEL_CHUNK_ELEMENTS = 1 << 24


@torch.no_grad()
def predict_probabilities(model, images: torch.Tensor, text: torch.Tensor, runtime: Runtime,
                          size: int | None = None, sliding: bool = False,
                          stride_ratio: float = 2 / 3) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax class probabilities at the input resolution.

    images: float (B, 3, H, W) in [0, 1]; text: the model's `encode_vocabulary` output (N, P, D).
    size: whole image: None = the images as given (the model resizes its CLIP input to
    `config.input_size`, the paper's 768 protocol, and SAM sees the true aspect ratio), or a side
    to resize to first (size x size). Sliding: the short side is resized to `size` (None = the
    model's input size) and windows are size x size. Returns (probs float32 (B, N, H, W) on the
    runtime device, sam_embedding (B, C, s, s) or None; None with sliding windows).
    """
    images = images.to(runtime.device, dtype=torch.float32)
    height, width = images.shape[-2:]
    if sliding:
        probs = _sliding_probabilities(model, images, text, runtime, size, stride_ratio)
        return resize_bilinear(probs, (height, width)), None
    logits, sam_embedding = _decoder_logits(model, images, text, runtime, size)
    return resize_bilinear(logits, (height, width)).softmax(dim=1), sam_embedding


@torch.no_grad()
def predict_labels(model, images: torch.Tensor, text: torch.Tensor, runtime: Runtime,
                   size: int | None = None, sliding: bool = False,
                   stride_ratio: float = 2 / 3) -> torch.Tensor:
    """int64 (B, H, W) class ids: the argmax over classes at the input resolution.

    The same inputs and protocols as `predict_probabilities`, and the argmax of its
    probabilities (but where two classes' softmax values tie in float32 and their logits do
    not: the larger logit wins here). The resize to (H, W) runs a few classes at a time
    (`upsampled_argmax`), never N x H x W at once.
    """
    images = images.to(runtime.device, dtype=torch.float32)
    height, width = images.shape[-2:]
    if sliding:
        scores = _sliding_probabilities(model, images, text, runtime, size, stride_ratio)
    else:
        scores, _ = _decoder_logits(model, images, text, runtime, size)
    return upsampled_argmax(scores, (height, width))


def _decoder_logits(model, images, text, runtime, size: int | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Whole image: float32 logits (B, N, h, w) at the decoder's resolution (the images first
    resized to size x size when `size` is given) and the SAM embedding (or None)."""
    resized = images if size is None else resize_bilinear(images, (size, size))
    with runtime.autocast():
        output = model(resized, text, upsample=False)
    return output.logits.float(), output.sam_embedding


def upsampled_argmax(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """scores (B, N, h, w) -> int64 (B, *size): `resize_bilinear(scores, size).argmax(dim=1)`
    (ties: the first class). Resizes as many classes at a time as fit LABEL_CHUNK_ELEMENTS and folds
    them in one plane at a time (elementwise ops: a max reduction over a chunk's class
    dimension is slower on the CPU than the resize itself)."""
    per = max(1, LABEL_CHUNK_ELEMENTS // (scores.shape[0] * size[0] * size[1]))
    best = labels = better = None
    for start in range(0, scores.shape[1], per):
        chunk = resize_bilinear(scores[:, start:start + per], size)
        for offset in range(chunk.shape[1]):
            plane = chunk[:, offset]
            if best is None:
                best = plane.clone()
                labels = torch.zeros(plane.shape, dtype=torch.int64, device=plane.device)
                better = torch.empty(plane.shape, dtype=torch.bool, device=plane.device)
                continue
            torch.gt(plane, best, out=better)  # strict: an equal later class loses, as in argmax
            torch.maximum(best, plane, out=best)
            labels.masked_fill_(better, start + offset)
    return labels


def _sliding_probabilities(model, images, text, runtime, size: int | None,
                           stride_ratio: float) -> torch.Tensor:
    """Softmax probabilities averaged over size x size windows: (B, N, h, w) at the resized
    scale (short side `size`, default the model's input size); callers resize to the image."""
    size = size or model_input_size(model)
    height, width = images.shape[-2:]
    scale = size / min(height, width)
    h, w = max(size, round(height * scale)), max(size, round(width * scale))
    resized = resize_bilinear(images, (h, w))
    stride = max(1, int(size * stride_ratio))
    total = counts = None
    for top in _starts(h, size, stride):
        for left in _starts(w, size, stride):
            window = resized[..., top:top + size, left:left + size]
            with runtime.autocast():
                probs = model(window, text).logits.float().softmax(dim=1)
            if total is None:
                total = images.new_zeros((images.shape[0], probs.shape[1], h, w))
                counts = images.new_zeros((1, 1, h, w))
            total[..., top:top + size, left:left + size] += probs
            counts[..., top:top + size, left:left + size] += 1
    return total / counts


def _starts(length: int, size: int, stride: int) -> list[int]:
    """Window offsets covering [0, length) with windows of `size` (the last one flush right)."""
    starts = list(range(0, max(length - size, 0) + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def predict_label_map(model, image: np.ndarray, text: torch.Tensor, runtime: Runtime,
                      size: int | None = None, sliding: bool = False) -> np.ndarray:
    """uint8 (H, W, 3) image -> uint16 (H, W) argmax class ids (`predict_labels`)."""
    batch = torch.from_numpy(to_model_input(image))[None]
    labels = predict_labels(model, batch, text, runtime, size=size, sliding=sliding)
    return labels[0].to(torch.int32).cpu().numpy().astype(np.uint16)


def evaluate(model, dataset, runtime: Runtime, seen: Sequence[bool] | None = None,
             save_predictions: Path | None = None, size: int | None = None, sliding: bool = False,
             progress: bool = True, limit: int | None = None, desc: str = "evaluate") -> dict:
    """mIoU of `model` on a labelled dataset (`class_names`, `image_ids`,
    `ds[i] -> (image, label)`).

    Returns ConfusionMatrix.compute's dict (percent) plus "num_images" and "confusion" (N x N
    pixel counts, rows: the label's class, columns: the predicted class). With `save_predictions`,
    each predicted label map is written there under the image's file name (PNG below 255
    classes, else 16-bit TIFF).
    """
    names = list(dataset.class_names)
    model.to(runtime.device).eval()
    with torch.no_grad():
        text = model.encode_vocabulary(names)
    matrix = ConfusionMatrix(len(names), names)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in track(range(count), desc, unit="images", disable=not progress):
        image, label = dataset[index]
        pred = predict_label_map(model, image, text, runtime, size=size, sliding=sliding)
        matrix.update(pred, label)
        if save_predictions is not None:
            write_label(Path(save_predictions) / Path(dataset.image_ids[index]).name, pred,
                        len(names))
    result = matrix.compute(seen)
    result["num_images"] = count
    result["confusion"] = matrix.counts.tolist()
    return result
