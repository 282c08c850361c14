"""Screenshots of the Prefect UI for a finished round, taken with headless Chromium: the round's
flow graph with its logs, its task runs, and its report artifact (pictures inline).

Needs a browser (Debian: `apt-get install -y chromium`) and the server the round ran on:

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    uv run python studies/prefect_ui_screenshots.py --out prefect-ui [--round 2]

Writes <out>/round-R-graph-and-logs.png, round-R-task-runs.png and round-R-report.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTH = 1500


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("prefect-ui"))
    parser.add_argument("--round", type=int, help="round number (default: the latest finished)")
    parser.add_argument("--wait-ms", type=int, default=20000,
                        help="virtual time the page gets to load before the picture")
    args = parser.parse_args(argv)
    api = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if not api:
        sys.exit("PREFECT_API_URL is not set: export the URL of the server the round ran on")
    if browser is None:
        sys.exit(f"no browser found ({', '.join(BROWSERS)}): apt-get install -y chromium")
    ui = ui_base(api)
    run_id, name, artifact_id = finished_round(args.round)
    args.out.mkdir(parents=True, exist_ok=True)
    pages = {f"{name}-graph-and-logs": (f"{ui}/runs/flow-run/{run_id}?tab=Logs", 1100),
             f"{name}-task-runs": (f"{ui}/runs/flow-run/{run_id}?tab=TaskRuns", 1100),
             f"{name}-report": (f"{ui}/artifacts/artifact/{artifact_id}", 2600)}
    for stem, (url, height) in pages.items():
        path = args.out / f"{stem}.png"
        subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--window-size={WIDTH},{height}",
                        f"--virtual-time-budget={args.wait_ms}", f"--screenshot={path.resolve()}",
                        url], check=True, capture_output=True, timeout=180)
        print(f"{path}  <- {url}")


def ui_base(api: str) -> str:
    """The UI's base URL (the React UI when the server has it); exits when the UI talks to
    another API than ours (`prefect server start --port P` without PREFECT_SERVER_API_PORT=P)."""
    server = api.removesuffix("/api")
    settings = httpx.get(f"{server}/ui-settings", timeout=10).json()
    if settings["api_url"].rstrip("/") != api:
        sys.exit(f"the UI of {server} talks to {settings['api_url']}, not {api}: start the "
                 "server with PREFECT_SERVER_API_PORT (or PREFECT_UI_API_URL) set to its port")
    base = settings.get("v2_base_url", "/") if "v2" in settings.get("available_uis", []) else "/"
    return server + base.rstrip("/")


def finished_round(round: int | None) -> tuple[str, str, str]:
    """(flow run id, name, report artifact id) of the round's latest completed flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    runs = FlowRunFilter(state=FlowRunFilterState(
        type=FlowRunFilterStateType(any_=[StateType.COMPLETED])))
    if round is not None:
        runs.name = FlowRunFilterName(any_=[f"round-{round}"])
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["ovseg-self-training-round"])),
            flow_run_filter=runs, sort=FlowRunSort.END_TIME_DESC, limit=1)
        if not found:
            sys.exit(f"no completed round{'' if round is None else f' {round}'} on this server")
        run = found[0]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    reports = [a for a in artifacts if (a.key or "").startswith("ovseg-report-round-")]
    if not reports:
        sys.exit(f"flow run {run.name} ({run.id}) published no report artifact")
    return str(run.id), run.name, str(reports[0].id)


if __name__ == "__main__":
    main()
