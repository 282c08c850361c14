"""The per-round table `ovseg run` ends with: figures and what became of the gated regions."""

from flows.commands.run import round_table


def test_round_table_shows_trusted_rejected_and_painted_counts():
    stage = {"round": 0, "metrics": {"target_miou": 34.7, "target_seen_miou": 41.8,
                                     "target_unseen_miou": 20.6}, "row_counts": {}}
    one = {"round": 1, "metrics": {"target_miou": 48.1, "target_seen_miou": 55.0,
                                   "target_unseen_miou": 34.4, "pl_refined_miou": 48.0,
                                   "pl_coarse_miou": 29.7, "pl_refined_coverage": 68.4},
           "row_counts": {"gated": 148, "accepted": 145, "clip_rejected": 55, "refined": 93,
                          "sam_iou_mean": 0.9741}}
    head, zero, first = round_table([stage, one])
    assert head.split()[-6:] == ["gated", "trusted", "CLIP-rej", "refined", "SAM", "IoU"]
    assert zero.split() == ["0", "34.7", "41.8", "20.6", "-", "-", "-"]
    assert first.split() == ["1", "48.1", "55.0", "34.4", "48.0", "29.7", "68.4", "148", "145",
                             "55", "93", "0.974"]
