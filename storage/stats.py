"""The store's answers that flows ask for: a round's row counts, per-class counts, a stable
sample of a round's images. The SQL lives here, next to the views it reads (storage.views).

Every function takes a workspace or an open connection (`storage.query.Store`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.query import run_sql

if TYPE_CHECKING:
    from storage.query import Store

ROUND_COUNTS = """SELECT count(*) AS regions, count(DISTINCT image_id) AS images,
    count(*) FILTER (WHERE gated) AS gated, count(*) FILTER (WHERE accepted) AS accepted,
    count(*) FILTER (WHERE paints = 'refined') AS refined,
    count(*) FILTER (WHERE paints = 'coarse') AS coarse,
    avg(sam_iou) AS sam_iou_mean FROM pseudo_labels WHERE round = ?"""
"""A round's row counts for its lineage record (refined = rows painted with SAM's mask)."""


def round_counts(store: Store, round: int) -> dict:
    """{regions, images, gated, accepted, refined, coarse, sam_iou_mean} of round `round`:
    counts as int, the mean rounded to 4 decimals (None for an empty round)."""
    table = run_sql(store, ROUND_COUNTS, [round])
    return {k: (None if v[0] is None else _value(v[0])) for k, v in table.to_pydict().items()}


def class_counts(store: Store, up_to_round: int) -> list[dict]:
    """Rows of the class_stats view for rounds <= `up_to_round`, by round and class id."""
    return run_sql(store, "SELECT round, class_name, n_regions, n_gated, n_accepted, "
                   "confidence_p50 FROM class_stats WHERE round <= ? ORDER BY round, class_id",
                   [up_to_round]).to_pylist()


def first_images(store: Store, round: int, limit: int) -> list[str]:
    """The first `limit` image ids (sorted) with regions in round `round`."""
    return run_sql(store, "SELECT DISTINCT image_id FROM pseudo_labels WHERE round = ? "
                   "ORDER BY image_id LIMIT ?", [round, limit]).column("image_id").to_pylist()


def _value(value):
    return int(value) if float(value).is_integer() else round(float(value), 4)
