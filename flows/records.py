"""What the steps of a run hand each other: small frozen records (Prefect passes them between
tasks; a Dask worker receives them pickled). Each names what it refers to in the store, never
a tensor or a model.

    plan_round -> RoundPlan(parent: ParentRef, shards: ShardPlan...)
    label_shard(ShardPlan, ParentRef) -> LabelledShard
    quality_gate -> GateOutcome
    retrain(ParentRef) -> StoredCheckpoint
    measure_and_record(ParentRef, StoredCheckpoint) -> the round's LineageRecord (storage)
"""

from __future__ import annotations

from dataclasses import dataclass

Gates = float | tuple[float, ...]
"""A round's gate: one threshold for every class, or one per class id."""


@dataclass(frozen=True)
class ParentRef:
    """The completed stage whose checkpoint a round starts from (round - 1)."""

    round: int
    checkpoint_sha256: str


@dataclass(frozen=True)
class ShardPlan:
    """One shard of a round: its images (sorted ids), the round's gates and the key that
    determines its rows (`storage.hashing.shard_key`)."""

    round: int
    shard: int
    image_ids: tuple[str, ...]
    gates: Gates
    key: str


@dataclass(frozen=True)
class RoundPlan:
    """A round as planned when it started (recorded in the store; a resumed round reads it):
    the parent it labels with, the hash of the settings that shape its rows (`basis`), its
    gates and its shards."""

    round: int
    parent: ParentRef
    basis: str
    gates: Gates
    shards: tuple[ShardPlan, ...]

    @property
    def image_count(self) -> int:
        return sum(len(s.image_ids) for s in self.shards)


@dataclass(frozen=True)
class LabelledShard:
    """What labelling one shard did (all zero but `shard` when it was committed already)."""

    round: int
    shard: int
    skipped: bool
    rows: int = 0
    images: int = 0
    unreadable: int = 0
    regions: int = 0
    gated: int = 0
    refined: int = 0


@dataclass(frozen=True)
class StoredCheckpoint:
    """A round's checkpoint in the store: where it is and the sha256 of its weights."""

    round: int
    uri: str
    sha256: str


@dataclass(frozen=True)
class GateCheck:
    """One quality-gate check: `value` against `threshold` (`bound` "min" or "max")."""

    check: str
    value: float | None
    bound: str
    threshold: float
    passed: bool


@dataclass(frozen=True)
class GateOutcome:
    """The quality gate of a round: its checks, whether the round was let through anyway
    (`quality.accept_rounds`), and `skipped` when the gate had passed before (resume)."""

    round: int
    checks: tuple[GateCheck, ...] = ()
    accepted: bool = False
    skipped: bool = False

    @property
    def failed(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def stops(self) -> bool:
        """A check failed and the round is not accepted: it must not retrain."""
        return bool(self.failed) and not self.accepted
