"""The quality gate: checks on a round's committed pseudo-labels before it retrains.

A failing check stops the round there with one message (the check, its value and threshold,
how to inspect the rows, the two ways on), unless the round is in `quality.accept_rounds`.
Every outcome is a lineage record of stage "quality_gate" (metrics: the values; config: the
thresholds and whether the round was accepted) and, inside a flow run, a Prefect Markdown
artifact `ovseg-quality-round-R`. A round whose gate completed is not checked again.
"""

from __future__ import annotations

from flows.config import RunConfig
from flows.plan import round_manifest_hash, workspace
from ovseg_core.constants import DEFAULT_WORKSPACE
from ovseg_core.errors import OvsegError
from ovseg_core.progress import say
from storage.records import LineageRecord, utc_now
from storage.stats import quality_values

STAGE = "quality_gate"
CHECKS = (("labelled_share", "min_labelled_images", "min"), ("coverage", "min_coverage", "min"),
          ("trusted_share", "min_trusted_share", "min"), ("sam_iou_mean", "min_sam_iou", "min"),
          ("class_shift", "max_class_shift", "max"))
"""(value of `storage.stats.quality_values`, its `quality` setting, bound) of each check."""
COUNTS = ("images", "labelled_images", "gated", "accepted")


def check_round(cfg: RunConfig, round: int) -> list[dict]:
    """Check round `round`'s committed pseudo-labels, record and publish the outcome, and raise
    OvsegError when a check fails and the round is not accepted. Returns the checks ([] when
    the round's gate already completed)."""
    from flows.report import publish_artifact  # matplotlib: not in every worker that imports steps

    ws = workspace(cfg)
    if any(r.stage == STAGE and r.status == "completed" for r in ws.lineage(round)):
        return []
    started, values = utc_now(), quality_values(ws, round)
    results = checks(cfg, round, values)
    failed = [c for c in results if not c["passed"]]
    accepted = round in cfg.quality.accept_rounds
    stopped = bool(failed) and not accepted
    ws.write_lineage(_record(cfg, round, values, results, accepted, stopped, started))
    publish_artifact(f"ovseg-quality-round-{round}", f"ovseg quality gate, round {round}",
                     lambda: markdown(round, values, results, accepted))
    if stopped:
        raise OvsegError(message(cfg, round, values, failed))
    say(f"round {round}: quality gate {'accepted despite failing checks' if failed else 'passed'}"
        f": " + ", ".join(_value(c, values) for c in results))
    return results


def checks(cfg: RunConfig, round: int, values: dict) -> list[dict]:
    """[{check, value, bound ('min'/'max'), threshold, passed}] of the checks that are on (the
    class shift is not checked in round 1). A min check fails when its value is missing (no
    gated region); a max check passes (nothing to compare)."""
    results = []
    for name, setting, bound in CHECKS:
        threshold = getattr(cfg.quality, setting)
        if threshold is None or (name == "class_shift" and round < 2):
            continue
        value = values[name]
        if bound == "min":
            passed = value is not None and value >= threshold
        else:
            passed = value is None or value <= threshold
        results.append({"check": name, "value": value, "bound": bound, "threshold": threshold,
                        "passed": passed})
    return results


def message(cfg: RunConfig, round: int, values: dict, failed: list[dict]) -> str:
    """The one-line error of a stopped round; its commands run as printed (`ovseg_command`)."""
    import shlex

    from flows.invocation import ovseg_command

    where = "" if cfg.workspace == DEFAULT_WORKSPACE else \
        f" --workspace {shlex.quote(cfg.workspace)}"
    ovseg = ovseg_command()
    found = "; ".join(_failure(c, values) for c in failed)
    return (f"round {round} stopped by the quality gate before retraining: {found}. Its "
            f"pseudo-labels are committed: inspect them with `{ovseg} sql \"SELECT * FROM "
            f"class_stats WHERE round = {round}\"{where}`; then go on anyway with `{ovseg} run "
            f"--accept-round {round}{where}` (and the run's other options), or change the "
            f"threshold (quality: in the config) and run again, or change the labelling settings "
            f"and run `{ovseg} run --redo-round {round}{where}`")


def _failure(check: dict, values: dict) -> str:
    setting = next(s for name, s, _ in CHECKS if name == check["check"])
    sign = "<" if check["bound"] == "min" else ">"
    return f"{_value(check, values)} {sign} quality.{setting} {check['threshold']}"


def _value(check: dict, values: dict) -> str:
    """The check's name, value and what it counts, e.g. 'trusted_share 0.500 (3 of 6 gated
    regions)'."""
    detail = {"labelled_share": f"{values['labelled_images']} of {values['images']} images",
              "trusted_share": f"{values['accepted']} of {values['gated']} gated regions",
              "sam_iou_mean": f"{values['gated']} gated regions",
              "class_shift": f"class {values['class_shift_class']}"}.get(check["check"])
    return f"{check['check']} {_fmt(check['value'])}{f' ({detail})' if detail else ''}"


def markdown(round: int, values: dict, results: list[dict], accepted: bool) -> str:
    """The artifact: the outcome and a table of the checks."""
    failed = any(not c["passed"] for c in results)
    outcome = ("stopped before retraining" if failed and not accepted else
               "accepted (quality.accept_rounds) despite failing checks" if failed else "passed")
    lines = [f"# ovseg quality gate: round {round}", "", f"**{outcome}**", "",
             "| check | value | bound | threshold | passed |", "|---|---|---|---|---|"]
    lines += [f"| {_value(c, values).replace(' ', ' | ', 1)} | {c['bound']} | {c['threshold']}"
              f" | {'yes' if c['passed'] else '**no**'} |" for c in results]
    lines += ["", ", ".join(f"{k}: {values[k]}" for k in COUNTS)]
    return "\n".join(lines)


def _fmt(value) -> str:
    return "none" if value is None else f"{value:.3f}"


def _record(cfg: RunConfig, round: int, values: dict, results: list[dict], accepted: bool,
            stopped: bool, started: str) -> LineageRecord:
    from storage.lineage import package_provenance

    version, commit = package_provenance()
    thresholds = {setting: getattr(cfg.quality, setting) for _, setting, _ in CHECKS}
    return LineageRecord(
        stage=STAGE, round=round, parent_round=round - 1, checkpoint_uri=None,
        checkpoint_sha256=None, config=thresholds | {"accepted": accepted},
        package_version=version, git_commit=commit,
        dataset_manifest_hash=round_manifest_hash(cfg, round),
        gate_threshold=cfg.self_training.gate_threshold, started_at=started,
        ended_at=utc_now(), status="failed" if stopped else "completed",
        row_counts={k: values[k] for k in COUNTS},
        metrics={name: values[name] for name, _, _ in CHECKS}
        | {"failed_checks": sum(not c["passed"] for c in results)})
