"""New target images -> the next round: what the `watch-target` flow checks and starts.

The target's manifest hash (sha256 of its sorted image ids, `DataPlan.target_manifest_hash`) is
recorded in every lineage record; the watcher compares the target as it is now with the last
completed stage, and starts the `next-round` deployment through the Prefect API only when they
differ and no run of it is already under way. Works with a self-hosted Prefect server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows.config import RunConfig
from flows.plan import rescan_target, workspace
from storage.terms import COMPLETED, TRAINING_STAGES

DUE_WITHIN = timedelta(seconds=60)
"""A scheduled run starting this soon counts as under way (it will label the new images)."""


def target_change(cfg: RunConfig) -> dict:
    """{"changed", "reason", "round", "images"}: whether the target's images differ from those
    the last completed stage (stage one or a round) saw."""
    done = [r for r in workspace(cfg).lineage() if r.status == COMPLETED
            and r.stage in TRAINING_STAGES]
    if not done:
        return {"changed": False, "round": None, "images": None,
                "reason": "stage one has not completed: run next-round first"}
    last = max(done, key=lambda r: r.round)
    plan = rescan_target(cfg)
    changed = plan.target_manifest_hash() != last.dataset_manifest_hash
    images = len(plan.target.image_ids)
    reason = (f"the target's {images} images differ from those round {last.round} saw"
              if changed else f"the target's {images} images are those round {last.round} saw")
    return {"changed": changed, "round": last.round, "images": images, "reason": reason}


def runs_under_way(deployment: str) -> list[str]:
    """Names of the runs of `deployment` (flow/deployment name) that are running, pending, or
    scheduled to start within DUE_WITHIN."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    open_states = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
                   StateType.CANCELLING]
    due = datetime.now(UTC) + DUE_WITHIN
    with get_client(sync_client=True) as client:
        target = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[target.id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=open_states))))
    return [run.name for run in runs if run.state_type != StateType.SCHEDULED
            or run.expected_start_time is None or run.expected_start_time <= due]


def start_round(deployment: str, cfg: RunConfig) -> str:
    """Start a run of `deployment` with this config now (not waiting for it); its id."""
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters={"config": cfg.model_dump(mode="json")},
                         timeout=0, as_subflow=False, tags=["ovseg", "new-target-images"])
    return str(run.id)
