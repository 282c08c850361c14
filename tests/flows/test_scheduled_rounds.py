"""Scheduled rounds fire: a real `prefect server start` (SQLite in a temporary PREFECT_HOME) and
`python -m deployments.serve` with a cron of every minute; the server's scheduler creates the
scheduled runs of next-round (prefect 3.9.1's scheduler did not with `whenever` 0.10, see
pyproject), and the serving process picks the first one up when it is due.

The served config points at a target that does not exist, so the run that fires stops at once
with the flow's one-line check naming the setting instead of training for minutes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A child in its own process group (the server starts its own children)."""
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(check, timeout: float, what: str, logs: list[Path]):
    """The first truthy value of check() within `timeout` s, else a failure showing the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"no {what} within {timeout:.0f} s\n{tails}")


@pytest.mark.slow
def test_served_next_round_schedule_creates_and_runs_flow_runs(tmp_path):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    url = f"http://127.0.0.1:{free_port()}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED":
            "false", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "workspace": str(tmp_path / "ws"),
        "data": {"source": {"root": str(tmp_path / "source")},
                 "target": {"kind": "images", "root": str(tmp_path / "not-there")}}}))
    logs = [tmp_path / "server.log", tmp_path / "serve.log"]
    server = start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                    "--port", url.split(":")[2].split("/")[0], "--no-ui"], env, logs[0])
    serving = None
    try:
        wait_for(lambda: _healthy(url), 240, "healthy Prefect server", logs)
        serving = start([sys.executable, "-m", "deployments.serve", "--config", str(config),
                         "--cron", "* * * * *", "--watch-every", "0"],
                        env | {"PREFECT_API_URL": url}, logs[1])
        with SyncPrefectClient(api=url) as client:
            deployment = wait_for(lambda: _deployment(client, "ovseg-next-round/next-round"),
                                  180, "next-round deployment", logs)
            only_it = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))

            def runs():
                return client.read_flow_runs(deployment_filter=only_it,
                                             sort=FlowRunSort.EXPECTED_START_TIME_ASC)

            scheduled = wait_for(lambda: [r for r in runs() if r.state_type.value ==
                                          "SCHEDULED"][:2] or None, 120,
                                 "scheduled next-round runs", logs)
            assert deployment.schedules[0].schedule.cron == "* * * * *"
            if len(scheduled) == 2:
                gap = scheduled[1].expected_start_time - scheduled[0].expected_start_time
                assert gap.total_seconds() == 60
            assert all(r.auto_scheduled and r.expected_start_time.second == 0 and
                       r.parameters["config"]["workspace"] == str(tmp_path / "ws")
                       for r in scheduled)

            # The serving process runs the first one when it is due; it stops at its check.
            fired = wait_for(lambda: [r for r in runs() if r.state_type.value in
                                      ("FAILED", "CRASHED", "COMPLETED")], 240,
                             "finished next-round run", logs)
            assert fired[0].state_type.value == "FAILED", fired[0].state
            assert "data.target.root" in fired[0].state.message, fired[0].state.message
            assert fired[0].auto_scheduled  # made by the server's scheduler, not by hand
    finally:
        if serving is not None:
            stop(serving)
        stop(server)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _deployment(client, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None
