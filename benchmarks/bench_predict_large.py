"""`ovseg predict`'s label map of one large image with a large vocabulary: time and peak memory.

`predict_label_map` takes the model's logits at the decoder's resolution and resizes them to
the image a few classes at a time, keeping a running argmax (`inference.upsampled_argmax`),
so it never holds N x H x W logits. Prints the seconds of one `predict_label_map` call (the
tiny random preset, `N` class names, a random `H` x `W` photo), a checksum of the label map
(to compare two versions of the code) and the process's peak RSS. With `--compare`, also the
argmax of the softmax of the full-size logits (N x H x W x 8 bytes more): how many pixels
differ and the largest logit gap between the two labels there (float ties of the softmax,
where argmax of the logits is the exact one).

    uv run python benchmarks/bench_predict_large.py [--size 3000x4000] [--classes 150] [--compare]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from ovseg_core.config import preset
from ovseg_core.data.transforms import to_model_input
from ovseg_core.device import pick_runtime
from ovseg_core.inference import predict_label_map
from ovseg_core.modeling.build import build_model
from storage.results import figure, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="3000x4000", help="H x W of the photo (px)")
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--compare", action="store_true",
                        help="also the argmax of the full-size softmax")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(0)
    model = build_model(preset("tiny")).eval()
    with torch.no_grad():
        text = model.encode_vocabulary([f"class {i}" for i in range(args.classes)])
    image = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    start = time.perf_counter()
    label = predict_label_map(model, image, text, pick_runtime("cpu"))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    print(f"{h}x{w}, {args.classes} classes: {seconds:.1f} s, label checksum "
          f"{int(label.astype(np.int64).sum())}, peak RSS {peak:.2f} GiB")
    record(f"predict_large_{h}x{w}_c{args.classes}",
           [figure("predict_label_map", round(seconds, 1), "s"),
            figure("peak RSS", round(peak, 2), "GiB")],
           title=f"`ovseg predict`'s label map of one {h}x{w} image, {args.classes} classes "
                 "(tiny preset, CPU)")
    if args.compare:
        compare(model, image, text, torch.from_numpy(label.astype(np.int64)))


@torch.no_grad()
def compare(model, image: np.ndarray, text: torch.Tensor, label: torch.Tensor) -> None:
    """Prints where `label` (H, W) differs from the argmax of the full-size softmax."""
    logits = model(torch.from_numpy(to_model_input(image))[None], text).logits[0].float()
    old = logits.softmax(dim=0).argmax(dim=0)
    differ = old != label
    gap = (logits.gather(0, label[None]) - logits.gather(0, old[None]))[0][differ]
    largest = f", largest logit gap there {gap.abs().max().item():.1e}" if len(gap) else ""
    print(f"argmax of the full-size softmax: {int(differ.sum())} of {label.numel()} pixels "
          f"differ{largest} (logits span {logits.min().item():.3f} to {logits.max().item():.3f})")


if __name__ == "__main__":
    main()
