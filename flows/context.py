"""What a task works with: its context, built once from the run config at the task's start.

`TaskContext.open(config)` is the one place a task turns the config into things: the store,
the runtime (device, dtype), the data plan, its scratch folders, the checkpoints it loads.
Step functions take the context (or the parts of it they use) and records (`flows.records`).

What must outlive a task lives in `WorkerResources`, one object per process (`RESOURCES`):
its lifetime is the process, which is the `ovseg run` process on one machine or one Dask
worker on a cluster, so a worker labelling many shards loads the parent model, the refiner's
SAM and the CLIP verifier once, and encodes each target image for SAM once across rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from flows.config import RunConfig
from flows.defaults import ResolvedSettings, resolve
from flows.plan import DataPlan, local_dir, open_plan
from ovseg_core.device import Runtime, pick_runtime
from ovseg_core.errors import OvsegError
from storage.workspace import Workspace


@dataclass
class WorkerResources:
    """Caches of one process (see the module docstring). Each is keyed by what determines
    its value; none is keyed on the whole run config."""

    runtimes: dict[str | None, Runtime] = field(default_factory=dict)
    plans: dict[str, DataPlan] = field(default_factory=dict)
    """Data plans by the hash of the settings that choose the datasets (`plan_key`)."""
    model_key: tuple | None = None
    model: Any = None
    """The last checkpoint loaded for labelling (one model per worker at a time)."""
    built: dict[tuple, Any] = field(default_factory=dict)
    """Refiners, verifiers and embedding caches, by (kind, what determines them)."""

    def runtime(self, device: str | None) -> Runtime:
        if device not in self.runtimes:
            self.runtimes[device] = pick_runtime(device)
        return self.runtimes[device]

    def data_plan(self, cfg: RunConfig, fresh: bool = False) -> DataPlan:
        """The run's datasets, opened once per process (`fresh`: read the target again)."""
        key = plan_key(cfg)
        if fresh or key not in self.plans:
            self.plans[key] = open_plan(cfg)
        return self.plans[key]

    def once(self, key: tuple, build: Callable[[], Any]) -> Any:
        """`build()` the first time `key` is asked for in this process, the same object after."""
        if key not in self.built:
            self.built[key] = build()
        return self.built[key]


RESOURCES = WorkerResources()
"""This process's resources (lifetime: the process)."""


def plan_key(cfg: RunConfig) -> str:
    """Hash of what chooses a run's datasets: the data settings, the seed (the synthetic world)
    and the workspace (where that world is written)."""
    from storage.hashing import config_hash

    return config_hash({"data": cfg.data.model_dump(mode="json"), "seed": cfg.seed,
                        "workspace": cfg.workspace})


@dataclass
class TaskContext:
    """One task's view of the run: the config, the store, the runtime, the process's
    resources; the data plan and the config's computed defaults on first use."""

    cfg: RunConfig
    store: Workspace
    runtime: Runtime
    resources: WorkerResources

    @classmethod
    def open(cls, cfg: RunConfig, resources: WorkerResources = RESOURCES) -> TaskContext:
        return cls(cfg, Workspace(cfg.workspace), resources.runtime(cfg.device), resources)

    @cached_property
    def resolved(self) -> ResolvedSettings:
        """The config's computed defaults (`flows.defaults`), resolved once per context."""
        return resolve(self.cfg, self.runtime)

    @property
    def plan(self) -> DataPlan:
        return self.resources.data_plan(self.cfg)

    def rescan(self) -> DataPlan:
        """The data plan with the target read again from disk (a new round's images)."""
        return self.resources.data_plan(self.cfg, fresh=True)

    def scratch(self, *parts: str) -> Path:
        """A local scratch folder of this workspace (made if missing)."""
        return local_dir(self.cfg.workspace, *parts)

    def round_dir(self, round: int, *parts: str) -> Path:
        """Round `round`'s scratch folder (training output: `round_dir(r, "train")`)."""
        return self.scratch(f"round={round:03d}", *parts)

    def checkpoint_dir(self, round: int, sha256: str, control: bool = False) -> Path:
        """The local folder of round `round`'s stored checkpoint (`control`: its control's),
        fetched once per hash (the hash recorded in the lineage must match the stored
        weights)."""
        stored = self.store.checkpoint(round, control)
        if stored is None or stored.sha256 != sha256:
            whose = f"round {round}'s control" if control else f"round {round}"
            raise OvsegError(f"{whose}'s checkpoint {sha256[:12]} is missing from "
                             f"{self.cfg.workspace} (found "
                             f"{stored.sha256[:12] if stored else 'none'})")
        dest = self.scratch("checkpoints", sha256[:16])
        if not (dest / "model.safetensors").exists():
            self.store.fetch_checkpoint(stored.uri, str(dest))
        return dest

    def load_checkpoint(self, round: int, sha256: str, cached: bool = True,
                        control: bool = False):
        """Round `round`'s stored model (`control`: its control's) on this task's device.

        cached: keep it as the process's labelling model (`WorkerResources.model`) and reuse
        it while the same checkpoint is asked for; pass False for a copy the caller may change
        (retraining) or one no round labels with (a control). Found by round, not by URI, so a
        moved or copied workspace still works.
        """
        from ovseg_core.checkpoint import load_model
        from ovseg_core.profiling import phase

        key = (self.cfg.workspace, round, sha256, str(self.runtime.device))
        res = self.resources
        if cached and not control and res.model_key == key:
            return res.model
        with phase("load_model"):
            folder = self.checkpoint_dir(round, sha256, control)
            model = load_model(folder).to(self.runtime.device)
        if cached and not control:
            res.model_key, res.model = key, model
        return model
