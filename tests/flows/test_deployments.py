"""Deployments declare the real flows with valid parameters and a nightly schedule."""

from pathlib import Path

import yaml

from flows.config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def test_served_deployments_carry_a_valid_config_and_schedule():
    from deployments.serve import NIGHTLY, build_deployments

    config = RunConfig().model_dump(mode="json")
    deployments = {d.name: d for d in build_deployments(config)}
    assert set(deployments) == {"self-training", "next-round", "round", "evaluate"}
    nightly = deployments["next-round"]
    assert [s.schedule.cron for s in nightly.schedules] == [NIGHTLY]
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
