"""What the rounds train with and on.

`train_config` is the one translation of the run's training settings into
`ovseg_core.train.TrainConfig`, used by the rounds (`flows.steps`: stage one and every
retraining) and by `ovseg train`, whose flags fill the same `TrainSettings`: a setting left
unset takes the preset's default (`ovseg_core.train.PRESET_DEFAULTS`), the crop the model's
input size. `retrain_samples` is what a round retrains on, `source_in_target` what its
compute-matched control trains on; the processes of a DDP training (`train.processes`) each
rebuild them from the run config (`retrain_samples_of`, `control_samples_of`).
"""

from __future__ import annotations

from flows.config import RunConfig, SelfTrainingSettings, TrainSettings
from flows.context import TaskContext
from flows.faults import kill_point
from flows.plan import DataPlan
from ovseg_core.data import SegmentationSamples
from ovseg_core.data.mixing import RemappedSamples, SharedSamples
from ovseg_core.errors import OvsegError
from ovseg_core.train import PRESET_DEFAULTS, TrainConfig, preset_train_config
from storage.samples import PseudoLabelSamples

SETTINGS = ("batch_size", "lr", "alpha", "num_workers", "checkpoint_every", "sam_crops")
"""TrainSettings passed to TrainConfig under the same name when set (steps and crop_size are
derived)."""


def train_config(settings: TrainSettings, preset: str, input_size: int, seed: int,
                 retrain: bool = False) -> TrainConfig:
    """Stage-one (or, with `retrain`, retraining) settings: the preset's defaults, then the
    ones given. Retraining runs `retrain_steps`, by default a third of the stage-one steps."""
    steps = settings.steps or PRESET_DEFAULTS[preset]["steps"]
    if retrain:
        steps = settings.retrain_steps or max(1, steps // 3)
    given = {name: getattr(settings, name) for name in SETTINGS}
    given |= {"steps": steps, "crop_size": settings.crop_size or input_size, "seed": seed}
    return preset_train_config(preset, **{k: v for k, v in given.items() if v is not None})


def retrain_samples(ctx: TaskContext, round: int) -> SegmentationSamples:
    """What round `round` retrains on: its selected pseudo-labels, mixed with the labelled
    source by `self_training.source_share`."""
    st, plan = ctx.cfg.self_training, ctx.plan
    samples = PseudoLabelSamples(ctx.store, round, plan.read_target,
                                 where=ctx.resolved.selection)
    if len(samples) == 0:
        raise OvsegError(f"round {round} selected no pseudo-labels to retrain on; lower "
                         "self_training.gate_threshold, set self_training.class_balance (a "
                         "gate per class) or change self_training.selection")
    return with_source(plan, st, ctx.cfg.seed + round, samples)


def retrain_samples_of(cfg: RunConfig, round: int) -> SegmentationSamples:
    """`retrain_samples` in a process of its own (each process of a DDP retraining)."""
    return retrain_samples(TaskContext.open(cfg), round)


def with_source(plan: DataPlan, st: SelfTrainingSettings, seed: int, samples
                ) -> SegmentationSamples:
    """Pseudo-labelled `samples` mixed with the labelled source, remapped into the target
    vocabulary, at `st.source_share` (unchanged at 0); `seed`: the round's (run seed + round)."""
    if st.source_share == 0:
        return samples
    return SharedSamples(samples, source_in_target(plan), st.source_share, seed=seed)


def source_in_target(plan: DataPlan) -> SegmentationSamples:
    """The labelled source, remapped into the target vocabulary by meaning: what a round mixes
    in, and all that a round's compute-matched control trains on."""
    return RemappedSamples(plan.source, plan.source_classes, plan.target_classes, plan.name_map)


def control_samples_of(cfg: RunConfig) -> SegmentationSamples:
    """`source_in_target` in a process of its own (each process of a DDP control training)."""
    return source_in_target(TaskContext.open(cfg).plan)


def kill_point_at_step(round: int, step: int, _loss: float) -> None:
    """The `train_step:<round>:<step>` kill point (`flows.faults`), as `train`'s on_step."""
    kill_point(f"train_step:{round}:{step}")
