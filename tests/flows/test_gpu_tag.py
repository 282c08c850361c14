"""The GPU steps carry `cluster.gpu_tag` only where it guards a device (flows.tasks.gpu_tasks):
a tagged task asks the Prefect server for a concurrency slot before it starts."""

from __future__ import annotations

from flows.config import RunConfig
from flows.tasks import gpu_tasks


def tags(cfg: RunConfig) -> list[set[str]]:
    return [set(t.tags) for t in gpu_tasks(cfg)]


def test_steps_on_this_cpu_carry_no_tag():
    assert tags(RunConfig(device="cpu")) == [set()] * 4


def test_steps_on_a_cluster_carry_the_tag():
    cfg = RunConfig.model_validate({"device": "cpu", "cluster": {"task_runner": "dask"}})
    assert tags(cfg) == [{"ovseg-gpu"}] * 4


def test_the_tag_is_a_setting_and_can_be_off():
    dask = {"task_runner": "dask", "gpu_tag": "gpu-a100"}
    assert tags(RunConfig.model_validate({"cluster": dask})) == [{"gpu-a100"}] * 4
    dask["gpu_tag"] = None
    assert tags(RunConfig.model_validate({"cluster": dask})) == [set()] * 4
