"""The store's answers that flows ask for: a round's row counts, the quality gate's values,
per-class counts, a stable sample of a round's images. The SQL lives here, next to the views
it reads (storage.views).

Every function takes a workspace or an open connection (`storage.query.Store`).
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from storage.query import opened, run_sql
from storage.views import PAINTED_AREA

if TYPE_CHECKING:
    from storage.query import Store
    from storage.workspace import Workspace

ROUND_COUNTS = """SELECT count(*) AS regions, count(DISTINCT image_id) AS images,
    count(*) FILTER (WHERE gated) AS gated, count(*) FILTER (WHERE accepted) AS accepted,
    count(*) FILTER (WHERE paints = 'refined') AS refined,
    count(*) FILTER (WHERE paints = 'coarse') AS coarse,
    count(*) FILTER (WHERE clip_class_id <> class_id) AS clip_rejected,
    avg(sam_iou) AS sam_iou_mean FROM pseudo_labels WHERE round = ?"""
"""A round's row counts for its lineage record (refined = rows painted with SAM's mask;
clip_rejected = gated rows whose class CLIP did not pick)."""


def round_counts(store: Store, round: int) -> dict:
    """{regions, images, gated, accepted, refined, coarse, clip_rejected, sam_iou_mean} of
    round `round`: counts as int, the mean rounded to 4 decimals (None for an empty round)."""
    table = run_sql(store, ROUND_COUNTS, [round])
    return {k: (None if v[0] is None else _value(v[0])) for k, v in table.to_pydict().items()}


QUALITY_IMAGES = f"""WITH readable AS (
        SELECT image_id, image_height::BIGINT * image_width AS px FROM images
        WHERE round = $round AND problem IS NULL),
    painted AS (
        SELECT image_id, sum({PAINTED_AREA}) AS px FROM pseudo_labels
        WHERE round = $round AND paints <> 'none' GROUP BY image_id)
    SELECT count(*) AS images, count(p.image_id) AS labelled_images,
           coalesce(sum(r.px), 0)::BIGINT AS pixels,
           coalesce(sum(least(r.px, coalesce(p.px, 0))), 0)::BIGINT AS painted_pixels
    FROM readable r LEFT JOIN painted p USING (image_id)"""
"""A round's readable images, those with a painting row, and their pixels: all, and painted
(per image at most all of its pixels: overlapping regions count once up to the image's size)."""

CLASS_SHARES = f"""SELECT round, any_value(class_name) AS class_name,
    sum({PAINTED_AREA})::DOUBLE
        / sum(sum({PAINTED_AREA})) OVER (PARTITION BY round) AS share
    FROM pseudo_labels WHERE round IN ($round, $previous) AND paints <> 'none'
    GROUP BY round, class_id ORDER BY round, class_id"""
"""Each class's share of the painted pixels of the round and of the previous round."""


def quality_values(store: Store, round: int) -> dict:
    """The quality gate's values of round `round` (flows.quality_gate), read-only, one snapshot:

    images, labelled_images, labelled_share: readable images, those with a row that paints
        (paints <> 'none'), and their share (0.0 for a round without readable images)
    coverage: the share of the readable images' pixels that are painted, each image's painted
        pixels (refined_area for paints = 'refined', area for 'coarse') capped at H*W
    gated, accepted, trusted_share: gated regions, those with a trusted SAM mask, accepted /
        gated (None when nothing was gated)
    sam_iou_mean: SAM's mean predicted IoU over the gated regions (None when none)
    class_shares, previous_class_shares: {class name: share of the painted pixels} of this
        round and of the previous self-training round ({} for round 1 or when nothing painted)
    class_shift, class_shift_class: the largest absolute change of a class's share (a class
        missing from one round has share 0 there) and that class; None when either round
        painted nothing (round 1 has no previous round)
    """
    previous = round - 1 if round > 1 else -1
    with opened(store) as con:
        counts = run_sql(con, QUALITY_IMAGES, {"round": round}).to_pylist()[0]
        regions = round_counts(con, round)  # gated, accepted (only gated rows), SAM IoU mean
        counts |= {k: regions[k] for k in ("gated", "accepted", "sam_iou_mean")}
        shares = run_sql(con, CLASS_SHARES, {"round": round, "previous": previous}).to_pylist()
    now = {s["class_name"]: s["share"] for s in shares if s["round"] == round}
    before = {s["class_name"]: s["share"] for s in shares if s["round"] == previous}
    shift = shift_class = None
    if now and before:
        shift_class = max(sorted(now.keys() | before.keys()),
                          key=lambda c: abs(now.get(c, 0.0) - before.get(c, 0.0)))
        shift = abs(now.get(shift_class, 0.0) - before.get(shift_class, 0.0))
    images, gated = int(counts["images"]), int(counts["gated"])
    return {
        "images": images, "labelled_images": int(counts["labelled_images"]),
        "labelled_share": counts["labelled_images"] / images if images else 0.0,
        "coverage": (counts["painted_pixels"] / counts["pixels"]) if counts["pixels"] else 0.0,
        "gated": gated, "accepted": int(counts["accepted"]),
        "trusted_share": counts["accepted"] / gated if gated else None,
        "sam_iou_mean": counts["sam_iou_mean"],
        "class_shares": now, "previous_class_shares": before,
        "class_shift": shift, "class_shift_class": shift_class,
    }


def class_counts(store: Store, up_to_round: int) -> list[dict]:
    """Rows of the class_stats view for rounds <= `up_to_round`, by round and class id."""
    return run_sql(store, "SELECT round, class_name, n_regions, n_gated, n_accepted, "
                   "n_clip_rejected, n_refined + n_coarse AS n_painting, confidence_p50 "
                   "FROM class_stats WHERE round <= ? ORDER BY round, class_id",
                   [up_to_round]).to_pylist()


def first_images(store: Store, round: int, limit: int) -> list[str]:
    """The first `limit` image ids (sorted) with regions in round `round`."""
    return run_sql(store, "SELECT DISTINCT image_id FROM pseudo_labels WHERE round = ? "
                   "ORDER BY image_id LIMIT ?", [round, limit]).column("image_id").to_pylist()


def _value(value):
    return int(value) if float(value).is_integer() else round(float(value), 4)


def round_files(store: Workspace, round: int) -> dict:
    """Shards, rows, images and Parquet bytes (pseudo_labels + images files) of the round's
    committed shards, read from their manifest entries; `committed`: the round's commit."""
    entries = store.shard_entries(round)
    files = [e[kind] for e in entries for kind in ("pseudo_labels", "images_file")]
    return {"shards": len(entries), "rows": sum(e["rows"] for e in entries),
            "images": sum(e["images"] for e in entries),
            "parquet_bytes": sum(store.fs.size(posixpath.join(store.path, f)) for f in files),
            "committed": store.is_round_committed(round)}
