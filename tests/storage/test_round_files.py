"""The scale benchmark's bookkeeping (`storage.stats.round_files`, `ovseg_core.round_costs`) on
a tiny local workspace: rows, images and Parquet bytes come from the round's committed
manifests, and a round that committed fewer images than asked for is refused rather than
reported."""

import pytest

from ovseg_core.round_costs import ratios, table_row
from storage.stats import round_files
from storage.workspace import Workspace
from tests.storage.conftest import make_images


def test_shard_files_count_the_committed_round(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    shards = [make_images(3, [2, 0, 1], seed=0, prefix="a"), make_images(2, [4], seed=1,
                                                                         prefix="b")]
    for k, images in enumerate(shards):
        ws.write_shard(1, k, f"key{k}", images)
    ws.commit_round(1, len(shards))
    ws.write_shard(2, 0, "other", make_images(4, [1], seed=2))  # another round: not counted

    stored = round_files(ws, 1)

    on_disk = [p for kind in ("pseudo_labels", "images")
               for p in (tmp_path / "ws" / kind / "round=001").rglob("*.parquet")]
    assert len(on_disk) == 4
    assert stored == {"shards": 2, "rows": 3 + 8, "images": 5, "committed": True,
                      "parquet_bytes": sum(p.stat().st_size for p in on_disk)}

    child = {"phases": {"model": 2.0, "storage": 1.0, "retrain": 3.0}, "wall_s": 10.0,
             "peak_rss_mb": 100.0, "class_stats_s": 0.1,
             "class_stats_rows": 3, "selection_s": 0.2, "selected_images": 4}
    row = table_row(5, child, stored, child_wall=20.0)
    assert row["orchestration_s"] == pytest.approx(4.0)
    assert row["parquet_bytes_per_img"] == pytest.approx(stored["parquet_bytes"] / 5)
    with pytest.raises(ValueError, match="committed 5 images"):
        table_row(6, child, stored, child_wall=20.0)


def test_marginal_seconds_and_ratios():
    rows = [{"images": 10, "wall_s": 20.0, "peak_rss_mb": 100.0},
            {"images": 20, "wall_s": 30.0, "peak_rss_mb": 110.0},
            {"images": 40, "wall_s": 54.0, "peak_rss_mb": 121.0}]
    summary = ratios(rows)
    assert [r.get("marginal_s_per_img") for r in rows] == [None, 1.0, pytest.approx(1.2)]
    assert summary["marginal_ratio"] == pytest.approx(1.2)
    assert summary["peak_rss_ratio"] == pytest.approx(1.1)
    assert ratios(rows[:2])["marginal_ratio"] is None
