"""A round SIGKILLed at several points, then run again, equals an uninterrupted round.

Each run is a real `ovseg run` process talking to the session's Prefect server; the kill is a
real SIGKILL at a named point (`flows.faults`). Stage one is computed once and copied into
every workspace, so only round 1 is run here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from storage.query import run_sql
from storage.workspace import Workspace
from tests.flows.conftest import pseudo_label_rows, small_config

VOLATILE = {"started_at", "ended_at", "checkpoint_uri", "git_commit"}


def _run(cfg_path: Path, api_url: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PREFECT_API_URL=api_url, PREFECT_LOGGING_LEVEL="ERROR")
    env.pop("OVSEG_KILL_AT", None)
    if kill_at:
        env["OVSEG_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "flows.cli", "run", "--config", str(cfg_path)],
                          env=env, capture_output=True, text=True, timeout=600)


def _write_config(synthetic_root: Path, workspace: Path) -> Path:
    cfg = small_config(synthetic_root, workspace, rounds=1)
    path = workspace.parent / f"{workspace.name}.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def _state(workspace: Path) -> dict:
    """Everything a round leaves that must not depend on interruptions."""
    ws = Workspace(str(workspace))
    images = run_sql(ws, "SELECT * FROM images ORDER BY round, image_id")
    lineage = [{k: v for k, v in r.to_dict().items() if k not in VOLATILE}
               for r in ws.lineage()]
    return {"rows": pseudo_label_rows(workspace), "images": images.to_pylist(), "lineage": lineage,
            "checkpoints": {r: ws.checkpoint(r).sha256 for r in (0, 1)}}


@pytest.fixture(scope="module")
def reference(prefect_api, synthetic_root, stage_one_workspace, tmp_path_factory):
    """An uninterrupted round 1 on a copy of the stage-one workspace."""
    ref = tmp_path_factory.mktemp("resume") / "reference"
    shutil.copytree(stage_one_workspace, ref)
    done = _run(_write_config(synthetic_root, ref), prefect_api)
    assert done.returncode == 0, done.stderr[-3000:]
    return _state(ref)


@pytest.mark.parametrize("kill_at", [
    "inference:1:1",            # mid-shard: shard 0 committed, shard 1 inferred, not written
    "after_shard_commit:1:0",   # between shard commits
    "train_step:1:2",           # during retraining, after a mid-run trainer checkpoint
])
def test_killed_round_resumes_to_the_same_result(reference, prefect_api, synthetic_root,
                                                 stage_one_workspace, tmp_path, kill_at):
    expected = reference
    ws = tmp_path / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg_path = _write_config(synthetic_root, ws)
    killed = _run(cfg_path, prefect_api, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert Workspace(str(ws)).checkpoint(1) is None or kill_at.startswith("train")
    resumed = _run(cfg_path, prefect_api)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = _state(ws)
    for key in expected:  # one key at a time, so a failure names what differs
        assert state[key] == expected[key], key
