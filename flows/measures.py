"""The measurements a run reports, one name and one meaning each.

The job's final table (`ovseg run`), its legend, and the report's tables all take their column
names and explanations from here; `key` is the name of the same figure in the lineage record
(`metrics` or `row_counts`, also what `ovseg sql` shows in the `rounds` view).

Two different sets of labelled target images are measured against, and the names keep them
apart:
- "target mIoU" (`target_*`): the round's model on the held-out target images
  (`data.target_eval`; in the built-in world, `data.synthetic.target_val` images that no
  round labels or trains on);
- "pseudo-label quality" (`pl_*`): the pseudo-labels a round painted on the target images it
  self-trains on, against those images' own labels (`data.target_labels`), which no round
  trains on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    """One reported figure: `column` (its short name in tables), `key` (its lineage key),
    `unit` and `meaning` (one line for a legend)."""

    column: str
    key: str
    unit: str
    meaning: str


MODEL_MEASURES = (
    Measure("mIoU", "target_miou", "%", "target mIoU: the round's model on the held-out "
            "labelled target images, all classes"),
    Measure("seen", "target_seen_miou", "%", "target mIoU over the seen classes (labelled in "
            "the source)"),
    Measure("unseen", "target_unseen_miou", "%", "target mIoU over the unseen classes (never "
            "labelled; learnt from the pseudo-labels)"),
)
PSEUDO_LABEL_MEASURES = (
    Measure("PL refined", "pl_refined_miou", "%", "pseudo-label quality: mIoU of the "
            "pseudo-labels retraining uses (SAM's trusted masks that CLIP agrees with), against "
            "the self-trained images' own labels, over the pixels they paint"),
    Measure("PL coarse", "pl_coarse_miou", "%", "pseudo-label quality of the model's coarse "
            "masks of every gated region (before SAM and CLIP)"),
    Measure("PL cover", "pl_refined_coverage", "%", "pseudo-label coverage: share of the "
            "self-trained images' labelled pixels that the refined pseudo-labels paint"),
)
REGION_MEASURES = (
    Measure("gated", "gated", "regions", "regions confident enough to pass the gate; each "
            "prompts SAM"),
    Measure("trusted", "accepted", "regions", "gated regions whose SAM mask is trusted "
            "(`accepted` in SQL)"),
    Measure("CLIP-rej", "clip_rejected", "regions", "gated regions whose class CLIP does not "
            "pick; they paint nothing"),
    Measure("refined", "refined", "regions", "regions painted with SAM's mask (paints = "
            "'refined')"),
    Measure("SAM IoU", "sam_iou_mean", "0-1", "SAM's own predicted IoU, mean over the gated "
            "regions"),
)
SOURCE_MEASURE = Measure("source val", "source_val_miou", "%", "stage one's model on the "
                         "source's validation images")

ROUND_NAME = ("round: 'stage one' is the supervised training on the labelled source (round 0 in "
              "the lineage and in SQL); 1, 2, ... are the self-training rounds")
CONTROL_NAME = ("'control R' (under round R) is round R's compute-matched control: the previous "
                "control (stage one for round 1) trained on the labelled source alone with round "
                "R's retraining settings (steps, batch, learning rate, seed); its mIoU, seen and "
                "unseen are measured like the round's (the `control` lineage record)")


def legend(measures: tuple[Measure, ...] | list[Measure], width: int = 10) -> list[str]:
    """One line per measure: "  column  (unit) meaning  [lineage key]"."""
    return [f"  {m.column:<{width}}  ({m.unit}) {m.meaning}  [{m.key}]" for m in measures]


def round_label(round: int, control: bool = False) -> str:
    """A round as people read it: "stage one" for round 0, else its number; "control R" for
    round R's control."""
    if control:
        return f"control {round}"
    return "stage one" if round == 0 else str(round)
