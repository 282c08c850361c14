"""Where SAM's refined mask departs from the label, in pixels and pictures: one image.

Runs refine-check's own steps (`check_sample`: the label degraded through the 24x24 grid, its
regions refined by the real MobileSAM with the defaults) on one image of a built-in set (or of
a VOC folder) and writes two overlays: `<image>_refined.png` and `<image>_coarse.png`, red
where the mask adds pixels the label does not have, blue where it drops label pixels (as
`ovseg refine-check --pictures` paints them). Prints those counts per class and the IoUs with
a band of 0, 2, 3, 5 and 8 px around the label's edge ignored (is the loss at the edge?).

    uv run --extra dev python studies/refine_picture.py --set quokka --out out/pictures
    uv run python studies/refine_picture.py --voc out/scenetext --image word01
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

BANDS = (0, 2, 3, 5, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="quokka", choices=("voc", "arc2017", "quokka"))
    parser.add_argument("--voc", metavar="FOLDER", default=None,
                        help="instead of --set, a VOC-layout folder (as refine-check reads it)")
    parser.add_argument("--image", default=None, help="image id in --voc (default: the first)")
    parser.add_argument("--out", default="out/pictures")
    args = parser.parse_args()
    import torch
    from PIL import Image

    from ovseg_core.modeling.sam_encoder import build_sam
    from ovseg_core.selftrain import SamRefiner
    from ovseg_core.selftrain import refine_check as rc
    from ovseg_core.visualize import errors_overlay

    names, sample = pick_sample(args.voc, args.image, args.set)
    background = 0 if names[0].lower() in rc.BACKGROUND_NAMES else None
    refiner = SamRefiner(build_sam("vit_t", None))  # the real MobileSAM, refine-check's defaults
    with torch.inference_mode():  # refine-check's own steps on this one image
        pairs, _, coarse, refined = rc.check_sample(refiner, sample, len(names), background)
    maps = {"coarse": coarse, "refined": refined}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    classes = [p["class_id"] for p in pairs]
    for kind, pred in maps.items():
        for c in classes:
            gt, mask = sample.label == c, pred == c
            ious = " ".join(f"{b}px {band_iou(mask, gt, b):.4f}" for b in BANDS)
            print(f"{kind:8s} {names[c]}: adds {int((mask & ~gt).sum())}, drops "
                  f"{int((gt & ~mask).sum())}; IoU with the edge band ignored: {ious}")
        Image.fromarray(errors_overlay(sample.rgb, pred, sample.label, classes, rc.VOC_VOID)).save(
            out / f"{sample.image_id}_{kind}.png")
    print(f"pictures in {out}/")


def pick_sample(voc: str | None, image: str | None, builtin: str):
    """(class names, VocSample): image `image` (default: the first) of the VOC folder `voc`,
    else the first image of the built-in set `builtin`."""
    from ovseg_core.selftrain import refine_check as rc

    if voc is None:
        data = rc.builtin_sets()[builtin]
        return data.names, data.samples[0]
    names, samples = rc.read_voc_folder(voc)
    chosen = [s for s in samples if image in (None, s.image_id)]
    if not chosen:
        ids = ", ".join(s.image_id for s in samples)
        raise SystemExit(f"--image {image}: not in {voc} ({ids})")
    return names, chosen[0]


def band_iou(mask: np.ndarray, gt: np.ndarray, band: int) -> float:
    """IoU of two (H, W) bool masks over the pixels farther than `band` px from gt's edge."""
    from scipy import ndimage

    keep = np.ones_like(gt)
    if band:
        keep = ~(ndimage.binary_dilation(gt, iterations=band)
                 & ~ndimage.binary_erosion(gt, iterations=band))
    union = ((mask | gt) & keep).sum()
    return float((mask & gt & keep).sum() / union) if union else 1.0


if __name__ == "__main__":
    main()
