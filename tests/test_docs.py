"""The generated documents match their sources: docs/configuration.md is rendered from the
run configuration's model and docs/results.md from results/*.json; a change to either source
without re-rendering fails here."""

import json

import pytest

from flows import config_doc
from flows.config import RunConfig
from storage import results


def test_configuration_reference_is_current():
    assert config_doc.DOCUMENT.read_text() == config_doc.render(), (
        "docs/configuration.md is stale: run `uv run python -m flows.config_doc`")


def test_every_setting_is_documented_with_a_meaning():
    for key, model in config_doc.sections(RunConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{key}.{name} has no description"
    text = config_doc.render()
    assert "`self_training.gate_threshold`" in text and "`quality.max_class_shift`" in text


def test_results_document_and_indexes_are_current(capsys):
    assert results.main(["--check"]) == 0, capsys.readouterr().out


def test_results_render_every_file_and_flag_placeholders(tmp_path):
    results.record("a_bench", [results.figure("ratio", 0.991, "x", "< 1.25")],
                   title="A bench", command="uv run python benchmarks/a.py", folder=tmp_path)
    results.record("b_later", [results.figure("mIoU", None, "%")], title="Later",
                   kind="placeholder", command="uv run ovseg run", folder=tmp_path)
    entry = json.loads((tmp_path / "a_bench.json").read_text())
    assert {"command", "date", "machine", "code_version", "figures"} <= set(entry)
    text = results.render(results.load(tmp_path))
    assert "| ratio | 0.991 x | < 1.25 |" in text
    assert "| mIoU | to be measured |" in text
    assert "`uv run python benchmarks/a.py`" in text
    index = "| `x.py` | what | `cmd` | `a_bench`: old |\n| `y.py` | | | `nothing`: old |\n"
    assert results.refresh(index, results.load(tmp_path)) == (
        "| `x.py` | what | `cmd` | `a_bench`: ratio 0.991 x |\n"
        "| `y.py` | | | `nothing`: not recorded yet |\n")
    with pytest.raises(ValueError, match="kind"):
        results.record("c", [], title="C", kind="guess", folder=tmp_path)
    (tmp_path / "hand.json").write_text(json.dumps({"unit": "hand", "figures": []}))
    with pytest.raises(ValueError, match="hand.json: not a results file"):
        results.load(tmp_path)


def test_sql_guide_lists_every_view_and_column(tmp_path):
    from storage.query import connect, view_names
    from storage.workspace import Workspace

    text = (config_doc.DOCUMENT.parent / "sql.md").read_text()
    con = connect(Workspace(str(tmp_path / "ws")))
    for view in view_names(con):
        assert f"## `{view}`" in text, f"docs/sql.md has no section for the view {view}"
        section = text.split(f"## `{view}`")[1].split("\n## ")[0]
        for (column, *_) in con.sql(f"DESCRIBE {view}").fetchall():
            assert f"| `{column}` |" in section, f"docs/sql.md: {view}.{column} is missing"


def test_a_busy_machine_is_said_next_to_its_timings(tmp_path, monkeypatch):
    monkeypatch.setattr(results.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    results.record("busy", [results.figure("t", 1.0, "s")], title="Busy", command="c",
                   folder=tmp_path)
    entry = json.loads((tmp_path / "busy.json").read_text())
    assert "busy (load 64.0" in entry["conclusion"] and "load 64.0" in entry["machine"]
