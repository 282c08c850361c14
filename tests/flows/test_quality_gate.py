"""The quality gate stops a round whose SAM masks are rarely trusted, before retraining."""

from __future__ import annotations

import shutil

import pytest

from storage.workspace import Workspace
from tests.flows.conftest import small_config


def test_a_round_below_the_trusted_share_stops_before_retraining(
        prefect_api, synthetic_root, stage_one_workspace, tmp_path):
    from flows.pipeline import round_flow
    from ovseg_core.errors import OvsegError

    ws = tmp_path / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg = small_config(synthetic_root, ws, rounds=1)  # its refiner is a random tiny SAM
    st = cfg.self_training.model_copy(update={"min_trusted_share": 0.5})
    cfg = cfg.model_copy(update={"self_training": st})
    with pytest.raises(OvsegError, match="quality gate"):
        round_flow(cfg)(cfg, 1)
    store = Workspace(str(ws))
    assert store.is_round_committed(1) and store.checkpoint(1) is None
