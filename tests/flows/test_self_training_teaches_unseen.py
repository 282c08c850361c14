"""The method, measured: on the built-in world with the pretrained tiny CLIP, one round of
self-training with real MobileSAM refinement and CLIP's check of the classes raises
unseen-class mIoU over stage one, and its pseudo-labels of the unseen classes beat the coarse
masks they came from.

Slow (pretrains the tiny CLIP, trains stage one, labels and retrains: minutes on 2 cores).
Measured on the 32 held-out target images. The margins are the smallest round-1 figures
measured across seeds 0-2 with DEA on (`studies/table2.py`), halved: unseen mIoU
rose 13.8, 1.6 and 7.5 points; the unseen pseudo-labels' precision-style mIoU beat the
coarse masks' by 13.3-19.4 points in all six runs (DEA on and off). Seed 0 with DEA, which
this test runs, rose 13.8 and 14.3.
"""

from __future__ import annotations

import pytest

MIN_UNSEEN_RISE = 0.8
"""Points of unseen mIoU that round 1 must add over stage one (see the module docstring)."""
MIN_PL_GAIN = 6.6
"""Points of unseen pseudo-label mIoU that SAM and CLIP must add to the coarse masks."""


@pytest.mark.slow
def test_one_round_raises_unseen_miou_and_sam_refines_most_gated_regions(prefect_api, tmp_path):
    from flows.config import RunConfig
    from flows.pipeline import self_training

    cfg = RunConfig.model_validate({"workspace": str(tmp_path / "ws"), "device": "cpu",
                                    "self_training": {"rounds": 1, "report_images": 0}})
    stage_one, round_one = self_training(cfg)
    before = stage_one["metrics"]["target_unseen_miou"]
    after = round_one["metrics"]["target_unseen_miou"]
    assert after - before >= MIN_UNSEEN_RISE, (before, after)
    rows = round_one["row_counts"]
    assert rows["gated"] > 0 and rows["accepted"] >= rows["gated"] / 2, rows  # SAM trusted
    assert 0 < rows["clip_rejected"] < rows["gated"], rows  # CLIP checked, some rejected
    metrics = round_one["metrics"]
    assert (metrics["pl_refined_unseen_miou"] - metrics["pl_coarse_unseen_miou"]
            >= MIN_PL_GAIN), metrics
    assert (stage_one["metrics"]["clip_crop_unseen_top1"]
            > 2 * stage_one["metrics"]["clip_crop_chance"])
