"""`ovseg predict`'s label map of one large image with a large vocabulary: time and peak memory.

The model returns logits at its input's size, N x H x W floats; `predict_probabilities` turns
them into probabilities of the same size. Prints the seconds of one `predict_label_map` call
(the tiny random preset, `N` class names, a random `H` x `W` photo), a checksum of the label
map (to compare two versions of the code) and the process's peak RSS.

    uv run python benchmarks/bench_predict_large.py [--size 3000x4000] [--classes 150]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from ovseg_core.config import preset
from ovseg_core.device import pick_runtime
from ovseg_core.inference import predict_label_map
from ovseg_core.modeling.build import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="3000x4000", help="H x W of the photo (px)")
    parser.add_argument("--classes", type=int, default=150)
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


if __name__ == "__main__":
    main()
