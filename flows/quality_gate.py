"""The quality gate: checks on a round's committed pseudo-labels before it retrains.

A failing check stops the round there with one message (the check, its value and threshold,
how to inspect the rows, the two ways on), unless the round is in `quality.accept_rounds`.
Every outcome is a lineage record of stage "quality_gate" (metrics: the values; config: the
thresholds and whether the round was accepted) and, inside a flow run, a Prefect Markdown
artifact `ovseg-quality-round-R`. A round whose gate completed, or that has retrained, is not
checked again. The flow runs it as its own task (`quality-gate-roundR`) between committing a
round and retraining it, so a stopped round shows a failed gate task.
"""

from __future__ import annotations

from flows.config import QualitySettings
from flows.context import TaskContext
from flows.plan import round_manifest_hash
from flows.records import GateCheck, GateOutcome
from ovseg_core.constants import DEFAULT_WORKSPACE
from ovseg_core.errors import OvsegError
from ovseg_core.progress import say
from storage.records import LineageRecord, utc_now
from storage.stats import quality_values
from storage.terms import COMPLETED, FAILED, QUALITY_GATE

CHECKS = (("labelled_share", "min_labelled_images", "min"), ("coverage", "min_coverage", "min"),
          ("trusted_share", "min_trusted_share", "min"), ("sam_iou_mean", "min_sam_iou", "min"),
          ("class_shift", "max_class_shift", "max"))
"""(value of `storage.stats.quality_values`, its `quality` setting, bound) of each check."""
COUNTS = ("images", "labelled_images", "gated", "accepted")


def check_round(ctx: TaskContext, round: int) -> GateOutcome:
    """Check round `round`'s committed pseudo-labels, record and publish the outcome, and raise
    OvsegError when a check fails and the round is not accepted. Returns the outcome
    (`skipped` when the round's gate completed before or the round has retrained)."""
    from flows.report import publish_artifact  # matplotlib: not in every worker that imports steps

    store, quality = ctx.store, ctx.cfg.quality
    if store.checkpoint(round) is not None or any(
            r.stage == QUALITY_GATE and r.status == COMPLETED for r in store.lineage(round)):
        return GateOutcome(round, skipped=True)
    started, values = utc_now(), quality_values(store, round)
    outcome = GateOutcome(round, checks(quality, round, values),
                          accepted=round in quality.accept_rounds)
    store.write_lineage(_record(ctx, outcome, values, started))
    publish_artifact(f"ovseg-quality-round-{round}", f"ovseg quality gate, round {round}",
                     lambda: markdown(outcome, values))
    if outcome.stops:
        raise OvsegError(message(ctx.cfg.workspace, round, values, outcome.failed))
    say(f"round {round}: quality gate "
        f"{'accepted despite failing checks' if outcome.failed else 'passed'}: "
        + ", ".join(_value(c, values) for c in outcome.checks))
    return outcome


def checks(quality: QualitySettings, round: int, values: dict) -> tuple[GateCheck, ...]:
    """The checks that are on (the class shift is not checked in round 1), on `values`
    (`storage.stats.quality_values`). A min check fails when its value is missing (no gated
    region); a max check passes (nothing to compare)."""
    results = []
    for name, setting, bound in CHECKS:
        threshold = getattr(quality, setting)
        if threshold is None or (name == "class_shift" and round < 2):
            continue
        value = values[name]
        if bound == "min":
            passed = value is not None and value >= threshold
        else:
            passed = value is None or value <= threshold
        results.append(GateCheck(name, value, bound, threshold, passed))
    return tuple(results)


def message(workspace: str, round: int, values: dict, failed: tuple[GateCheck, ...]) -> str:
    """The one-line error of a stopped round; its commands run as printed (`ovseg_command`)."""
    import shlex

    from flows.invocation import ovseg_command

    where = "" if workspace == DEFAULT_WORKSPACE else f" --workspace {shlex.quote(workspace)}"
    ovseg = ovseg_command()
    found = "; ".join(_failure(c, values) for c in failed)
    return (f"round {round} stopped by the quality gate before retraining: {found}. Its "
            f"pseudo-labels are committed: inspect them with `{ovseg} sql \"SELECT * FROM "
            f"class_stats WHERE round = {round}\"{where}`; then go on anyway with `{ovseg} run "
            f"--accept-round {round}{where}` (and the run's other options), or change the "
            f"threshold (quality: in the config) and run again, or change the labelling settings "
            f"and run `{ovseg} run --redo-round {round}{where}`")


def _failure(check: GateCheck, values: dict) -> str:
    setting = next(s for name, s, _ in CHECKS if name == check.check)
    sign = "<" if check.bound == "min" else ">"
    return f"{_value(check, values)} {sign} quality.{setting} {check.threshold}"


def _value(check: GateCheck, values: dict) -> str:
    """The check's name, value and what it counts, e.g. 'trusted_share 0.500 (3 of 6 gated
    regions)'."""
    detail = {"labelled_share": f"{values['labelled_images']} of {values['images']} images",
              "trusted_share": f"{values['accepted']} of {values['gated']} gated regions",
              "sam_iou_mean": f"{values['gated']} gated regions",
              "class_shift": f"class {values['class_shift_class']}"}.get(check.check)
    return f"{check.check} {_fmt(check.value)}{f' ({detail})' if detail else ''}"


def markdown(outcome: GateOutcome, values: dict) -> str:
    """The artifact: the outcome and a table of the checks."""
    said = ("stopped before retraining" if outcome.stops else
            "accepted (quality.accept_rounds) despite failing checks" if outcome.failed
            else "passed")
    lines = [f"# ovseg quality gate: round {outcome.round}", "", f"**{said}**", "",
             "| check | value | bound | threshold | passed |", "|---|---|---|---|---|"]
    lines += [f"| {_value(c, values).replace(' ', ' | ', 1)} | {c.bound} | {c.threshold}"
              f" | {'yes' if c.passed else '**no**'} |" for c in outcome.checks]
    lines += ["", ", ".join(f"{k}: {values[k]}" for k in COUNTS)]
    return "\n".join(lines)


def _fmt(value) -> str:
    return "none" if value is None else f"{value:.3f}"


def _record(ctx: TaskContext, outcome: GateOutcome, values: dict, started: str
            ) -> LineageRecord:
    from storage.lineage import package_provenance

    version, commit = package_provenance()
    round, cfg = outcome.round, ctx.cfg
    thresholds = {setting: getattr(cfg.quality, setting) for _, setting, _ in CHECKS}
    return LineageRecord(
        stage=QUALITY_GATE, round=round, parent_round=round - 1, checkpoint_uri=None,
        checkpoint_sha256=None, config=thresholds | {"accepted": outcome.accepted},
        package_version=version, git_commit=commit,
        dataset_manifest_hash=round_manifest_hash(ctx.store, round),
        gate_threshold=cfg.self_training.gate_threshold, started_at=started,
        ended_at=utc_now(), status=FAILED if outcome.stops else COMPLETED,
        row_counts={k: values[k] for k in COUNTS},
        metrics={name: values[name] for name, _, _ in CHECKS}
        | {"failed_checks": len(outcome.failed)})
