"""Plain records exchanged with the store (numpy only, no torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np

from storage.terms import REVIEW_IMPORT, STAGES, STATUSES  # noqa: F401  (records' terms)

REPEATED_STAGES = (REVIEW_IMPORT,)
"""Stages recorded once per input (keyed by their config hash), not once per round; a redo of
the round keeps them (human labels are about images, not about a round's model)."""


@dataclass
class RegionRecord:
    """One region of one image, as the self-training step produced it.

    Masks are boolean `(H, W)` at the image's full size; `bbox` is XYXY pixels of the coarse
    region (x1, y1 exclusive). `refined_mask` is SAM's mask, kept whether trusted or not;
    it, `sam_iou` and `agreement_iou` are None when the region was not gated. `accepted`: SAM's
    mask is trusted. `paints`: what paints the pseudo-label map, one of
    `storage.schema.PAINTS` ("refined" needs a refined mask).
    """

    class_id: int
    class_name: str
    confidence: float
    gated: bool
    sam_iou: float | None
    agreement_iou: float | None
    accepted: bool
    paints: str
    coarse_mask: np.ndarray
    refined_mask: np.ndarray | None
    bbox: tuple[int, int, int, int]
    gate_threshold: float | None = None
    """The gate this region met or missed, when it differs from the image's (per-class gates)."""
    clip_class_id: int | None = None
    """CLIP's class for the crop of the mask the region paints; None when CLIP did not check."""


@dataclass
class ImageRegions:
    """All regions of one image (possibly none) and the image's provenance.

    `image_id` is the image's path relative to the dataset root; `height`, `width` in pixels.
    """

    image_id: str
    height: int
    width: int
    gate_threshold: float
    checkpoint_sha256: str
    regions: list[RegionRecord] = field(default_factory=list)
    problem: str | None = None
    """Why the image could not be read (it is quarantined: no regions, size 0 x 0)."""


@dataclass(frozen=True)
class ShardInfo:
    """A committed shard: where its files are and how many rows they hold."""

    round: int
    shard: int
    key: str
    rows: int
    images: int
    pseudo_labels_uri: str
    images_uri: str
    committed_at: str


@dataclass(frozen=True)
class CheckpointRecord:
    """A checkpoint directory in the store; `sha256` is that of its `model.safetensors`."""

    uri: str
    sha256: str


@dataclass(frozen=True)
class LineageRecord:
    """What one stage of one round did, immutable once completed.

    stage: "stage_one" (round 0), "quality_gate" (round >= 1: the checks on the round's
    pseudo-labels before retraining, `flows.quality_gate`; failed when it stopped the round),
    "self_training_round" (round >= 1), "control" (round >= 1: the round's compute-matched
    control, trained on the labelled source alone; its parent is the previous round's control,
    stage one for round 1), "evaluate" or "review_import" (one per imported review file;
    `config` names the file and its sha256).
    Times are ISO-8601 UTC strings (see `utc_now`). `config_hash` is computed from `config`
    when left empty. `row_counts` and `metrics` are flat name -> number dicts.
    """

    stage: str
    round: int
    parent_round: int | None
    checkpoint_uri: str | None
    checkpoint_sha256: str | None
    config: dict
    package_version: str
    git_commit: str | None
    dataset_manifest_hash: str | None
    gate_threshold: float | None
    started_at: str
    ended_at: str | None
    status: str
    row_counts: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    config_hash: str = ""
    resolved: dict = field(default_factory=dict)
    """The config's computed defaults as the stage resolved them (what each None setting
    became: `flows.defaults.ResolvedSettings`); empty for stages that train nothing."""

    def __post_init__(self):
        from storage.errors import StorageError
        from storage.hashing import config_hash

        if self.stage not in STAGES:
            raise StorageError(f"unknown lineage stage {self.stage!r}; expected one of {STAGES}")
        if self.status not in STATUSES:
            raise StorageError(f"unknown status {self.status!r}; expected one of {STATUSES}")
        if not self.config_hash:
            object.__setattr__(self, "config_hash", config_hash(self.config))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LineageRecord:
        return cls(**data)


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string, e.g. '2026-11-02T10:00:00.123456+00:00'."""
    return datetime.now(UTC).isoformat()
