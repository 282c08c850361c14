"""Shards: round trips of rows and masks, commits, keys, redo."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from storage.errors import StorageError
from storage.hashing import shard_key
from storage.query import run_sql
from storage.rle import decode_masks, rle_areas
from storage.schema import PSEUDO_LABEL_SCHEMA, SCHEMA_VERSION
from tests.storage.conftest import make_images


def test_rows_written_equal_rows_read_and_masks_decode_to_the_same_pixels(workspace):
    images = make_images(5, [3, 0, 2])  # images 1 and 4 have no region
    info = workspace.write_shard(1, 0, "k0", images)
    expected = [(im, k, r) for im in images for k, r in enumerate(im.regions)]
    assert info.rows == len(expected) == 8 and info.images == 5

    rows = run_sql(workspace, "SELECT * FROM pseudo_labels ORDER BY image_id, region_id")
    assert rows.num_rows == len(expected)
    for row, (im, k, region) in zip(rows.to_pylist(), expected, strict=True):
        assert (row["image_id"], row["region_id"], row["class_id"]) == (im.image_id, k,
                                                                        region.class_id)
        assert row["confidence"] == pytest.approx(region.confidence, abs=1e-6)
        assert tuple(row[f"bbox_{c}"] for c in ("x0", "y0", "x1", "y1")) == region.bbox
        coarse = decode_masks([row["coarse_rle"]], im.height, im.width)[0]
        np.testing.assert_array_equal(coarse, region.coarse_mask)
        assert row["area"] == region.coarse_mask.sum()
        if region.refined_mask is None:
            assert row["refined_rle"] is None and row["refined_area"] is None
            assert row["sam_iou"] is None
        else:
            refined = decode_masks([row["refined_rle"]], im.height, im.width)[0]
            np.testing.assert_array_equal(refined, region.refined_mask)
            assert row["refined_area"] == region.refined_mask.sum()
    image_rows = run_sql(workspace, "SELECT image_id, n_regions FROM images ORDER BY image_id")
    assert image_rows.to_pylist() == [{"image_id": im.image_id, "n_regions": len(im.regions)}
                                      for im in images]


def test_files_carry_the_declared_schema_and_version(workspace):
    info = workspace.write_shard(2, 3, "k", make_images(2, [2]))
    with workspace.fs.open(workspace.shard_entry(2, 3)["pseudo_labels"].join(
            [workspace.path + "/", ""]), "rb") as f:
        table = pq.read_table(f)
    assert table.schema.remove_metadata() == PSEUDO_LABEL_SCHEMA.remove_metadata()
    meta = table.schema.metadata
    assert meta[b"ovseg.schema_version"] == str(SCHEMA_VERSION).encode()
    assert meta[b"ovseg.key"] == b"k" and meta[b"ovseg.shard"] == b"3"
    assert info.pseudo_labels_uri.endswith("pseudo_labels/round=002/shard=00003.parquet")


def test_areas_of_many_rles_at_once_do_not_overflow():
    masks = np.zeros((300, 40, 50), dtype=bool)
    for i in range(300):
        masks[i, : i % 40 + 1, : i % 50 + 1] = True
    from storage.rle import encode_masks

    counts = encode_masks(list(masks), 40, 50)
    np.testing.assert_array_equal(rle_areas(counts, 40, 50), masks.sum(axis=(1, 2)))


def test_encoding_in_groups_equals_one_stack(monkeypatch):
    import storage.rle
    from storage.rle import encode_masks

    rng = np.random.default_rng(0)
    masks = list(rng.random((7, 10, 12)) < 0.4)
    whole = encode_masks(masks, 10, 12)  # one stack: 7 x 120 px is under the group size
    monkeypatch.setattr(storage.rle, "_ENCODE_PIXELS", 250)  # groups of 2 masks
    assert encode_masks(masks, 10, 12) == whole
    np.testing.assert_array_equal(decode_masks(whole, 10, 12), np.stack(masks))
    monkeypatch.setattr(storage.rle, "_ENCODE_PIXELS", 1)  # one at a time
    assert encode_masks(masks, 10, 12) == whole and encode_masks([], 10, 12) == []


def test_rle_boxes_and_polygons_by_hand():
    from storage.rle import encode_masks, polygons_rle, rle_boxes

    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True  # rows 2-4, columns 3-8
    (counts,) = encode_masks([mask], 10, 12)
    np.testing.assert_array_equal(rle_boxes([counts], 10, 12), [[3, 2, 6, 3]])  # x, y, w, h
    assert rle_boxes([], 10, 12).shape == (0, 4)
    square = polygons_rle([[3, 2, 9, 2, 9, 5, 3, 5], [0, 0, 1, 1]], 10, 12)  # 2nd: < 3 points
    assert decode_masks([square["counts"].decode()], 10, 12)[0].sum() == mask.sum()
    assert polygons_rle([[0, 0, 1, 1]], 10, 12) is None


def test_committing_twice_is_idempotent(workspace):
    images = make_images(3, [2])
    first = workspace.write_shard(1, 0, "key-a", images)
    second = workspace.write_shard(1, 0, "key-a", make_images(1, [1], seed=9))  # ignored
    assert first == second
    assert workspace.is_shard_committed(1, 0, "key-a")
    workspace.commit_round(1, expected_shards=1)
    workspace.commit_round(1, expected_shards=1)
    assert workspace.write_shard(1, 0, "key-a", images) == first
    assert run_sql(workspace, "SELECT count(*) AS n FROM pseudo_labels")["n"][0].as_py() == 6


def test_a_different_key_is_refused_until_the_round_is_redone(workspace):
    workspace.write_shard(1, 0, "key-a", make_images(2, [1]))
    assert not workspace.is_shard_committed(1, 1, "key-a")
    with pytest.raises(StorageError, match="inputs changed"):
        workspace.is_shard_committed(1, 0, "key-b")
    with pytest.raises(StorageError, match="inputs changed"):
        workspace.write_shard(1, 0, "key-b", make_images(2, [1]))
    workspace.redo_round(1)
    assert workspace.committed_shards(1) == {}
    workspace.write_shard(1, 0, "key-b", make_images(4, [1]))
    assert workspace.committed_shards(1) == {0: "key-b"}
    assert run_sql(workspace, "SELECT count(*) AS n FROM pseudo_labels")["n"][0].as_py() == 4


def test_round_commit_needs_every_shard_and_freezes_the_round(workspace):
    workspace.write_shard(3, 0, "a", make_images(1, [1]))
    workspace.write_shard(3, 2, "c", make_images(1, [1], prefix="other"))
    with pytest.raises(StorageError, match=r"missing shards \[1\]"):
        workspace.commit_round(3, expected_shards=3)
    assert not workspace.is_round_committed(3)
    workspace.write_shard(3, 1, "b", make_images(1, [1], prefix="third"))
    workspace.commit_round(3, expected_shards=3)
    assert workspace.is_round_committed(3)
    assert workspace.round_entry(3)["rows"] == 3
    with pytest.raises(StorageError, match="committed"):
        workspace.write_shard(3, 3, "d", make_images(1, [1]))
    shards = run_sql(workspace, "SELECT shard, round_committed FROM shards ORDER BY shard")
    assert shards.to_pylist() == [{"shard": s, "round_committed": True} for s in range(3)]


def test_invalid_records_are_refused(workspace):
    images = make_images(2, [1])
    images[1].image_id = images[0].image_id
    with pytest.raises(StorageError, match="twice"):
        workspace.write_shard(1, 0, "k", images)
    images = make_images(1, [1])
    images[0].regions[0].class_id = 65535
    with pytest.raises(StorageError, match="class id"):
        workspace.write_shard(1, 0, "k", images)
    images = make_images(1, [1])
    images[0].regions[0].coarse_mask = np.zeros((3, 3), dtype=bool)
    with pytest.raises(StorageError, match="shape"):
        workspace.write_shard(1, 0, "k", images)
    assert workspace.committed_shards(1) == {}


def test_shard_key_depends_on_every_input_but_not_image_order():
    base = shard_key(1, 0, ["a", "b"], "sha", "cfg")
    assert base == shard_key(1, 0, ["b", "a"], "sha", "cfg")
    others = [shard_key(2, 0, ["a", "b"], "sha", "cfg"), shard_key(1, 1, ["a", "b"], "sha", "cfg"),
              shard_key(1, 0, ["a"], "sha", "cfg"), shard_key(1, 0, ["a", "b"], "sha2", "cfg"),
              shard_key(1, 0, ["a", "b"], "sha", "cfg2")]
    assert len({base, *others}) == 6


def test_local_and_memory_workspaces_give_identical_results(tmp_path):
    from storage.workspace import Workspace

    results = []
    for root in (str(tmp_path / "ws"), f"memory://same-{tmp_path.name}"):
        ws = Workspace(root)
        ws.write_shard(1, 0, "k", make_images(4, [2, 0, 3]))
        ws.commit_round(1, 1)
        results.append(run_sql(ws, "SELECT * EXCLUDE (shard) FROM pseudo_labels "
                                   "ORDER BY image_id, region_id"))
        results.append(run_sql(ws, "SELECT * FROM class_stats"))
        ws.fs.rm(ws.path, recursive=True)
    assert results[0].num_rows == 7  # 2 + 0 + 3 + 2
    assert results[0].equals(results[2]) and results[1].equals(results[3])


def test_shards_of_another_schema_version_are_refused_with_what_to_do(workspace):
    import json

    workspace.write_shard(1, 0, "k", make_images(2, [1, 2]))
    entry = workspace.fs.open(workspace._abs(workspace._shard_entry(1, 0))).read()
    old = json.loads(entry) | {"schema_version": SCHEMA_VERSION - 1}
    with workspace.fs.open(workspace._abs(workspace._shard_entry(1, 0)), "w") as f:
        f.write(json.dumps(old))
    with pytest.raises(StorageError, match="redo-round"):
        run_sql(workspace, "SELECT count(*) FROM pseudo_labels")


def test_a_row_that_paints_its_sam_mask_must_have_one(workspace):
    images = make_images(1, [1])
    images[0].regions[0].refined_mask = None
    images[0].regions[0].paints = "refined"
    with pytest.raises(StorageError, match="paints"):
        workspace.write_shard(1, 0, "k", images)
