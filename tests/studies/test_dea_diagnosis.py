"""The DEA diagnosis study's summary (studies/dea_diagnosis.py): paired differences on shared
seeds, and the refusal of the protocol's test seeds."""

import pytest

from studies.dea_diagnosis import main, summary_lines


def _run(seen: float, unseen: float) -> dict:
    return {"seen": seen, "unseen": unseen, "all": (seen + unseen) / 2, "wall_s": 10.0}


def test_pairs_are_differences_on_shared_seeds():
    runs = {"off": {0: _run(40, 12), 1: _run(42, 10)},
            "warped": {0: _run(35, 11), 1: _run(36, 9), 2: _run(99, 99)},
            "encoded": {}}
    lines, figures = summary_lines(runs)
    pair = next(f for f in figures if f["name"].startswith("warped - off: seen"))
    assert pair["value"] == pytest.approx(-5.5) and "over 2 seeds" in pair["name"]
    assert "positive on 0 of 2" in pair["name"]
    assert not any(f["name"].startswith("encoded") for f in figures)  # no encoded runs
    assert any(line.startswith("warped    seen    n 3") for line in lines)


def test_test_seeds_are_refused():
    with pytest.raises(SystemExit):
        main(["--clip", "x.pt", "--seeds", "0", "100"])


def test_summary_only_reads_the_runs_present_and_trains_nothing(tmp_path, capsys):
    import json
    (tmp_path / "off-seed0.json").write_text(json.dumps(_run(40, 12)))
    (tmp_path / "warped-seed0.json").write_text(json.dumps(_run(43, 15)))
    assert main(["--summary-only", "--seeds", "0", "1", "--runs", str(tmp_path),
                 "--workdir", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    assert "warped - off: seen mIoU, paired mean over 1 seeds" in out and "+3.00" in out
    assert not (tmp_path / "ws").exists()  # nothing trained
    with pytest.raises(SystemExit):
        main(["--seeds", "0"])  # no --clip and not --summary-only
