"""What `ovseg run` ends with: the per-round table, its legend, and commands that run as
printed in the way the job was started."""

from flows.commands.run import round_table, sql_examples, table_legend
from flows.config import RunConfig
from flows.invocation import ovseg_command
from flows.measures import MODEL_MEASURES, PSEUDO_LABEL_MEASURES, REGION_MEASURES


def _records():
    stage = {"round": 0, "metrics": {"target_miou": 34.7, "target_seen_miou": 41.8,
                                     "target_unseen_miou": 20.6}, "row_counts": {}}
    one = {"round": 1, "metrics": {"target_miou": 48.1, "target_seen_miou": 55.0,
                                   "target_unseen_miou": 34.4, "pl_refined_miou": 48.0,
                                   "pl_coarse_miou": 29.7, "pl_refined_coverage": 68.4},
           "row_counts": {"gated": 148, "accepted": 145, "clip_rejected": 55, "refined": 93,
                          "sam_iou_mean": 0.9741}}
    return [stage, one]


def test_round_table_calls_round_0_stage_one_and_shows_the_region_counts():
    head, zero, first = round_table(_records())
    assert head.split()[-6:] == ["gated", "trusted", "CLIP-rej", "refined", "SAM", "IoU"]
    assert zero.split() == ["stage", "one", "34.7", "41.8", "20.6", "-", "-", "-"]
    assert first.split() == ["1", "48.1", "55.0", "34.4", "48.0", "29.7", "68.4", "148", "145",
                             "55", "93", "0.974"]


def test_legend_explains_every_column_with_its_unit_and_lineage_key():
    text = "\n".join(table_legend(RunConfig()))
    for m in (*MODEL_MEASURES, *PSEUDO_LABEL_MEASURES, *REGION_MEASURES):
        line = next(x for x in text.splitlines() if x.strip().startswith(m.column))
        assert f"({m.unit})" in line and f"[{m.key}]" in line
    assert "stage one" in text and "round 0" in text
    assert "32 held-out target images" in text  # the built-in world's evaluation images
    assert "pseudo-label quality" in text and "held-out labels" not in text


def test_printed_commands_follow_how_ovseg_was_started(tmp_path):
    assert ovseg_command({"UV": "/usr/bin/uv", "PATH": ""}, "/x/.venv/bin/ovseg") == \
        "uv run ovseg"
    script = tmp_path / "bin" / "ovseg"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    on_path = {"PATH": str(script.parent)}
    assert ovseg_command(on_path, str(script)) == "ovseg"
    assert ovseg_command({"PATH": "/nowhere"}, ".venv/bin/ovseg") == ".venv/bin/ovseg"
    assert ovseg_command({"PATH": ""}, "/x/flows/cli.py").endswith(" -m flows.cli")
    lines = sql_examples("uv run ovseg", " --workspace /tmp/ws")
    assert all(x.startswith('  uv run ovseg sql "SELECT ') and x.endswith(" --workspace /tmp/ws")
               for x in lines)


def test_each_control_sits_under_its_round_and_the_gain_is_one_line():
    from flows.commands.run import control_gain

    records = _records()
    control = {"round": 1, "metrics": {"target_miou": 40.0, "target_seen_miou": 52.5,
                                       "target_unseen_miou": 30.05}, "row_counts": {}}
    lines = round_table(records, {1: control})
    assert lines[3].split() == ["control", "1", "40.0", "52.5", "30.1", "-", "-", "-"]
    assert len(lines) == 4  # stage one has no control row
    assert control_gain(records, {1: control}) == (
        "round 1's unseen gain over the control: +4.3 points (unseen mIoU 34.4, the "
        "control's 30.1)")
    assert control_gain(records, {}) is None and control_gain(records[:1], {1: control}) is None
    with_control = "\n".join(table_legend(RunConfig()))
    assert "'control R' (under round R)" in with_control
    off = RunConfig.model_validate({"self_training": {"control": False}})
    assert "control R" not in "\n".join(table_legend(off))
