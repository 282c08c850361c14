"""Serve the ovseg flows as Prefect deployments from this process (no work pool needed).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m deployments.serve --config run.yaml

Creates five deployments: `self-training` (the whole run, by hand), `next-round` (one more
round, on a nightly schedule), `watch-target` (starts `next-round` when images were added to
the target; every few minutes), `round` (a given round, by hand, e.g. to redo it) and
`evaluate`. Trigger one by hand with `prefect deployment run 'ovseg-next-round/next-round'`.
The work-pool deployments of deployments/prefect.yaml carry other names (`...-pool`), so the
two ways never replace each other's deployments.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

NIGHTLY = "0 2 * * *"  # 02:00 every night, in the server's time zone
WATCH_EVERY_S = 300
NEXT_ROUND = "ovseg-next-round/next-round"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML run config (default: the built-in synthetic run)")
    parser.add_argument("--cron", default=NIGHTLY, help="schedule of next-round (cron syntax)")
    parser.add_argument("--watch-every", type=float, default=WATCH_EVERY_S, metavar="SECONDS",
                        help="interval of watch-target (0: do not serve it)")
    args = parser.parse_args(argv)
    if not os.environ.get("PREFECT_API_URL"):
        sys.exit("PREFECT_API_URL is not set: start a server (prefect server start) and export "
                 "PREFECT_API_URL=http://127.0.0.1:4200/api")

    from flows.prefect_env import configure_prefect

    configure_prefect(log_level="INFO")
    from prefect import serve

    from flows.config import load_config
    from ovseg_core.errors import OvsegError

    try:
        deployments = build_deployments(load_config(args.config).model_dump(mode="json"),
                                        args.cron, args.watch_every)
        refuse_pool_deployments(deployments)
    except OvsegError as exc:
        sys.exit(str(exc))
    serve(*deployments)


def build_deployments(config: dict, cron: str = NIGHTLY,
                      watch_every: float = WATCH_EVERY_S) -> list:
    """The RunnerDeployments, parameterised with a RunConfig as a JSON dict."""
    from flows.pipeline import (
        evaluate,
        next_round,
        self_training,
        self_training_round,
        watch_target,
    )

    deployments = [
        self_training.to_deployment("self-training", parameters={"config": config},
                                    tags=["ovseg"]),
        next_round.to_deployment("next-round", parameters={"config": config}, cron=cron,
                                 concurrency_limit=1, tags=["ovseg"]),
        self_training_round.to_deployment("round", parameters={"config": config, "round": 1},
                                          tags=["ovseg"]),
        evaluate.to_deployment("evaluate", parameters={"config": config, "round": 0},
                               tags=["ovseg"]),
    ]
    if watch_every > 0:
        deployments.append(watch_target.to_deployment(
            "watch-target", parameters={"config": config, "deployment": NEXT_ROUND},
            interval=timedelta(seconds=watch_every), tags=["ovseg"]))
    return deployments


def refuse_pool_deployments(deployments: list) -> None:
    """OvsegError when the server holds a work-pool deployment under one of these names:
    serving would silently turn it into a served one."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from ovseg_core.errors import OvsegError

    with get_client(sync_client=True) as client:
        for d in deployments:
            name = f"{d.flow_name}/{d.name}"
            try:
                existing = client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                raise OvsegError(f"deployment {name} belongs to work pool "
                                 f"{existing.work_pool_name}; serving would take it over: "
                                 f"delete it first (prefect deployment delete '{name}')")


if __name__ == "__main__":
    main()
