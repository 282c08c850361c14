"""A round fanned out over a local Dask cluster writes exactly the single-process rows."""

from __future__ import annotations

import shutil

import torch

from flows.config import ClusterSettings
from storage.workspace import Workspace
from tests.flows.conftest import pseudo_label_rows, small_config


def test_two_dask_workers_write_the_rows_of_a_single_process_round(
        prefect_api, synthetic_root, stage_one_workspace, tmp_path):
    from flows.pipeline import round_flow

    local_ws, dask_ws = tmp_path / "local", tmp_path / "dask"
    shutil.copytree(stage_one_workspace, local_ws)
    shutil.copytree(stage_one_workspace, dask_ws)
    local = small_config(synthetic_root, local_ws, rounds=1)
    fanned = small_config(synthetic_root, dask_ws, rounds=1).model_copy(
        update={"cluster": ClusterSettings(task_runner="dask", workers=2)})

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each Dask worker: CPU float sums depend on thread count
    try:
        round_flow(local)(local, 1)
    finally:
        torch.set_num_threads(threads)
    round_flow(fanned)(fanned, 1)

    rows = pseudo_label_rows(dask_ws)
    assert rows and rows == pseudo_label_rows(local_ws)
    shards = Workspace(str(dask_ws)).committed_shards(1)
    assert sorted(shards) == [0, 1]  # 6 images in shards of 3, one task each
    assert Workspace(str(dask_ws)).checkpoint(1) is not None  # retrained after the fan-out
