"""The watch-target flow starts the next-round deployment through the Prefect API only when the
target's images changed since the last completed stage, and never while a run is under way."""

from __future__ import annotations

import shutil

from tests.flows.conftest import small_config


def test_watcher_starts_next_round_once_when_images_arrive(prefect_api, synthetic_root,
                                                           stage_one_workspace, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.config import DatasetRef
    from flows.pipeline import next_round, watch_target

    target = tmp_path / "target"
    shutil.copytree(synthetic_root / "target" / "images", target)  # what stage one saw
    ws = tmp_path / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg = small_config(synthetic_root, ws)
    data = cfg.data.model_copy(update={"target": DatasetRef(kind="images", root=str(target))})
    cfg = cfg.model_copy(update={"data": data})
    deployment_id = next_round.to_deployment("next-round-watched").apply()
    name = "ovseg-next-round/next-round-watched"

    def runs():
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment_id])))

    quiet = watch_target(cfg, deployment=name)
    assert quiet["changed"] is False and quiet["started"] is None and quiet["round"] == 0
    assert runs() == []

    shutil.copy(target / "target_0000.png", target / "arrived_later.png")
    started = watch_target(cfg, deployment=name)
    assert started["changed"] and started["images"] == 7 and started["started"]
    [run] = runs()
    assert str(run.id) == started["started"] and run.state_type.value == "SCHEDULED"
    assert run.parameters["config"]["data"]["target"]["root"] == str(target)
    assert "new-target-images" in run.tags

    again = watch_target(cfg, deployment=name)  # nobody runs it here: it stays under way
    assert again["changed"] and again["started"] is None
    assert len(runs()) == 1
