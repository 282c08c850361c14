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
