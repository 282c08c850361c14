"""Serve the ovseg flows as Prefect deployments from this process (no work pool needed).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m deployments.serve --config run.yaml

Creates four deployments: `self-training` (the whole run, by hand), `next-round` (one more
round, on a nightly schedule), `round` (a given round, by hand, e.g. to redo it) and
`evaluate`. Trigger one by hand with `prefect deployment run 'ovseg-next-round/next-round'`.
"""

from __future__ import annotations

import argparse

NIGHTLY = "0 2 * * *"  # 02:00 every night, in the server's time zone


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML run config (default: the built-in synthetic run)")
    parser.add_argument("--cron", default=NIGHTLY, help="schedule of next-round (cron syntax)")
    args = parser.parse_args(argv)

    from flows.prefect_env import configure_prefect

    configure_prefect(log_level="INFO")
    from prefect import serve

    from flows.config import load_config

    serve(*build_deployments(load_config(args.config).model_dump(mode="json"), args.cron))


def build_deployments(config: dict, cron: str = NIGHTLY) -> list:
    """The four RunnerDeployments, parameterised with a RunConfig as a JSON dict."""
    from flows.pipeline import evaluate, next_round, self_training, self_training_round

    return [
        self_training.to_deployment("self-training", parameters={"config": config},
                                    tags=["ovseg"]),
        next_round.to_deployment("next-round", parameters={"config": config}, cron=cron,
                                 tags=["ovseg"]),
        self_training_round.to_deployment("round", parameters={"config": config, "round": 1},
                                          tags=["ovseg"]),
        evaluate.to_deployment("evaluate", parameters={"config": config, "round": 0},
                               tags=["ovseg"]),
    ]


if __name__ == "__main__":
    main()
