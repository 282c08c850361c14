"""`flows.config`: `quality: null` turns every check of the quality gate off."""

from flows.config import QualitySettings, load_config
from flows.quality_gate import CHECKS, checks


def test_quality_null_turns_every_check_off(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("quality: null\n")
    cfg = load_config(path)
    assert all(getattr(cfg.quality, setting) is None for _, setting, _ in CHECKS)
    assert cfg.quality.accept_rounds == []
    empty = {name: None for name, _, _ in CHECKS}  # a round with nothing gated or painted
    assert checks(cfg.quality, 2, empty) == ()
    assert checks(load_config(None).quality, 2, empty)  # the defaults do check
    assert cfg.quality == QualitySettings.off()
