"""SAMRefiner's token choice, IoU adaptation and elastic box, measured on refine-check's sets.

SAMRefiner (ICLR 2025) turns a coarse mask into prompts and then (1) keeps the one of SAM's
three multimask outputs with the highest predicted IoU, (2) optionally adapts SAM's IoU
prediction to the target data first ("IoU adaptation": the three outputs of every coarse mask
of the data are ranked by their IoU with that coarse mask and SAM's IoU prediction is trained,
with a margin ranking loss, to rank them so; no labels), and (3) grows the box prompt where the
image around the box looks like the object (a "context-aware elastic box"). ovseg's refiner
keeps SAM's single-mask token instead and grows every box by a fixed cell. This script
measures each of SAMRefiner's pieces against ovseg's defaults, one change at a time, with
refine-check's protocol (every class mask degraded through a 24 x 24 grid, its regions refined,
IoU per (image, class); the painting, band and acceptance are the defaults):

- `defaults`: ovseg's refiner as shipped (single-mask token);
- `multi, SAM's IoU`: SAMRefiner's choice, the multimask token with the highest predicted IoU;
- `multi, IoU-adapted`: the same choice after IoU adaptation on the set's own regions (a copy of
  SAM's IoU head trained on the head's inputs, full batch, Adam; ovseg's prompts, not the
  box-only prompts SAMRefiner trains with, so that training and use see the same prompts);
  acceptance keeps SAM's own predicted IoU, which the ranking loss does not calibrate;
- `multi, agreement`: the multimask token that agrees best with the coarse mask, the ranking
  IoU adaptation is trained to reproduce (used directly);
- `N iterations`: SAMRefiner's iteration (its code's default is 5): each trusted SAM mask, whole,
  becomes the coarse mask that the next iteration's prompts are made from; the last one is
  judged and banded against the original region as usual;
- `tight box`: the box prompt without ovseg's one-cell margin (the elastic box's start);
- `elastic box T`: the region's tight box, each side moved out one cost-volume cell at a time
  (at most `--elastic-cells`) while the strip just beyond it looks like the region in SAM's
  image embedding: the strip's mean embedding has cosine similarity >= T x the mean similarity
  of the region's own embedding cells to the region's mean (my reading of the paper's text).

Each image is encoded once. Sets: the dev extra's voc / arc2017 / quokka and the halves of the
first two, and any VOC folders or COCO files given (for example those the `*_voc.py` scripts
write):

    uv run --extra dev python studies/samrefiner_parts.py out/nuclei out/scenetext \\
        out/radiomics out/labelme/voc out/labelme/apc
"""

from __future__ import annotations

import argparse
import copy
import hashlib
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint
from ovseg_core.selftrain import SamRefiner
from ovseg_core.selftrain.prompts import RegionPrompts, SamFrame
from ovseg_core.selftrain.refine_check import (
    LabelledSet,
    builtin_sets,
    check_set,
    halves,
    read_labelled,
)
from ovseg_core.selftrain.refiner import RefinedRegion, RefinerSettings, mask_iou
from ovseg_core.selftrain.regions import DEFAULT_GATE, Region, mask_bbox
from storage.results import figure, record

MULTIMASK = [1, 2, 3]
"""SAM's multimask tokens (token 0 is its single-mask output)."""


class StudyRefiner(SamRefiner):
    """ovseg's refiner with SAMRefiner's pieces switchable: `choice` ("single", "iou",
    "adapted", "agreement"), `adapted_head` (a trained copy of SAM's IoU head), `elastic`
    (None or the similarity ratio T) and `elastic_cells`. Embeddings are cached per image,
    and the IoU head's inputs of the last decoder pass kept (`features`, (J, C))."""

    def __init__(self, parts, settings: RefinerSettings | None = None) -> None:
        super().__init__(parts, settings)
        self.choice, self.adapted_head = "single", None
        self.elastic: float | None = None
        self.elastic_cells = 2
        self.moved = [0, 0, 0]  # elastic box: sides moved, sides seen, cells moved
        self.iterations = 1
        self.features: Tensor | None = None
        self.records: list[tuple[Tensor, np.ndarray]] = []  # (features (C,), agreements (3,))
        self._cache: dict[str, Tensor] = {}
        parts.mask_decoder.iou_prediction_head.register_forward_hook(self._keep_features)

    def _keep_features(self, module: nn.Module, inputs: tuple[Tensor], output: Tensor) -> None:
        self.features = inputs[0].detach()

    def encode(self, images: Tensor) -> Tensor:
        key = hashlib.sha1(images.cpu().numpy().tobytes()).hexdigest()
        if key not in self._cache:
            self._cache[key] = super().encode(images)
        return self._cache[key]

    def refine_batch(self, embeddings, image_sizes, probs, threshold=DEFAULT_GATE):
        """With `iterations` > 1, SAMRefiner's iteration: each trusted SAM mask (whole, no
        band) becomes the next iteration's coarse mask, and prompts are made from it again;
        the last iteration's mask is then judged and banded against the original region."""
        if self.iterations == 1:
            return super().refine_batch(embeddings, image_sizes, probs, threshold)
        band, self.settings = self.settings.band, replace(self.settings, band=None)
        try:
            current = super().refine_batch(embeddings, image_sizes, probs, threshold)
            originals = [[r.region for r in rs] for rs in current]
            for _ in range(self.iterations - 1):
                current = super().refine_batch(embeddings, image_sizes,
                                               [[as_region(r) for r in rs] for rs in current],
                                               threshold)
        finally:
            self.settings = replace(self.settings, band=band)
        return [[self._judge(o, r.refined_mask, r.sam_iou) if r.gated else r
                 for o, r in zip(os_, rs, strict=True)]
                for os_, rs in zip(originals, current, strict=True)]

    def _pick(self, frames, regions, jobs, low, iou):
        if self.choice == "single":
            return super()._pick(frames, regions, jobs, low, iou)
        ranking = iou if self.adapted_head is None else self.adapted_head(self.features)
        out = []
        for k, (i, j) in enumerate(jobs):
            region = regions[i][j]
            logits = frames[i].masks_to_image(low[k:k + 1, MULTIMASK])[0]  # (3, h, w)
            masks = (logits > self.settings.mask_threshold).cpu().numpy()
            agree = np.array([mask_iou(m, region.mask) for m in masks])
            self.records.append((self.features[k].clone(), agree))
            score = agree if self.choice == "agreement" else ranking[k, MULTIMASK].cpu().numpy()
            best = int(np.argmax(score))
            out.append((masks[best], float(iou[k, MULTIMASK[best]])))
        return out

    def _prompts(self, embeddings, frames, regions, jobs) -> RegionPrompts:
        prompts = super()._prompts(embeddings, frames, regions, jobs)
        if self.elastic is None:
            return prompts
        grown = [elastic_box(regions[i][j], frames[i], embeddings[i], self.elastic,
                             self.elastic_cells, self.settings.band) for i, j in jobs]
        for _, cells in grown:
            self.moved[0] += sum(c > 0 for c in cells)
            self.moved[1] += 4
            self.moved[2] += sum(cells)
        boxes = [frames[i].boxes(np.array(box)) for (i, _), (box, _) in zip(jobs, grown,
                                                                             strict=True)]
        prompts.boxes = torch.as_tensor(np.stack(boxes), dtype=torch.float32,
                                        device=embeddings.device)
        return prompts


def as_region(refined: RefinedRegion) -> Region:
    """The region an iteration prompts from: a trusted SAM mask, else the region itself."""
    r = refined.region
    if not (refined.accepted and refined.refined_mask.any()):
        return r
    mask = refined.refined_mask
    return Region(r.class_id, mask, r.confidence, int(mask.sum()), mask_bbox(mask))


def embedding_weights(mask: np.ndarray, frame: SamFrame, grid: int) -> np.ndarray:
    """(grid, grid) share of each embedding cell covered by the (h, w) bool `mask`, in SAM's
    resized and bottom-right padded frame."""
    nh, nw = frame.resized
    m = torch.as_tensor(mask, dtype=torch.float32)[None, None]
    m = F.interpolate(m, size=(nh, nw), mode="bilinear", align_corners=False)
    m = F.pad(m, (0, frame.image_size - nw, 0, frame.image_size - nh))
    return F.interpolate(m, size=(grid, grid), mode="area")[0, 0].numpy()


def elastic_box(region: Region, frame: SamFrame, embedding: Tensor, ratio: float,
                max_cells: int, band: float
                ) -> tuple[tuple[int, int, int, int], list[int]]:
    """The region's tight XYXY box, each side moved out by whole cells (band x longest side,
    at most `max_cells`) while the strip of one cell beyond it resembles the region.

    embedding: (C, g, g) SAM image embedding. A strip resembles the region when the cosine
    similarity of its mean embedding to the region's mean embedding is >= `ratio` x the mean
    similarity of the region's own cells to that mean. Returns the box and the cells each
    side (x0, y0, x1, y1) moved.
    """
    grid = embedding.shape[-1]
    feats = F.normalize(embedding.float().flatten(1).T, dim=1).cpu().numpy()  # (g*g, C)
    inside = embedding_weights(region.mask, frame, grid).ravel()
    if inside.sum() <= 0:
        return region.bbox, [0, 0, 0, 0]
    proto = (feats * inside[:, None]).sum(0)
    proto /= np.linalg.norm(proto) + 1e-8
    own = float((feats @ proto * inside).sum() / inside.sum())
    cell = max(1, round(band * max(frame.height, frame.width)))
    box, moved = list(region.bbox), [0, 0, 0, 0]
    limits = (0, 0, frame.width, frame.height)
    for side, sign in ((0, -1), (1, -1), (2, 1), (3, 1)):
        for _ in range(max_cells):
            edge = box[side]
            new = min(edge + cell, limits[side]) if sign > 0 else max(edge - cell, limits[side])
            if new == edge:
                break
            strip = np.zeros((frame.height, frame.width), bool)
            lo, hi = sorted((edge, new))
            if side in (0, 2):
                strip[box[1]:box[3], lo:hi] = True
            else:
                strip[lo:hi, box[0]:box[2]] = True
            w = embedding_weights(strip, frame, grid).ravel()
            if w.sum() <= 0:
                break
            mean = (feats * w[:, None]).sum(0)
            similarity = float(mean @ proto / (np.linalg.norm(mean) + 1e-8))
            if similarity < ratio * own:
                break
            box[side] = new
            moved[side] += 1
    return tuple(box), moved


def adapt_head(head: nn.Module, records: list[tuple[Tensor, np.ndarray]], steps: int = 200,
               lr: float = 1e-4, margin: float = 0.02) -> tuple[nn.Module, float]:
    """A copy of SAM's IoU head trained so its multimask predictions rank each region's three
    outputs as their agreement with the coarse mask does (margin ranking loss, full batch);
    returns it and its top-1 agreement with that ranking after training."""
    adapted = _copy(head)
    x = torch.stack([f for f, _ in records]).float().clone()
    target = torch.as_tensor(np.array([int(np.argmax(a)) for _, a in records]))
    opt = torch.optim.Adam(adapted.parameters(), lr=lr)
    rows = torch.arange(len(records))
    for _ in range(steps):
        pred = adapted(x)[:, MULTIMASK]  # (M, 3)
        positive = pred[rows, target]
        loss = sum(F.relu(margin - (positive - pred[:, k])).masked_fill(target == k, 0).sum()
                   for k in range(3)) / len(records)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        hit = float((adapted(x)[:, MULTIMASK].argmax(1) == target).float().mean())
    adapted.eval()
    return adapted, hit


def _copy(head: nn.Module) -> nn.Module:
    out = copy.deepcopy(head)
    for p in out.parameters():
        p.requires_grad_(True)
    return out


def all_sets(roots: list[str]) -> dict[str, LabelledSet]:
    sets = builtin_sets()
    sets["voc halves"] = halves(sets["voc"])
    sets["arc2017 halves"] = halves(sets["arc2017"])
    for root in roots:
        names, samples = read_labelled(root)
        sets[root] = LabelledSet(names, samples)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", help="VOC folders or COCO files to add")
    parser.add_argument("--elastic", type=float, nargs="*", default=[0.8, 0.9],
                        help="similarity ratios T of the elastic box")
    parser.add_argument("--elastic-cells", type=int, default=2)
    parser.add_argument("--iterations", type=int, nargs="*", default=[2, 5],
                        help="SAMRefiner's iterations (its default: 5)")
    parser.add_argument("--adapt-steps", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    refiner = StudyRefiner(build_sam("vit_t", default_sam_checkpoint("vit_t")))
    sets = all_sets(args.roots)
    variants = [("defaults", {}), ("multi, SAM's IoU", {"choice": "iou"}),
                ("multi, IoU-adapted", {"choice": "adapted"}),
                ("multi, agreement", {"choice": "agreement"})]
    variants += [(f"{n} iterations", {"iterations": n}) for n in args.iterations]
    variants += [("tight box", {"box_margin": 0.0})]
    variants += [(f"elastic box {t:g}", {"elastic": t, "box_margin": 0.0}) for t in args.elastic]
    print("refined - coarse mIoU (points) per set; coarse mIoU in the header")
    rows: dict[str, dict[str, float]] = {}
    coarse: dict[str, float] = {}
    for label, variant in variants:
        rows[label] = {}
        for name, data in sets.items():
            set_variant(refiner, variant)
            if variant.get("choice") == "adapted":
                refiner.choice, refiner.records = "agreement", []
                with torch.inference_mode():
                    check_set(data, refiner)  # collects the head's inputs and the rankings
                head, hit = adapt_head(refiner.parts.mask_decoder.iou_prediction_head,
                                       refiner.records, args.adapt_steps)
                refiner.choice, refiner.adapted_head = "adapted", head
                print(f"  {name}: IoU adaptation on {len(refiner.records)} regions, "
                      f"top-1 agreement with the coarse ranking {hit:.2f}", flush=True)
            with torch.inference_mode():
                result = check_set(data, refiner)
            coarse[name] = result.coarse_miou
            rows[label][name] = 100 * (result.refined_miou - result.coarse_miou)
        moved = (f" (box sides moved out: {refiner.moved[0]} of {refiner.moved[1]}, "
                 f"{refiner.moved[2]} cells)" if "elastic" in variant else "")
        print(f"{label:22s} " + " ".join(f"{n} {d:+.1f}" for n, d in rows[label].items())
              + moved, flush=True)
        refiner.moved = [0, 0, 0]
    print_table(rows, coarse)
    record("samrefiner_parts", [
        figure(f"{label}: refined - coarse per set",
               ", ".join(f"{n} {d:+.1f}" for n, d in deltas.items()), "points")
        for label, deltas in rows.items()], kind="study",
        title="SAMRefiner's token choice, IoU adaptation, iteration and elastic box")


def set_variant(refiner: StudyRefiner, variant: dict) -> None:
    refiner.choice = variant.get("choice", "single")
    refiner.adapted_head = None
    refiner.elastic = variant.get("elastic")
    refiner.iterations = variant.get("iterations", 1)
    base = RefinerSettings()
    refiner.settings = replace(base, prompts=replace(
        base.prompts, box_margin=variant.get("box_margin", base.prompts.box_margin)))


def print_table(rows: dict[str, dict[str, float]], coarse: dict[str, float]) -> None:
    names = list(coarse)
    print("\n| variant | " + " | ".join(f"{n} ({coarse[n]:.3f})" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for label, row in rows.items():
        print(f"| {label} | " + " | ".join(f"{row[n]:+.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
