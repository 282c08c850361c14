"""`ovseg data synth OUT` makes the main job's world by default."""

from flows.cli import main
from flows.config import RunConfig
from flows.plan import ensure_synthetic


def files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_defaults_make_the_main_job_s_world(tmp_path, capsys):
    assert main(["data", "synth", str(tmp_path / "synth")]) == 0
    assert "target 16 images + 32 held out" in capsys.readouterr().out
    world = ensure_synthetic(RunConfig(workspace=str(tmp_path / "ws")))
    assert files(tmp_path / "synth") == files(world)
