"""Turn `ImageRegions` into the Arrow tables of one shard (masks RLE-encoded)."""

from __future__ import annotations

import pyarrow as pa

from storage.errors import StorageError
from storage.records import ImageRegions
from storage.rle import encode_masks, rle_areas
from storage.schema import IMAGES_SCHEMA, PSEUDO_LABEL_SCHEMA
from storage.terms import IGNORE_INDEX, PAINTS, REFINED


def _image_columns(round: int, shard: int, images: list[ImageRegions]) -> dict[str, list]:
    return {
        "round": [round] * len(images),
        "shard": [shard] * len(images),
        "image_id": [im.image_id for im in images],
        "image_height": [im.height for im in images],
        "image_width": [im.width for im in images],
        "gate_threshold": [im.gate_threshold for im in images],
        "checkpoint_sha256": [im.checkpoint_sha256 for im in images],
        "n_regions": [len(im.regions) for im in images],
        "problem": [im.problem for im in images],
    }


def _check_image(image: ImageRegions) -> None:
    if image.problem is not None and image.regions:
        raise StorageError(f"{image.image_id}: a quarantined image cannot have regions")
    for r in image.regions:
        if not 0 <= r.class_id < IGNORE_INDEX:
            raise StorageError(f"{image.image_id}: class id {r.class_id} is outside "
                               f"[0, {IGNORE_INDEX})")
        if r.paints not in PAINTS or (r.paints == REFINED and r.refined_mask is None):
            raise StorageError(f"{image.image_id}: paints={r.paints!r} is not one of {PAINTS} "
                               "(or 'refined' without a refined mask)")
        x0, y0, x1, y1 = r.bbox
        if not (0 <= x0 <= x1 <= image.width and 0 <= y0 <= y1 <= image.height):
            raise StorageError(f"{image.image_id}: bbox {r.bbox} is outside the "
                               f"{image.height}x{image.width} image")


def _region_columns(round: int, shard: int, images: list[ImageRegions]) -> dict[str, list]:
    cols: dict[str, list] = {name: [] for name in PSEUDO_LABEL_SCHEMA.names}
    for im in images:
        _check_image(im)
        regions = im.regions
        if not regions:
            continue
        h, w = im.height, im.width
        coarse = encode_masks([r.coarse_mask for r in regions], h, w)
        refined_idx = [i for i, r in enumerate(regions) if r.refined_mask is not None]
        refined = encode_masks([regions[i].refined_mask for i in refined_idx], h, w)
        refined_rle: list[str | None] = [None] * len(regions)
        refined_area: list[int | None] = [None] * len(regions)
        for i, counts, area in zip(refined_idx, refined, rle_areas(refined, h, w), strict=True):
            refined_rle[i], refined_area[i] = counts, int(area)
        n = len(regions)
        cols["round"] += [round] * n
        cols["shard"] += [shard] * n
        cols["image_id"] += [im.image_id] * n
        cols["region_id"] += range(n)
        cols["class_id"] += [r.class_id for r in regions]
        cols["class_name"] += [r.class_name for r in regions]
        cols["confidence"] += [r.confidence for r in regions]
        cols["gate_threshold"] += [im.gate_threshold if r.gate_threshold is None
                                   else r.gate_threshold for r in regions]
        cols["gated"] += [bool(r.gated) for r in regions]
        cols["sam_iou"] += [r.sam_iou for r in regions]
        cols["agreement_iou"] += [r.agreement_iou for r in regions]
        cols["accepted"] += [bool(r.accepted) for r in regions]
        cols["paints"] += [r.paints for r in regions]
        cols["clip_class_id"] += [r.clip_class_id for r in regions]
        cols["area"] += rle_areas(coarse, h, w).tolist()
        cols["refined_area"] += refined_area
        for j, name in enumerate(("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")):
            cols[name] += [r.bbox[j] for r in regions]
        cols["image_height"] += [h] * n
        cols["image_width"] += [w] * n
        cols["checkpoint_sha256"] += [im.checkpoint_sha256] * n
        cols["coarse_rle"] += coarse
        cols["refined_rle"] += refined_rle
    return cols


def shard_tables(round: int, shard: int, images: list[ImageRegions]) -> tuple[pa.Table, pa.Table]:
    """The (pseudo_labels, images) tables of one shard, typed by the declared schemas.

    Raises StorageError on duplicate image ids, class ids outside uint16 minus IGNORE, boxes
    outside the image, or masks of the wrong size.
    """
    ids = [im.image_id for im in images]
    if len(set(ids)) != len(ids):
        raise StorageError(f"shard {shard} of round {round} lists an image twice")
    try:
        regions = pa.table(_region_columns(round, shard, images), schema=PSEUDO_LABEL_SCHEMA)
    except ValueError as exc:  # a mask of the wrong size
        raise StorageError(str(exc)) from exc
    return regions, pa.table(_image_columns(round, shard, images), schema=IMAGES_SCHEMA)
