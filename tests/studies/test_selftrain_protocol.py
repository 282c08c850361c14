"""The protocol's runner (studies/selftrain_protocol.py) without training: phases and seeds,
the frozen-code check on a real git repository, the order of the jobs, the arms read from a
real workspace's lineage, and the table and results unit rebuilt from per-arm JSON files."""

import json
import subprocess

import pytest

from storage.records import LineageRecord
from storage.workspace import Workspace
from studies import selftrain_protocol as sp

SETTINGS = {"phase": "tuning", "rounds": 1, "steps": 20, "target_val": 16}


def test_phases_keep_tuning_and_test_seeds_apart():
    assert sp.phase_seeds("tuning", None) == [0, 1, 2]
    assert sp.phase_seeds("test", None) == list(range(100, 120))
    assert sp.phase_seeds("test", [101, 100, 101]) == [100, 101]
    with pytest.raises(sp.ProtocolError, match="below 100"):
        sp.phase_seeds("tuning", [1, 100])
    with pytest.raises(sp.ProtocolError, match="100 or above"):
        sp.phase_seeds("test", [99])


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_the_test_phase_refuses_uncommitted_code(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "x.py").write_text("A = 1\n")
    (tmp_path / "notes.py").write_text("")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    (tmp_path / "notes.py").write_text("changed = True\n")  # outside the frozen paths
    assert sp.frozen_changes(tmp_path) == []
    sp.check_frozen("test", False, tmp_path)
    (tmp_path / "flows" / "x.py").write_text("A = 2\n")
    assert sp.frozen_changes(tmp_path) == ["flows/x.py"]
    with pytest.raises(sp.ProtocolError, match="flows/x.py"):
        sp.check_frozen("test", False, tmp_path)
    git(tmp_path, "checkout", "flows/x.py")
    (tmp_path / "flows" / "new.py").write_text("")  # new, not ignored: also a change
    assert sp.frozen_changes(tmp_path) == ["flows/new.py"]
    sp.check_frozen("test", True, tmp_path)  # --allow-dirty
    sp.check_frozen("tuning", False, tmp_path)


def test_runs_with_other_settings_are_not_mixed(tmp_path):
    sp.pin_settings(tmp_path, SETTINGS)
    sp.pin_settings(tmp_path, dict(SETTINGS))
    with pytest.raises(sp.ProtocolError, match="choose another"):
        sp.pin_settings(tmp_path, SETTINGS | {"steps": None})


def test_main_workspaces_of_every_seed_come_first(tmp_path):
    batches = sp.plan_jobs([0, 1], list(sp.ARMS), tmp_path)
    assert batches[0] == [[("stageone", 0), ("main", 0)], [("stageone", 1), ("main", 1)]]
    assert batches[1] == [[(k, s)] for s in (0, 1) for k in ("nodea", "paper", "noclip")]
    for arm in sp.PRIMARY:  # seed 0's main arms are done: its stage one is still needed
        (tmp_path / f"{arm}-seed0.json").write_text("{}")
    batches = sp.plan_jobs([0], ["A_dea_on", "B", "D_dea_on", "C"], tmp_path)
    assert batches == [[[("stageone", 0)]], [[("paper", 0)]]]
    assert sp.plan_jobs([0], list(sp.PRIMARY), tmp_path) == []


def lineage_record(stage, round, metrics):
    return LineageRecord(
        stage=stage, round=round, parent_round=None if round == 0 else round - 1,
        checkpoint_uri=f"ckpt/{round}", checkpoint_sha256=f"sha{round}", config={},
        package_version="0", git_commit=None, dataset_manifest_hash=None, gate_threshold=None,
        started_at="2026-12-07T05:00:00+00:00", ended_at="2026-12-07T05:01:30+00:00",
        status="completed", metrics=metrics)


def test_arms_are_read_from_the_workspace_lineage(tmp_path):
    workdir, runs = tmp_path / "work", tmp_path / "runs"
    runs.mkdir()
    store = Workspace(str(workdir / "seed3-main"))
    store.write_lineage(lineage_record("stage_one", 0, {
        "target_miou": 30.0, "target_seen_miou": 40.0, "target_unseen_miou": 10.0}))
    store.write_lineage(lineage_record("self_training_round", 1, {
        "target_miou": 35.0, "target_seen_miou": 41.0, "target_unseen_miou": 20.0,
        "pl_refined_miou": 70.0, "pl_refined_coverage": 25.0}))
    ctx = {"workdir": str(workdir), "runs": str(runs), "arms": list(sp.ARMS),
           "settings": SETTINGS, "code": {"git_commit": "abc", "dirty": False,
                                          "allow_dirty": False}}
    problems = sp.write_arms("main", 3, 12.5, ctx)
    assert len(problems) == 1 and problems[0].startswith("arm B, seed 3: no completed lineage "
                                                         "record with stage 'control' and round 1")
    a = json.loads((runs / "A_dea_on-seed3.json").read_text())
    d = json.loads((runs / "D_dea_on-seed3.json").read_text())
    assert (a["unseen"], a["stage"], a["stage_s"], a["stage_one_sha256"]) == (
        10.0, "stage_one", 90.0, "sha0")
    assert "pl_precision" not in a
    assert (d["unseen"], d["pl_precision"], d["pl_coverage"], d["round"]) == (20.0, 70.0, 25.0, 1)
    assert d["settings"] == SETTINGS and d["git_commit"] == "abc" and d["run_wall_s"] == 12.5
    assert not (runs / "B-seed3.json").exists()


def write_run(runs, arm, seed, unseen, seen=40.0):
    entry = {"arm": arm, "seed": seed, "workspace": f"seed{seed}-{sp.ARMS[arm][0]}",
             "seen": seen, "unseen": unseen, "all": (seen + unseen) / 2, "run_wall_s": 10.0,
             "git_commit": "0123456789abcdef", "dirty": False, "allow_dirty": False}
    (runs / f"{arm}-seed{seed}.json").write_text(json.dumps(entry))


def test_summary_only_rebuilds_the_table_and_the_unit(tmp_path, capsys):
    runs, results = tmp_path / "runs", tmp_path / "results"
    runs.mkdir()
    for seed, (b, d) in enumerate([(10, 16), (12, 15), (11, 19)]):
        write_run(runs, "B", seed, b)
        write_run(runs, "D_dea_on", seed, d)
    write_run(runs, "C", 0, 30.0)
    (runs / "stageone-seed0.json").write_text('{"seed": 0, "run_wall_s": 50.0}')
    args = ["--phase", "tuning", "--runs", str(runs), "--results", str(results),
            "--rounds", "1", "--steps", "20", "--target-val", "16"]
    assert sp.main(args + ["--summary-only"]) == 0
    out = capsys.readouterr().out
    assert "no result yet: A_dea_on seed 0" in out and "C seed 1" in out
    unit = json.loads((results / "selftrain_protocol_tuning.json").read_text())
    first = unit["figures"][0]
    assert first["value"] == pytest.approx(17 / 3, abs=0.01)  # (6 + 3 + 8) / 3
    assert first["target"] == sp.TARGET and "positive on 3 of 3" in first["name"]
    assert "Wilcoxon p 0.25" in first["name"]  # n = 3, all positive: 2 / 8
    assert unit["command"] == ("uv run python studies/selftrain_protocol.py --phase tuning "
                               "--rounds 1 --steps 20 --target-val 16")
    c_vs_b = next(f for f in unit["figures"] if f["name"].startswith("C - B: unseen"))
    assert c_vs_b["value"] == 20.0 and "over 1 seeds" in c_vs_b["name"]
    compute = next(f for f in unit["figures"] if f["name"].startswith("compute time"))
    assert compute["value"] == 90.0  # seed0-2 main, seed0 paper: 10 s each; stage one 50 s
    assert not (runs / "protocol.json").exists()  # a summary writes nothing into the runs


def test_dea_on_and_off_are_paired_on_their_shared_seeds(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed, (on, off) in enumerate([(11, 12), (10, 13), (12, 12.5)]):
        write_run(runs, "A_dea_on", seed, on)
        write_run(runs, "A_dea_off", seed, off)
    write_run(runs, "A_dea_off", 3, 40.0)  # no DEA-on run of seed 3: not paired
    assert sp.main(["--phase", "tuning", "--seeds", "0", "1", "2", "3", "--runs", str(runs),
                    "--results", str(tmp_path), "--summary-only"]) == 0
    out = capsys.readouterr().out
    assert "A_dea_on - A_dea_off" in out and "positive 0/3" in out
    unit = json.loads((tmp_path / "selftrain_protocol_tuning.json").read_text())
    dea = next(f for f in unit["figures"]
               if f["name"].startswith("A_dea_on - A_dea_off: unseen mIoU"))
    assert dea["value"] == pytest.approx((-1 - 3 - 0.5) / 3, abs=0.01)
    assert "over 3 seeds" in dea["name"]
    assert not any(f["name"].startswith("D_dea_on - D_dea_off") for f in unit["figures"])


def test_summary_without_the_control_names_it(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    write_run(runs, "D_dea_on", 0, 15.0)
    assert sp.main(["--phase", "tuning", "--seeds", "0", "--runs", str(runs), "--results",
                    str(tmp_path), "--summary-only"]) == 0
    assert "no result yet: A_dea_on seed 0, B seed 0" in capsys.readouterr().out
    first = json.loads((tmp_path / "selftrain_protocol_tuning.json").read_text())["figures"][0]
    assert first["value"] is None and "B not recorded" in first["name"]


@pytest.mark.slow
def test_two_jobs_run_the_arms_and_copies_keep_the_stage_one(tmp_path, capsys):
    """A tiny protocol through the real flows, two workspaces at once: the arms' JSONs, the
    no-CLIP-check workspace started from the main workspace's stage one (a copy), and a
    plan with nothing left to run. 100 stage-one steps: with fewer, the default gate
    passes no region and the round has nothing to retrain on."""
    runs, work = tmp_path / "runs", tmp_path / "work"
    args = ["--phase", "tuning", "--seeds", "0", "--rounds", "1", "--steps", "100",
            "--target-val", "16", "--arms", "A_dea_on", "D_dea_on", "A_dea_off", "E",
            "--jobs", "2", "--runs", str(runs), "--workdir", str(work),
            "--results", str(tmp_path)]
    assert sp.main(args) == 0
    found = {p.stem: json.loads(p.read_text()) for p in runs.glob("*-seed0.json")
             if p.stem.split("-")[0] in sp.ARMS}
    assert set(found) == {"A_dea_on-seed0", "D_dea_on-seed0", "A_dea_off-seed0", "E-seed0"}
    sha = found["A_dea_on-seed0"]["stage_one_sha256"]
    assert found["E-seed0"]["stage_one_sha256"] == sha == found["D_dea_on-seed0"][
        "stage_one_sha256"]
    assert found["A_dea_off-seed0"]["stage_one_sha256"] != sha  # DEA off: its own stage one
    assert found["E-seed0"]["pl_coverage"] is not None
    assert sp.plan_jobs([0], ["A_dea_on", "D_dea_on", "A_dea_off", "E"], runs) == []
    assert json.loads((runs / "stageone-seed0.json").read_text())["run_wall_s"] > 0


def test_the_clip_pin_follows_the_weights_not_the_file_name(tmp_path):
    import torch

    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3, dtype=torch.float16)}
    torch.save(state, tmp_path / "a.pt")
    torch.save(state, tmp_path / "other-name.pt")
    assert (tmp_path / "a.pt").read_bytes() != (tmp_path / "other-name.pt").read_bytes()
    same = sp.weights_sha256(tmp_path / "a.pt")
    assert sp.weights_sha256(tmp_path / "other-name.pt") == same
    state["w"][0, 0] = 0.5
    torch.save(state, tmp_path / "changed.pt")
    assert sp.weights_sha256(tmp_path / "changed.pt") != same
    with pytest.raises(sp.ProtocolError):
        sp.weights_sha256(tmp_path / "missing.pt")
