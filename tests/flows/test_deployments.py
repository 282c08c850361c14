"""Deployments declare the real flows with valid parameters and a nightly schedule."""

from pathlib import Path

import pytest
import yaml

from flows.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def test_served_deployments_carry_a_valid_config_and_schedule():
    from deployments.serve import NIGHTLY, WATCH_EVERY_S, build_deployments

    config = RunConfig().model_dump(mode="json")
    deployments = {d.name: d for d in build_deployments(config)}
    assert set(deployments) == {"self-training", "next-round", "round", "evaluate",
                                "watch-target"}
    nightly = deployments["next-round"]
    assert [s.schedule.cron for s in nightly.schedules] == [NIGHTLY]
    assert nightly.concurrency_limit == 1  # the watcher and the schedule never overlap rounds
    watch = deployments["watch-target"]
    assert [s.schedule.interval.total_seconds() for s in watch.schedules] == [WATCH_EVERY_S]
    assert watch.parameters["deployment"] == f"{nightly.flow_name}/{nightly.name}"
    RunConfig.model_validate(nightly.parameters["config"])
    assert deployments["round"].parameters["round"] == 1


def test_prefect_yaml_entrypoints_and_configs_are_valid():
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    import flows.pipeline as pipeline

    for deployment in spec["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        assert (ROOT / path).is_file()
        assert hasattr(pipeline, name)
        RunConfig.model_validate(deployment["parameters"]["config"])


def test_pool_and_served_deployments_never_share_a_name():
    from deployments.serve import build_deployments

    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    served = {d.name for d in build_deployments(RunConfig().model_dump(mode="json"))}
    pooled = {d["name"] for d in spec["deployments"]}
    assert served.isdisjoint(pooled)
    names = {f"{d['entrypoint'].split(':')[1]}/{d['name']}" for d in spec["deployments"]}
    watcher = next(d for d in spec["deployments"] if d["name"] == "watch-target-pool")
    assert watcher["parameters"]["deployment"] == "ovseg-next-round/next-round-pool"
    assert "next_round/next-round-pool" in names


def test_pool_pull_step_names_a_missing_ovseg_repo(monkeypatch, tmp_path):
    """The worker's first pull step stops with one line when OVSEG_REPO is not a folder."""
    import asyncio

    from prefect.deployments.steps.utility import run_shell_script

    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    check = spec["pull"][0]["prefect.deployments.steps.run_shell_script"]
    monkeypatch.delenv("OVSEG_REPO", raising=False)
    with pytest.raises(RuntimeError, match="OVSEG_REPO is not set to a folder"):
        asyncio.run(run_shell_script(**check, stream_output=False))
    monkeypatch.setenv("OVSEG_REPO", str(tmp_path))
    asyncio.run(run_shell_script(**check, stream_output=False))
    assert spec["pull"][1]["prefect.deployments.steps.set_working_directory"] == {
        "directory": "{{ $OVSEG_REPO }}"}


def test_serving_refuses_to_take_over_a_work_pool_deployment(prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from deployments.serve import build_deployments, refuse_pool_deployments
    from flows.pipeline import evaluate
    from ovseg_core.errors import OvsegError

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="ovseg-test-pool", type="process"))
    served = build_deployments(RunConfig().model_dump(mode="json"), watch_every=0)
    refuse_pool_deployments(served)  # nothing of these names on the server yet
    pooled = evaluate.to_deployment("evaluate", parameters={"config": {}, "round": 0})
    pooled.work_pool_name = "ovseg-test-pool"
    pooled.apply()
    with pytest.raises(OvsegError, match=r"^deployment ovseg-evaluate/evaluate belongs to work "
                       r"pool ovseg-test-pool; serving would take it over"):
        refuse_pool_deployments(served)
