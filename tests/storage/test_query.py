"""DuckDB views (hand-computed values), bound parameters, and every refused statement."""

import numpy as np
import pytest

from storage.errors import StorageError
from storage.query import connect, run_sql
from storage.records import ImageRegions, RegionRecord
from tests.storage.conftest import make_images


def _region(class_id, confidence, area_rows, accepted, gated=True, sam_iou=0.8, agreement=0.6):
    """A 10x10 image region covering `area_rows` full rows (area = 10 * area_rows)."""
    mask = np.zeros((10, 10), dtype=bool)
    mask[:area_rows] = True
    return RegionRecord(class_id=class_id, class_name=f"c{class_id}", confidence=confidence,
                        gated=gated, sam_iou=sam_iou, agreement_iou=agreement, accepted=accepted,
                        paints="refined" if accepted else "none",
                        coarse_mask=mask, refined_mask=mask, bbox=(0, 0, 10, area_rows))


def _image(name, regions):
    return ImageRegions(name, 10, 10, 0.9, "s" * 64, regions)


@pytest.fixture
def two_rounds(workspace):
    """Round 1: class 0 covers 30 + 20 px, class 1 10 px (not accepted); one empty image.
    Round 2: class 1 covers 50 px accepted, class 0 nothing."""
    workspace.write_shard(1, 0, "r1", [
        _image("a.jpg", [_region(0, 0.97, 3, True), _region(1, 0.5, 1, False, gated=False)]),
        _image("b.jpg", [_region(0, 0.91, 2, True)]),
        _image("c.jpg", []),
    ])
    workspace.commit_round(1, 1)
    workspace.write_shard(2, 0, "r2", [_image("a.jpg", [_region(1, 0.99, 5, True)]),
                                       _image("b.jpg", [])])
    workspace.commit_round(2, 1)
    return workspace


def test_class_stats_match_hand_computed_values(two_rounds):
    rows = run_sql(two_rounds, "SELECT * FROM class_stats WHERE round = ?", [1]).to_pylist()
    c0, c1 = rows
    assert (c0["class_id"], c0["n_regions"], c0["n_gated"], c0["n_accepted"]) == (0, 2, 2, 2)
    assert (c0["area_sum"], c0["area_mean"], c0["painted_area_sum"]) == (50, 25.0, 50)
    assert (c0["n_refined"], c0["n_coarse"], c1["n_refined"]) == (2, 0, 0)
    assert c0["confidence_p50"] == pytest.approx(0.94, abs=1e-6)
    assert (c1["n_gated"], c1["n_accepted"], c1["painted_area_sum"]) == (0, 0, 0)


def test_quality_views(two_rounds):
    drift = run_sql(two_rounds, "SELECT round, class_id, coverage, coverage_delta "
                                "FROM class_coverage_drift ORDER BY round, class_id").to_pylist()
    # round 1: 300 px over 3 images; round 2: 200 px over 2 images
    assert [(d["round"], d["class_id"]) for d in drift] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [d["coverage"] for d in drift] == pytest.approx([50 / 300, 0.0, 0.0, 50 / 200])
    assert drift[0]["coverage_delta"] is None
    assert drift[2]["coverage_delta"] == pytest.approx(-50 / 300)
    empty = run_sql(two_rounds, "SELECT round, image_id, n_regions FROM images_without_accepted")
    assert empty.to_pylist() == [{"round": 1, "image_id": "c.jpg", "n_regions": 0},
                                 {"round": 2, "image_id": "b.jpg", "n_regions": 0}]
    hist = run_sql(two_rounds, "SELECT bin, n_regions FROM confidence_histogram "
                               "WHERE round = 1 AND class_id = 0").to_pylist()
    assert hist == [{"bin": 18, "n_regions": 1}, {"bin": 19, "n_regions": 1}]  # 0.91, 0.97
    sam = run_sql(two_rounds, "SELECT n_refined, mean_gap FROM sam_vs_agreement "
                              "WHERE round = 1 AND class_id = 0").to_pylist()[0]
    assert sam["n_refined"] == 2 and sam["mean_gap"] == pytest.approx(0.2, abs=1e-6)


def test_statistics_views_do_not_read_mask_columns(two_rounds):
    with connect(two_rounds) as con:
        plan = "\n".join(r[1] for r in con.sql("EXPLAIN SELECT * FROM class_stats").fetchall())
    assert "read_parquet" in plan.lower() or "parquet" in plan.lower()
    assert "coarse_rle" not in plan and "refined_rle" not in plan


def test_named_and_positional_parameters_are_bound(two_rounds):
    by_name = run_sql(two_rounds, "SELECT count(*) AS n FROM pseudo_labels WHERE image_id = $i",
                      {"i": "a.jpg"})
    assert by_name["n"][0].as_py() == 3
    hostile = run_sql(two_rounds, "SELECT count(*) AS n FROM pseudo_labels WHERE image_id = ?",
                      ["a.jpg' OR '1'='1"])
    assert hostile["n"][0].as_py() == 0


def test_empty_workspace_has_every_view(workspace):
    for view in ("pseudo_labels", "images", "shards", "rounds", "class_stats",
                 "class_coverage_drift", "images_without_accepted"):
        assert run_sql(workspace, f"SELECT * FROM {view}").num_rows == 0


REFUSED = {
    "insert": "INSERT INTO pseudo_labels SELECT * FROM pseudo_labels",
    "update": "UPDATE pseudo_labels SET accepted = true",
    "delete": "DELETE FROM pseudo_labels",
    "create_table": "CREATE TABLE t AS SELECT 1",
    "create_view": "CREATE VIEW v AS SELECT 1",
    "drop": "DROP VIEW pseudo_labels",
    "alter": "ALTER VIEW pseudo_labels RENAME TO x",
    "attach": "ATTACH 'other.duckdb' AS other",
    "detach": "DETACH memory",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "copy_out": "COPY (SELECT * FROM pseudo_labels) TO 'out.csv'",
    "export": "EXPORT DATABASE 'dump'",
    "pragma": "PRAGMA enable_profiling",
    "set": "SET threads = 1",
    "call": "CALL pragma_version()",
    "two_statements": "SELECT 1; DROP VIEW pseudo_labels",
    "read_outside": "SELECT * FROM read_csv('/etc/hosts')",
    "read_text_outside": "SELECT * FROM read_text('/etc/passwd')",
    "glob_outside": "SELECT * FROM glob('/etc/*')",
    "parent_segment": "SELECT * FROM read_text('WS/../secret.txt')",
    "python_variable": "SELECT * FROM REFUSED",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_statements(workspace, case):
    workspace.write_shard(1, 0, "k", make_images(1, [1]))
    with pytest.raises(StorageError) as info:
        run_sql(workspace, REFUSED[case].replace("WS", workspace.root))
    assert "\n" not in str(info.value)
    # the store is untouched
    assert run_sql(workspace, "SELECT count(*) AS n FROM pseudo_labels")["n"][0].as_py() == 1


def test_files_inside_the_workspace_stay_readable(workspace):
    info = workspace.write_shard(1, 0, "k", make_images(2, [1]))
    direct = run_sql(workspace, "SELECT count(*) AS n FROM read_parquet(?)",
                     [info.pseudo_labels_uri])
    assert direct["n"][0].as_py() == 2


def test_query_errors_are_storage_errors(workspace):
    with pytest.raises(StorageError, match="no_such_column"):
        run_sql(workspace, "SELECT no_such_column FROM pseudo_labels")
    with pytest.raises(StorageError, match="parse"):
        run_sql(workspace, "SELEC 1")
    with pytest.raises(StorageError, match=r"no_such_table.*\(the views: .*pseudo_labels.*rounds"):
        run_sql(workspace, "SELECT * FROM no_such_table")
