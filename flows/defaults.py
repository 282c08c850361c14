"""The run config's computed defaults, resolved in one place.

A setting left None in the config means "computed": from the preset (training; the gate,
which the config's validator fills in), from the device (loader workers), from the model's
weights (CLIP's check), from the store's rule (the retraining selection). `resolve` computes
them once per task context (`TaskContext.resolved`); the steps read them there, and every
lineage record of a stage that trains keeps them (`LineageRecord.resolved`), so a record says
what the run actually used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flows.config import RunConfig
from ovseg_core.device import Runtime


@dataclass(frozen=True)
class ResolvedSettings:
    """What each computed setting of a run is (units as in the config)."""

    gate_threshold: float
    loader_workers: int
    clip_verify: bool
    selection: str
    steps: int
    retrain_steps: int
    batch_size: int
    crop_size: int
    lr: float

    def as_dict(self) -> dict:
        return asdict(self)


def resolve(cfg: RunConfig, runtime: Runtime) -> ResolvedSettings:
    """The computed settings of `cfg` on this runtime's device."""
    from flows.steps import model_config, train_config
    from storage.samples import DEFAULT_WHERE

    st = cfg.self_training
    workers = st.loader_workers
    if workers is None:  # decoding beside a GPU pays; on the CPU it takes the model's cores
        workers = 2 if runtime.device.type == "cuda" else 0
    verify = st.clip_verify
    if verify is None:  # a random CLIP knows nothing
        verify = model_config(cfg).clip.pretrained is not None
    stage_one = train_config(cfg, retrain=False, seed=cfg.seed)
    retrain = train_config(cfg, retrain=True, seed=cfg.seed)
    return ResolvedSettings(
        gate_threshold=st.gate_threshold, loader_workers=workers, clip_verify=verify,
        selection=st.selection or DEFAULT_WHERE, steps=stage_one.steps,
        retrain_steps=retrain.steps, batch_size=stage_one.batch_size,
        crop_size=stage_one.crop_size, lr=stage_one.lr)
