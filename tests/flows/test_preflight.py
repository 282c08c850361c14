"""Every flow checks at its start that the config's local paths exist, and says which do not in
one line naming the settings (deployments/prefect.yaml ships placeholder paths)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.config import RunConfig
from flows.preflight import check_config
from ovseg_core.errors import OvsegError
from tests.flows.conftest import small_config

ROOT = Path(__file__).resolve().parents[2]


def test_placeholder_paths_of_the_pool_deployments_are_named():
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    cfg = RunConfig.model_validate(spec["definitions"]["config"])
    with pytest.raises(OvsegError) as error:
        check_config(cfg)
    message = str(error.value)
    assert "\n" not in message
    for setting in ("data.source.root = /data/coco", "data.target.root = /data/ADEChallenge",
                    "model.clip_weights = /weights/", "model.sam_checkpoint = /weights/"):
        assert setting in message
    assert "deployments/prefect.yaml" in message


def test_existing_paths_and_the_synthetic_default_pass(synthetic_root, tmp_path):
    check_config(small_config(synthetic_root, tmp_path / "new" / "ws"))
    check_config(RunConfig(workspace=str(tmp_path / "ws")))
    check_config(RunConfig(workspace="memory://ws"))


def test_workspace_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OvsegError, match=r"^workspace = .*file/ws: .*file is not a folder"):
        check_config(RunConfig(workspace=str(tmp_path / "file" / "ws")))


def test_flows_stop_before_any_work(synthetic_root, tmp_path):
    from flows.pipeline import next_round

    cfg = small_config(synthetic_root, tmp_path / "ws")
    data = cfg.data.model_copy(update={"target": cfg.data.target.model_copy(
        update={"root": str(tmp_path / "missing")})})
    with pytest.raises(OvsegError, match=r"^data\.target\.root = .*missing does not exist"):
        next_round.fn(cfg.model_copy(update={"data": data}))
    assert not (tmp_path / "ws").exists()


def test_refiner_default_weights_name_the_setting_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("OVSEG_WEIGHTS_DIR", str(tmp_path / "weights"))
    cfg = RunConfig(workspace=str(tmp_path / "ws"),
                    self_training={"refiner_sam": "vit_b"})
    with pytest.raises(OvsegError, match=r"self_training\.refiner_checkpoint \(unset: vit_b's "
                       r"default file, under \$OVSEG_WEIGHTS_DIR\) = .*weights/sam_vit_b"):
        check_config(cfg)
