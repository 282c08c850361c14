"""A round's measured phases as per-image costs, and how they grow with the round's size.

The bookkeeping of `benchmarks/bench_scale.py`: `table_row` splits one round's phases
(`ovseg_core.profiling`, seconds) and its stored files into the benchmark's columns; `ratios`
gives the marginal seconds per image between sizes and the growth ratios its targets bound.
"""

from __future__ import annotations

LABELLING = ("data", "vocabulary", "model", "regions", "sam_encoder", "sam_refine", "clip_verify",
             "load_model")
"""The profiling phases that are labelling work (the rest: storage, retrain, selection,
evaluate, report, and what no phase claims: orchestration)."""

SELECTION_PHASE = "selection"
"""The phase `flows.steps.retrain` times building the retraining selection under."""


def table_row(size: int, child: dict, stored: dict, child_wall: float) -> dict:
    """The size's row: the child's phases and measurements, split per image."""
    phases, wall = child["phases"], child["wall_s"]
    if stored["images"] != size or not stored["committed"]:
        raise ValueError(f"{size} images: the round committed {stored['images']} images "
                         f"(committed: {stored['committed']}); expected {size}")
    labelling = sum(phases.get(p, 0.0) for p in LABELLING)
    retrain = phases.get("retrain", 0.0)
    orchestration = wall - sum(phases.values())
    return {
        "images": size, "wall_s": wall, "process_s": child_wall,
        "labelling_s": labelling, "labelling_s_per_img": labelling / size,
        "storage_s": phases.get("storage", 0.0),
        "storage_s_per_img": phases.get("storage", 0.0) / size,
        "retrain_s": retrain, "retrain_s_per_img": retrain / size,
        "selection_in_round_s": phases.get(SELECTION_PHASE, 0.0),
        "evaluate_s": phases.get("evaluate", 0.0), "report_s": phases.get("report", 0.0),
        "orchestration_s": orchestration, "orchestration_pct": 100 * orchestration / wall,
        "peak_rss_mb": child["peak_rss_mb"],
        "shards": stored["shards"], "rows": stored["rows"],
        "parquet_bytes": stored["parquet_bytes"],
        "parquet_bytes_per_img": stored["parquet_bytes"] / size,
        "class_stats_s": child["class_stats_s"], "class_stats_rows": child["class_stats_rows"],
        "selection_s": child["selection_s"], "selected_images": child["selected_images"],
        "phases": phases,
    }


def ratios(rows: list[dict]) -> dict:
    """Marginal s/img between consecutive sizes and the issue's ratios (None where undefined)."""
    for before, row in zip(rows, rows[1:], strict=False):
        grown = row["images"] - before["images"]
        row["marginal_s_per_img"] = (row["wall_s"] - before["wall_s"]) / grown if grown else None
    marginal = [r.get("marginal_s_per_img") for r in rows]
    last, previous = (marginal[-1], marginal[-2]) if len(marginal) >= 3 else (None, None)
    return {
        "marginal_ratio": last / previous if last is not None and previous else None,
        "peak_rss_ratio": (rows[-1]["peak_rss_mb"] / rows[-2]["peak_rss_mb"]
                           if len(rows) >= 2 else None),
    }
