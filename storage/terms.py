"""The terms ovseg_core and storage share, and the painting rule, written once.

It imports nothing at load time (numpy only inside `paint_label_map`), so both layers import
it, and so can the command line without slowing `ovseg --help` (`tests/test_boundaries.py` lets
ovseg_core import `storage.terms` and nothing else of storage):
- the ignore label of every label map;
- what paints a region's pixels in a round's label map (`PAINTS`): the model's refiner says
  it, the store records it, retraining, export, the report and the quality measure read it;
- the stages and statuses of lineage records;
- the painting rule (`paint_score`, `paint_label_map`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

IGNORE_INDEX = 65535
"""The one ignore label inside ovseg (uint16 max); readers map dataset-specific ignore values
to it."""

REFINED, COARSE, NONE = "refined", "coarse", "none"
"""What paints a region: its SAM mask, its coarse mask (the fallback for an untrusted SAM
mask), or nothing (untrusted, or CLIP picked another class)."""
PAINTS = (REFINED, COARSE, NONE)

STAGE_ONE = "stage_one"
QUALITY_GATE = "quality_gate"
SELF_TRAINING_ROUND = "self_training_round"
CONTROL = "control"
"""The compute-matched control of round r >= 1: the previous control (stage one's checkpoint for
round 1) trained on the labelled source alone with the round's retraining settings."""
EVALUATE = "evaluate"
REVIEW_IMPORT = "review_import"
STAGES = (STAGE_ONE, CONTROL, QUALITY_GATE, SELF_TRAINING_ROUND, EVALUATE, REVIEW_IMPORT)
"""In the order of a round: a round's records are listed in this order."""
TRAINING_STAGES = (STAGE_ONE, SELF_TRAINING_ROUND)
"""The stages whose checkpoint a round labels with: round 0 is stage one, round r >= 1 a round
(checkpoints/round=NNN)."""

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
STATUSES = (RUNNING, COMPLETED, FAILED)


def training_stage(round: int) -> str:
    """The stage whose checkpoint round `round` holds."""
    return STAGE_ONE if round == 0 else SELF_TRAINING_ROUND


def paint_score(confidence: float, paints: str, sam_iou: float | None,
                agreement_iou: float | None) -> float:
    """Overlap priority of a region: its confidence times the quality of the mask it paints,
    SAM's predicted IoU for its SAM mask (`paints` REFINED), else the agreement IoU of SAM's
    and the coarse mask; confidence alone when that quality is missing (never gated)."""
    quality = sam_iou if paints == REFINED else agreement_iou
    return float(confidence) * (1.0 if quality is None else float(quality))


def paint_label_map(height: int, width: int, class_ids: np.ndarray, scores: np.ndarray,
                    masks: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Paint boolean `(N, H, W)` masks by class id in increasing (score, order) order, so where
    masks overlap the highest score wins (on a tie: the later region).

    order: `(N,)` tie-breakers (the store's region ids; default the list order). Returns uint16
    `(H, W)`; IGNORE_INDEX where no mask covers a pixel.
    """
    import numpy as np

    label = np.full((height, width), IGNORE_INDEX, dtype=np.uint16)
    ties = np.arange(len(scores)) if order is None else np.asarray(order)
    for i in np.lexsort((ties, np.asarray(scores, dtype=np.float64))):
        if masks[i].shape != (height, width):
            raise ValueError(f"region mask {masks[i].shape} does not match the map "
                             f"{(height, width)}")
        label[masks[i]] = class_ids[i]
    return label
