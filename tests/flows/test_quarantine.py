"""Target files that cannot be read are quarantined: recorded with the reason in every round,
listed by the `quarantine` view, and never fail the round or vanish."""

from __future__ import annotations

import shutil

from storage.query import run_sql
from tests.flows.conftest import small_config


def test_unreadable_target_files_are_recorded_not_lost(prefect_api, synthetic_root,
                                                         stage_one_workspace, tmp_path):
    from flows.config import DatasetRef
    from flows.pipeline import round_flow

    target = tmp_path / "target"
    shutil.copytree(synthetic_root / "target" / "images", target)
    good = sorted(target.iterdir())
    (target / "empty.png").write_bytes(b"")
    (target / "page.jpg").write_text("<html>not an image</html>")
    (target / "truncated.png").write_bytes(good[0].read_bytes()[:200])  # header only
    (target / "moved.png").symlink_to(tmp_path / "elsewhere" / "moved.png")  # dangling
    (target / "notes.txt").write_text("the camera's settings")
    ws = tmp_path / "ws"
    shutil.copytree(stage_one_workspace, ws)
    cfg = small_config(synthetic_root, ws, rounds=1)
    data = cfg.data.model_copy(update={"target": DatasetRef(kind="images", root=str(target))})
    cfg = cfg.model_copy(update={"data": data})

    round_flow(cfg)(cfg, 1)

    quarantined = run_sql(str(ws), "SELECT image_id, problem FROM quarantine").to_pylist()
    assert [q["image_id"] for q in quarantined] == ["empty.png", "moved.png", "notes.txt",
                                                     "page.jpg", "truncated.png"]
    assert all(q["problem"] for q in quarantined)
    problems = {q["image_id"]: q["problem"] for q in quarantined}
    assert problems["moved.png"].startswith("dangling symbolic link")
    assert problems["notes.txt"].startswith("not an image file type")
    counts = run_sql(str(ws), "SELECT count(*) AS n, count(*) FILTER (WHERE problem IS NULL) "
                              "AS ok FROM images WHERE round = 1").to_pylist()[0]
    assert counts == {"n": len(good) + 5, "ok": len(good)}  # every file found is in the round
