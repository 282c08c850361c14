"""Self-training protocol (issue 26): arms over seeds against a compute-matched control.

Does self-training teach unseen classes? Arms are paired over seeds against the control B,
with tuning and test seeds kept apart.

Every run goes through the real Prefect flow (`flows.pipeline.self_training`) on the built-in
world with the tiny preset, one pretrained tiny CLIP shared by all runs, a held-out target set of
`--target-val` images (default 256; the world draws it from its own random stream), no report
pictures, and every round going on to retraining (`quality.accept_rounds`: a failing quality
check is recorded, not a stop). Per seed S, four workspaces under the workdir:

- `seed{S}-main`: ovseg's defaults, DEA on, control on -> A_dea_on (round 0), B (the control
  of round R), D_dea_on (round R);
- `seed{S}-nodea`: DEA off, control off -> A_dea_off (round 0), D_dea_off (round R);
- `seed{S}-paper`: the paper's stage two (`source_share: 0`, `clip_verify: false`, a
  class-balanced gate at the 0.5 quantile capped at `gate_threshold: 0.9`, `fallback: ignore`),
  control off -> C (round R);
- `seed{S}-noclip`: defaults with `clip_verify: false`, control off -> E (round R).

main, paper and noclip start from one stage one (DEA on), trained once in `seed{S}-stageone`
and copied; a copy's stage-one checkpoint hash is checked against the original's. The control
(B) is the pipeline's `self_training.control`: stage one continued on the labelled source alone
for exactly each round's retraining steps, batch and seed, recorded in the lineage with stage
"control". Each (arm, seed) writes `<runs>/<arm>-seed<S>.json`, so a stopped run resumes (arms
whose JSON exists are skipped; the pipeline resumes a half-done workspace by itself). The main
workspaces of every seed run before the others. Prints, per arm and metric, the mean with a
95% bootstrap interval, the paired difference to B with its interval, a Wilcoxon p-value and
the seeds it is positive on (studies/protocol_stats.py), and records the
`selftrain_protocol` (test) or `selftrain_protocol_tuning` results unit.

    uv run python studies/selftrain_protocol.py --phase tuning            # seeds 0 1 2
    uv run python studies/selftrain_protocol.py --phase test --jobs 2     # seeds 100-119

The test phase refuses to start while files under ovseg_core/, flows/, storage/ or the
protocol's own scripts differ from the commit (changed, or new and not ignored by git;
`--allow-dirty`, recorded in every JSON, is for development only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue

from storage.terms import COMPLETED, SELF_TRAINING_ROUND, STAGE_ONE

REPO = Path(__file__).resolve().parents[1]
CONTROL = "control"
"""The lineage stage of the control's records: the pipeline's `storage.terms.CONTROL`, written
here so that the protocol reads a workspace also where that term is not defined."""
METRICS = {"seen": "target_seen_miou", "unseen": "target_unseen_miou", "all": "target_miou",
           "pl_precision": "pl_refined_miou", "pl_coverage": "pl_refined_coverage"}
"""Metric name -> lineage metrics key (%): held-out target mIoU; the round's pseudo-label
mIoU over the pixels they paint and their coverage (rounds only)."""
MODEL_METRICS = ("seen", "unseen", "all")
LABELS = {"seen": "seen mIoU", "unseen": "unseen mIoU", "all": "all mIoU",
          "pl_precision": "pseudo-label mIoU over the pixels they paint",
          "pl_coverage": "pseudo-label coverage"}
WORKSPACES = {
    "stageone": {"dea": True, "self_training": {}, "control": False},
    "main": {"dea": True, "self_training": {}, "control": True, "copy_of": "stageone"},
    "nodea": {"dea": False, "self_training": {}, "control": False},
    "paper": {"dea": True, "control": False, "copy_of": "stageone", "self_training": {
        "source_share": 0.0, "clip_verify": False, "class_balance": 0.5,
        "gate_threshold": 0.9, "fallback": "ignore"}},
    "noclip": {"dea": True, "self_training": {"clip_verify": False}, "control": False,
               "copy_of": "stageone"},
}
"""What each workspace of a seed runs: DEA, self-training settings, the control, and the
workspace whose stage one it copies."""
ARMS = {"A_dea_on": ("main", STAGE_ONE), "B": ("main", CONTROL),
        "D_dea_on": ("main", SELF_TRAINING_ROUND), "A_dea_off": ("nodea", STAGE_ONE),
        "D_dea_off": ("nodea", SELF_TRAINING_ROUND), "C": ("paper", SELF_TRAINING_ROUND),
        "E": ("noclip", SELF_TRAINING_ROUND)}
"""Arm -> (workspace, the lineage stage of its record: stage one (round 0), the control of
round R, or round R)."""
PRIMARY = ("A_dea_on", "B", "D_dea_on")
FROZEN = ("ovseg_core", "flows", "storage", "studies/selftrain_protocol.py",
          "studies/protocol_stats.py")
"""Tracked paths that must be committed before the test phase runs."""
TARGET = "lower 95% bound > +3; positive on >= 16 of 20"


class ProtocolError(Exception):
    """A user's mistake: printed as one line, exit status 2."""


# ---- settings, phases, code version
def phase_seeds(phase: str, seeds: list[int] | None) -> list[int]:
    """The seeds of `phase` (defaults: tuning 0 1 2, test 100..119); ProtocolError when a
    seed belongs to the other phase."""
    if seeds is None:
        return [0, 1, 2] if phase == "tuning" else list(range(100, 120))
    wrong = [s for s in seeds if (s >= 100) == (phase == "tuning")]
    if wrong:
        rule = "below 100" if phase == "tuning" else "100 or above"
        raise ProtocolError(f"--phase {phase} runs seeds {rule} only, not {wrong}")
    return sorted(set(seeds))


def frozen_changes(repo: Path = REPO) -> list[str]:
    """Files under FROZEN that differ from HEAD: changed (staged or not), deleted, or new and
    not ignored by git."""
    out = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all",
                          "--", *FROZEN], capture_output=True, text=True)
    if out.returncode != 0:
        raise ProtocolError(f"cannot read the code version: git status failed: "
                            f"{out.stderr.strip()}")
    return [line[3:] for line in out.stdout.splitlines()]


def code_state(allow_dirty: bool) -> dict:
    """{"git_commit", "dirty", "allow_dirty"} of this checkout."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "unknown"
    return {"git_commit": sha, "dirty": bool(frozen_changes()), "allow_dirty": allow_dirty}


def check_frozen(phase: str, allow_dirty: bool, repo: Path = REPO) -> None:
    """ProtocolError when the test phase would run on uncommitted settings."""
    changed = frozen_changes(repo)
    if phase == "test" and changed and not allow_dirty:
        raise ProtocolError(f"the test phase runs on committed settings only; uncommitted "
                            f"changes in {', '.join(changed[:5])}"
                            f"{' ...' if len(changed) > 5 else ''}: commit them first")


def protocol_settings(args) -> dict:
    """What makes two runs comparable: phase, rounds, steps, held-out size, the CLIP weights."""
    settings = {"phase": args.phase, "rounds": args.rounds, "steps": args.steps,
                "target_val": args.target_val}
    if args.clip:
        settings["clip_weights_sha256"] = weights_sha256(Path(args.clip))
    return settings


def weights_sha256(path: Path) -> str:
    """sha256 of a CLIP file's weights: every tensor's name, dtype, shape and bytes, in name
    order. The file's own bytes would not do: torch.save names its archive after the file, so
    the same weights saved as `a.pt` and `b.pt` differ."""
    import hashlib

    import torch

    from ovseg_core.errors import OvsegError
    from ovseg_core.weights import read_state

    try:
        state = read_state(path, "--clip file")
    except OvsegError as exc:
        raise ProtocolError(str(exc)) from None
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def pin_settings(folder: Path, settings: dict, write: bool = True) -> None:
    """Write `folder`/protocol.json (when `write`), or ProtocolError when it holds other
    settings (runs with other settings are not mixed into one table or resumed under other
    settings)."""
    path = folder / "protocol.json"
    if path.exists():
        pinned = json.loads(path.read_text())
        if pinned != settings:
            raise ProtocolError(f"{folder} holds runs made with {pinned}, not {settings}: "
                                "choose another --runs / --workdir")
        return
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2) + "\n")


def has_control_setting() -> bool:
    """Whether this ovseg's config has `self_training.control` (arm B's records)."""
    from flows.config import SelfTrainingSettings

    return "control" in SelfTrainingSettings.model_fields


# ---- one workspace
def run_config(kind: str, seed: int, path: Path, clip: str, settings: dict):
    """The RunConfig of workspace `kind` of `seed` at `path`."""
    from flows.config import RunConfig

    spec, rounds = WORKSPACES[kind], (0 if kind == "stageone" else settings["rounds"])
    st = {"rounds": rounds, "report_images": 0, **spec["self_training"]}
    if has_control_setting():
        st["control"] = spec["control"]
    train = {} if settings["steps"] is None else {"steps": settings["steps"]}
    return RunConfig.model_validate({
        "workspace": str(path), "seed": seed,
        "data": {"synthetic": {"target_val": settings["target_val"]}},
        "model": {"preset": "tiny", "dea": spec["dea"], "clip_weights": clip},
        "train": train, "self_training": st,
        "quality": {"accept_rounds": list(range(1, rounds + 1))}})


def workspace_path(workdir: Path, kind: str, seed: int) -> Path:
    return workdir / f"seed{seed}-{kind}"


def lineage(path: Path) -> list:
    from storage.workspace import Workspace

    return Workspace(str(path)).lineage() if path.exists() else []


def find_record(records: list, stage: str, round: int):
    """The completed lineage record of `stage` in `round`, or None."""
    return next((r for r in records if r.stage == stage and r.round == round
                 and r.status == COMPLETED), None)


def stage_one_sha(path: Path) -> str | None:
    record = find_record(lineage(path), STAGE_ONE, 0)
    return record and record.checkpoint_sha256


def copy_stage_one(source: Path, dest: Path) -> None:
    """Copy the finished stage-one workspace `source` to `dest` (atomically)."""
    if stage_one_sha(source) is None:
        raise ProtocolError(f"{source} has no completed stage one to copy")
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, symlinks=True)
    tmp.rename(dest)


def run_workspace(kind: str, seed: int, ctx: dict) -> None:
    """Run (or resume) workspace `kind` of `seed`; ProtocolError when a copy's stage one is
    not its source's."""
    from flows.pipeline import self_training

    workdir = Path(ctx["workdir"])
    path = workspace_path(workdir, kind, seed)
    source = WORKSPACES[kind].get("copy_of")
    if source and not path.exists():
        copy_stage_one(workspace_path(workdir, source, seed), path)
    self_training(run_config(kind, seed, path, ctx["clip"], ctx["settings"]))
    if source and stage_one_sha(path) != stage_one_sha(workspace_path(workdir, source, seed)):
        raise ProtocolError(f"{path}'s stage one is not the one of its {source} workspace")


# ---- results of a workspace: one JSON per arm
def arm_result(arm: str, records: list, rounds: int) -> dict | str:
    """The arm's figures from its workspace's lineage, or why they are missing."""
    stage = ARMS[arm][1]
    round = 0 if stage == STAGE_ONE else rounds
    record = find_record(records, stage, round)
    if record is None:
        why = "" if stage != CONTROL or has_control_setting() else (
            " (this ovseg has no self_training.control setting, so it records no control)")
        return f"no completed lineage record with stage {stage!r} and round {round}{why}"
    keys = METRICS if stage == SELF_TRAINING_ROUND else {m: METRICS[m] for m in MODEL_METRICS}
    out = {name: record.metrics.get(key) for name, key in keys.items()}
    return out | {"stage": stage, "round": round, "checkpoint_sha256": record.checkpoint_sha256,
                  "stage_s": seconds_between(record.started_at, record.ended_at)}


def seconds_between(started: str, ended: str | None) -> float | None:
    from datetime import datetime

    if not ended:
        return None
    delta = datetime.fromisoformat(ended) - datetime.fromisoformat(started)
    return round(delta.total_seconds(), 1)


def write_arms(kind: str, seed: int, wall: float, ctx: dict) -> list[str]:
    """Write `<runs>/<arm>-seed<S>.json` of the workspace's requested arms; returns the lines
    saying which arms could not be found."""
    workdir, runs = Path(ctx["workdir"]), Path(ctx["runs"])
    path = workspace_path(workdir, kind, seed)
    records, problems = lineage(path), []
    for arm in (a for a in ctx["arms"] if ARMS[a][0] == kind):
        result = arm_result(arm, records, ctx["settings"]["rounds"])
        if isinstance(result, str):
            problems.append(f"arm {arm}, seed {seed}: {result} in {path}")
            continue
        entry = {"arm": arm, "seed": seed, "workspace": path.name, **result,
                 "stage_one_sha256": stage_one_sha(path), "run_wall_s": round(wall, 1),
                 "settings": ctx["settings"], **ctx["code"]}
        (runs / f"{arm}-seed{seed}.json").write_text(json.dumps(entry, indent=2) + "\n")
    return problems


# ---- jobs: chains of workspaces, run here or in a subprocess each
def plan_jobs(seeds: list[int], arms: list[str], runs: Path) -> list[list[tuple[str, int]]]:
    """Batches of jobs; a job is a chain of (workspace, seed) run in order. The first batch
    makes every seed's shared stage one and runs its main workspace; the second the others.
    Jobs whose requested arms all have their JSON are left out."""
    def missing(kind: str, seed: int) -> bool:
        return any(ARMS[a][0] == kind and not (runs / f"{a}-seed{seed}.json").exists()
                   for a in arms)

    first, second = [], []
    for seed in seeds:
        copies = [k for k in ("main", "paper", "noclip") if missing(k, seed)]
        if copies:
            first.append([("stageone", seed)] + ([("main", seed)] if "main" in copies else []))
        second += [[(k, seed)] for k in ("nodea", "paper", "noclip") if missing(k, seed)]
    return [batch for batch in (first, second) if batch]


def run_job(job: list[tuple[str, int]], ctx: dict) -> list[str]:
    """Run one chain here; returns the problem lines (missing arms)."""
    problems = []
    for kind, seed in job:
        path = workspace_path(Path(ctx["workdir"]), kind, seed)
        if kind == "stageone" and (stage_one_sha(path) or all(
                workspace_path(Path(ctx["workdir"]), k, seed).exists()
                for k in ("main", "paper", "noclip"))):
            continue
        start = time.perf_counter()
        try:
            run_workspace(kind, seed, ctx)
        except Exception:  # the arms it did finish (stage one) are still written
            if kind != "stageone":
                write_arms(kind, seed, time.perf_counter() - start, ctx)
            raise
        wall = time.perf_counter() - start
        print(f"seed {seed} {kind}: {wall:.0f} s", flush=True)
        if kind == "stageone":  # its time counts in the total, once per seed
            (Path(ctx["runs"]) / f"stageone-seed{seed}.json").write_text(
                json.dumps({"seed": seed, "run_wall_s": round(wall, 1)}) + "\n")
        else:
            problems += write_arms(kind, seed, wall, ctx)
    return problems


def run_here(job: list[tuple[str, int]], ctx: dict) -> list[str]:
    """`run_job` in this process; a failure is reported and the next job runs."""
    import traceback

    from ovseg_core.errors import OvsegError
    from storage.errors import StorageError

    try:
        return run_job(job, ctx)
    except (OvsegError, StorageError, ProtocolError) as error:
        return [f"{job_name(job)} failed: {error}"]
    except Exception:
        traceback.print_exc()
        return [f"{job_name(job)} failed (traceback above)"]


def job_name(job: list[tuple[str, int]]) -> str:
    return "+".join(f"seed{s}-{k}" for k, s in job)


def spawn_job(job: list[tuple[str, int]], ctx: dict, slot: int) -> list[str]:
    """Run one chain in a subprocess on one thread, with its own Prefect home (slot); its
    output goes to `<workdir>/logs/<job>.log`."""
    workdir = Path(ctx["workdir"])
    log = workdir / "logs" / f"{job_name(job)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                        "PREFECT_HOME": str((workdir / "prefect" / f"slot{slot}").resolve())}
    payload = json.dumps({"job": job, "ctx": ctx})
    with log.open("a") as out:
        done = subprocess.run([sys.executable, __file__, "--worker", payload], env=env,
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        return [f"{job_name(job)} failed (exit {done.returncode}); see {log}"]
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("problem: ")]
    return [ln.removeprefix("problem: ") for ln in lines]


def worker(payload: str) -> int:
    """A subprocess's entry: run one chain on one thread, print its problem lines (a failed
    workspace among them)."""
    import torch

    from flows.prefect_env import configure_prefect

    torch.set_num_threads(1)
    configure_prefect()
    spec = json.loads(payload)
    for line in run_here([tuple(step) for step in spec["job"]], spec["ctx"]):
        print(f"problem: {line}", flush=True)
    return 0


def run_batches(batches: list, ctx: dict, jobs: int) -> list[str]:
    """Every batch in order, its jobs `jobs` at a time; returns the problem lines."""
    problems: list[str] = []
    slots: Queue[int] = Queue()  # Prefect homes: one per job running at once
    for i in range(jobs):
        slots.put(i)

    def launch(job):
        slot = slots.get()
        print(f"started {job_name(job)}", flush=True)
        try:
            return spawn_job(job, ctx, slot)
        finally:
            slots.put(slot)
            print(f"finished {job_name(job)}", flush=True)

    for batch in batches:
        if jobs == 1:
            for job in batch:
                problems += run_here(job, ctx)
            continue
        with ThreadPoolExecutor(jobs) as pool:
            for lines in pool.map(launch, batch):
                problems += lines
    return problems


def pretrained_clip(root: Path) -> str:
    """The tiny CLIP pretrained on the world's captions (the same file `ovseg run` makes)."""
    from flows.clip_weights import clip_weights, ensure_clip
    from flows.config import RunConfig

    cfg = RunConfig.model_validate({"workspace": str(root / "clip-ws")})
    ensure_clip(cfg)
    return clip_weights(cfg)


# ---- summary
def load_runs(runs: Path, seeds: list[int], arms: list[str]) -> dict[str, dict[int, dict]]:
    """{arm: {seed: its JSON}} of the requested arms and seeds that have one."""
    out: dict[str, dict[int, dict]] = {}
    for arm in arms:
        out[arm] = {s: json.loads(p.read_text()) for s in seeds
                    if (p := runs / f"{arm}-seed{s}.json").exists()}
    return out


def summarise(runs: dict[str, dict[int, dict]]) -> dict:
    """{arm: {metric: {"describe": ..., "vs_B": ...}}} (protocol_stats), metrics that the arm
    has on at least one seed."""
    from studies.protocol_stats import compare, describe

    control = runs.get("B", {})
    out: dict = {}
    for arm, by_seed in runs.items():
        out[arm] = {}
        for metric in METRICS:
            values = {s: r[metric] for s, r in by_seed.items() if r.get(metric) is not None}
            if not values:
                continue
            base = {s: r[metric] for s, r in control.items() if r.get(metric) is not None}
            out[arm][metric] = {"describe": describe(values),
                                "vs_B": None if arm == "B" or not base else compare(values, base)}
    return out


def fmt(x: float | None, signed: bool = False) -> str:
    return "-" if x is None else (f"{x:+.2f}" if signed else f"{x:.2f}")


def interval(ci: list[float] | None, signed: bool = False) -> str:
    return "-" if ci is None else f"[{fmt(ci[0], signed)}, {fmt(ci[1], signed)}]"


def table_lines(summary: dict) -> list[str]:
    """The table: arm x metric, mean [CI], diff vs B [CI], Wilcoxon p, positive seeds, n."""
    head = (f"{'arm':10s} {'metric':13s} {'n':>3s} {'mean':>7s} {'95% CI':>17s} "
            f"{'vs B':>7s} {'95% CI':>17s} {'p':>7s} {'pos':>6s}")
    lines = [head, "-" * len(head)]
    for arm, metrics in summary.items():
        for metric, m in metrics.items():
            d, vs = m["describe"], m["vs_B"] or {}
            pos = f"{vs['positive']}/{vs['n']}" if vs.get("n") else "-"
            p = "-" if vs.get("wilcoxon_p") is None else f"{vs['wilcoxon_p']:.3g}"
            lines.append(f"{arm:10s} {metric:13s} {d['n']:3d} {fmt(d['mean']):>7s} "
                         f"{interval(d['ci95']):>17s} {fmt(vs.get('mean'), True):>7s} "
                         f"{interval(vs.get('ci95'), True):>17s} {p:>7s} {pos:>6s}")
    return lines


def paired_figure(arm: str, base: str, metric: str, vs: dict, target: str = "") -> dict:
    """`arm` - `base` on `metric` (protocol_stats.compare's `vs`, n > 0) as a results figure."""
    from storage.results import figure

    low, high = vs["ci95"]
    return figure(f"{arm} - {base}: {LABELS[metric]}, paired mean over {vs['n']} seeds (95% CI "
                  f"{low:+.2f} to {high:+.2f}; Wilcoxon p {vs['wilcoxon_p']:.3g}; positive on "
                  f"{vs['positive']} of {vs['n']})", round(vs["mean"], 2), "points", target)


def diff_figure(summary: dict, arm: str, metric: str, target: str = "") -> dict:
    """`arm` - B on `metric` as a results figure (value None when either is missing)."""
    from storage.results import figure

    vs = summary.get(arm, {}).get(metric, {}).get("vs_B")
    if not vs or vs["n"] == 0:
        return figure(f"{arm} - B: {LABELS[metric]}, paired mean (arm {arm} or B not recorded)",
                      None, "points", target)
    return paired_figure(arm, "B", metric, vs, target)


PAIRS = (("D_dea_on", "A_dea_on"), ("A_dea_on", "A_dea_off"), ("D_dea_on", "D_dea_off"),
         ("D_dea_off", "A_dea_off"), ("D_dea_on", "E"), ("D_dea_on", "C"))
"""Paired comparisons besides those with B: what the rounds did to stage one's model (with DEA
and without), what DEA does to stage one and to the rounds, what CLIP's check does (D - E),
and ovseg's rounds against the paper's stage two (D - C)."""


def paired_difference(runs: dict[str, dict[int, dict]], arm: str, base: str,
                      metric: str) -> dict | None:
    """`arm` - `base` on `metric` over their shared seeds (protocol_stats.compare), or None
    when they share no seed."""
    from studies.protocol_stats import compare

    values = {a: {s: r[metric] for s, r in runs.get(a, {}).items() if r.get(metric) is not None}
              for a in (arm, base)}
    vs = compare(values[arm], values[base])
    return vs if vs["n"] else None


def pair_lines(runs: dict[str, dict[int, dict]]) -> list[str]:
    """The PAIRS that share seeds, one line per pair and model metric."""
    lines = []
    for arm, base in PAIRS:
        for metric in MODEL_METRICS:
            vs = paired_difference(runs, arm, base, metric)
            if vs is not None:
                lines.append(f"{arm + ' - ' + base:24s} {metric:7s} {vs['n']:3d} "
                             f"{fmt(vs['mean'], True):>7s} {interval(vs['ci95'], True):>17s} "
                             f"p {vs['wilcoxon_p']:.3g}  positive {vs['positive']}/{vs['n']}")
    return lines


def figures(summary: dict, totals: dict, summary_runs: dict | None = None) -> list[dict]:
    """The unit's figures: the primary (unseen D_dea_on - B) first, seen D_dea_on - B, every
    arm's mean per metric, every other arm's difference to B, the PAIRS that share seeds,
    then times and code."""
    from storage.results import figure

    rows = [diff_figure(summary, "D_dea_on", "unseen", TARGET),
            diff_figure(summary, "D_dea_on", "seen", ">= 0 (seen mIoU does not fall)")]
    for arm, metrics in summary.items():
        for metric, m in metrics.items():
            d = m["describe"]
            low, high = d["ci95"]
            rows.append(figure(f"{arm}: {LABELS[metric]}, mean over {d['n']} seeds (95% CI "
                               f"{low:.2f}-{high:.2f})", round(d["mean"], 2), "%"))
    rows += [diff_figure(summary, arm, metric) for arm in summary
             if arm not in ("B", "D_dea_on") for metric in MODEL_METRICS
             if (summary[arm].get(metric) or {}).get("vs_B")]
    pairs = [(arm, base, metric, paired_difference(summary_runs, arm, base, metric))
             for arm, base in PAIRS for metric in MODEL_METRICS] if summary_runs else []
    rows += [paired_figure(arm, base, metric, vs) for arm, base, metric, vs in pairs if vs]
    rows += [figure("compute time, summed over the workspaces of these runs", totals["compute_s"],
                    "s"),
             figure("wall time of the command that recorded this (its own part of a resumed "
                    "run)", totals["wall_s"], "s"),
             figure("code version of the runs", totals["code"])]
    return rows


def reproduce_command(args, seeds: list[int]) -> str:
    """The command that runs (and resumes) this unit."""
    parts = ["uv run python studies/selftrain_protocol.py", f"--phase {args.phase}"]
    if seeds != phase_seeds(args.phase, None):
        parts.append("--seeds " + " ".join(map(str, seeds)))
    if args.rounds != 2:
        parts.append(f"--rounds {args.rounds}")
    if args.steps is not None:
        parts.append(f"--steps {args.steps}")
    if args.target_val != 256:
        parts.append(f"--target-val {args.target_val}")
    if args.arms != list(ARMS):
        parts.append("--arms " + " ".join(args.arms))
    if args.clip:
        parts.append("--clip F  # F: `uv run ovseg clip pretrain --out F`, sha256 in "
                     "protocol.json")
    return " ".join(parts)


def code_versions(runs: dict[str, dict[int, dict]]) -> str:
    """The git commits the runs were made at, with "dirty" where tracked code differed."""
    seen = sorted({r["git_commit"][:10] + (" dirty" if r["dirty"] else "")
                   for by_seed in runs.values() for r in by_seed.values()})
    return ", ".join(seen) or "no runs"


def compute_seconds(runs: dict[str, dict[int, dict]], folder: Path) -> float:
    """Sum over the distinct workspaces of the flow wall time that finished them, with the
    shared stage one of each of their seeds (`<runs>/stageone-seed<S>.json`)."""
    walls = {(r["workspace"], r["seed"]): r["run_wall_s"]
             for by_seed in runs.values() for r in by_seed.values()}
    seeds = {seed for _, seed in walls}
    shared = [json.loads(p.read_text())["run_wall_s"] for s in sorted(seeds)
              if (p := folder / f"stageone-seed{s}.json").exists()]
    return round(sum(walls.values()) + sum(shared), 1)


def report(args, seeds: list[int], wall_s: float, problems: list[str]) -> Path | None:
    """Print the table and record the results unit; returns the unit's file."""
    from storage.results import code_version, figure, machine, record

    runs = load_runs(Path(args.runs), seeds, args.arms)
    summary = summarise(runs)
    totals = {"compute_s": compute_seconds(runs, Path(args.runs)), "wall_s": round(wall_s, 1),
              "code": code_versions(runs)}
    unit = "selftrain_protocol" if args.phase == "test" else "selftrain_protocol_tuning"
    print(f"\n{unit}: seeds {seeds}, {args.rounds} rounds, mIoU in % on "
          f"{args.target_val} held-out target images; vs B = paired difference, points")
    print("\n".join(table_lines(summary)))
    if pairs := pair_lines(runs):
        print("\npaired differences besides B (points): n, mean, 95% CI, Wilcoxon p")
        print("\n".join(pairs))
    absent = [f"{a} seed {s}" for a in args.arms for s in seeds if s not in runs[a]]
    for line in problems + ([f"no result yet: {', '.join(absent)}"] if absent else []):
        print(f"note: {line}")
    print(f"wall time {wall_s:.0f} s; compute summed over workspaces {totals['compute_s']:.0f}"
          f" s; machine {machine()}; runs at {totals['code']}; now at {code_version()}")
    if not any(runs.values()):
        return None
    rows = figures(summary, totals, runs)
    rows.append(figure("seeds", " ".join(map(str, seeds))))
    return record(unit, rows, kind="study", command=reproduce_command(args, seeds),
                  title=f"Self-training protocol ({args.phase} seeds): arms A-E against the "
                        "compute-matched control B, held-out target mIoU",
                  folder=Path(args.results))


# ---- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from storage.results import RESULTS_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("tuning", "test"), required=True,
                        help="tuning: seeds < 100 (default 0 1 2); test: seeds >= 100 (default "
                        "100-119), committed settings only")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="default: the phase's seeds")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                        help="default: every arm (the main workspaces' A_dea_on, B, D_dea_on "
                        "run first for every seed)")
    parser.add_argument("--rounds", type=int, default=2, help="self-training rounds R")
    parser.add_argument("--steps", type=int, default=None,
                        help="stage one's training steps (rounds: a third); default the preset's")
    parser.add_argument("--target-val", type=int, default=256,
                        help="held-out labelled target images (data.synthetic.target_val)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="workspaces run at once, each in a one-thread subprocess with "
                        "its own Prefect home; 1: one at a time in this process")
    parser.add_argument("--clip", default=None,
                        help="a pretrained tiny CLIP file (`ovseg clip pretrain --out F`) to use "
                        "instead of pretraining one in the workdir; its sha256 is pinned with "
                        "the runs")
    parser.add_argument("--runs", default=None, help="default results/<unit>/runs")
    parser.add_argument("--workdir", default=None, help="default ovseg-studies/<unit>")
    parser.add_argument("--results", default=str(RESULTS_DIR),
                        help="folder of the results unit's JSON")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="run the test phase on uncommitted code (development only)")
    parser.add_argument("--summary-only", action="store_true",
                        help="rebuild the table and the record from the JSONs; run nothing")
    args = parser.parse_args(argv)
    unit = "selftrain_protocol" + ("" if args.phase == "test" else "_tuning")
    args.runs = args.runs or str(REPO / "results" / unit / "runs")
    args.workdir = args.workdir or str(REPO / "ovseg-studies" / unit)
    if args.jobs < 1 or args.rounds < 1:
        raise ProtocolError("--jobs and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    seeds = phase_seeds(args.phase, args.seeds)
    if not args.summary_only:
        check_frozen(args.phase, args.allow_dirty)
    pin_settings(Path(args.runs), protocol_settings(args), write=not args.summary_only)
    problems = [] if args.summary_only else run_protocol(args, seeds)
    report(args, seeds, time.perf_counter() - started, problems)
    return 1 if any("failed" in p for p in problems) else 0


def run_protocol(args, seeds: list[int]) -> list[str]:
    """Run every missing (arm, seed); returns the lines naming arms it could not produce."""
    from flows.prefect_env import configure_prefect

    workdir = Path(args.workdir)
    pin_settings(workdir, protocol_settings(args))
    if not has_control_setting():
        print("note: this ovseg has no self_training.control setting: arm B (the control) "
              "cannot be produced", flush=True)
    configure_prefect()
    ctx = {"workdir": str(workdir), "runs": args.runs, "arms": args.arms,
           "settings": protocol_settings(args), "code": code_state(args.allow_dirty),
           "clip": args.clip or pretrained_clip(workdir)}
    return run_batches(plan_jobs(seeds, args.arms, Path(args.runs)), ctx, args.jobs)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker(sys.argv[2]))
    from ovseg_core.errors import OvsegError
    from storage.errors import StorageError

    try:
        sys.exit(main())
    except (ProtocolError, OvsegError, StorageError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
