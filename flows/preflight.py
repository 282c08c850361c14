"""Checks at the start of every flow: the run's device exists on this machine and the settings
that name local files and folders point at real ones, so a deployment's placeholder
(deployments/prefect.yaml's `/data/...` paths) fails at once with one line naming the setting,
not an hour later deep inside a task.
"""

from __future__ import annotations

import os
from pathlib import Path

from flows.config import RunConfig
from ovseg_core.device import pick_runtime
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.sam_encoder import default_sam_checkpoint
from storage.fsio import local_path

WHERE = ("set it in the run's config (for a deployment: its `config` parameter; "
         "deployments/prefect.yaml ships placeholder /data and /weights paths)")


def check_config(cfg: RunConfig) -> None:
    """OvsegError, one line naming the device this machine lacks or every setting whose local
    path does not exist."""
    pick_runtime(cfg.device)  # stage one and retraining run on this machine
    problems = [f"{name} = {path} does not exist" for name, path in _local_paths(cfg)
                if not Path(path).exists()]
    workspace = _workspace_problem(cfg.workspace)
    if workspace:
        problems.append(workspace)
    if problems:
        raise OvsegError(f"{'; '.join(problems)} on this machine: {WHERE}")


def _local_paths(cfg: RunConfig) -> list[tuple[str, str]]:
    """(setting, path) of every local file or folder the run reads."""
    paths = [(f"data.{name}.root", ref.root) for name in
             ("source", "source_val", "target", "target_eval")
             if (ref := getattr(cfg.data, name)) is not None]
    paths += [(f"model.{name}", value) for name in ("clip_weights", "sam_checkpoint")
              if (value := getattr(cfg.model, name))]
    st = cfg.self_training
    if st.refiner_sam not in ("model", "tiny"):
        if st.refiner_checkpoint:
            paths.append(("self_training.refiner_checkpoint", st.refiner_checkpoint))
        else:  # the variant's default file, under $OVSEG_WEIGHTS_DIR
            default = default_sam_checkpoint(st.refiner_sam)
            paths.append((f"self_training.refiner_checkpoint (unset: {st.refiner_sam}'s "
                           "default file, under $OVSEG_WEIGHTS_DIR)", str(default)))
    return [(name, local_path(path)) for name, path in paths if local_path(path) is not None]


def _workspace_problem(workspace: str) -> str | None:
    """Why a local workspace cannot be created or written, or None."""
    local = local_path(workspace)
    if local is None:
        return None
    path = Path(local).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return f"workspace = {workspace}: {existing} is not a folder"
    if not os.access(existing, os.W_OK):
        return f"workspace = {workspace}: {existing} is not writable"
    return None
