"""Several real processes write and commit shards of one round at once, on a local disk and on
S3 (the moto server of test_s3), including two races forced on the same shard:

- shard 4: two writers with the SAME key (a duplicated task; its masks differ slightly, as a
  recomputation on another GPU may): exactly one copy is committed and both writers get its
  ShardInfo;
- shard 5: two writers with DIFFERENT keys: exactly one commits, the other gets StorageError.

The races are forced, not hoped for: a racing writer waits for its rival just before creating
the shard's manifest entry, so both have passed the "not committed yet" check and written their
Parquet files. Then all four commit the round at once.
"""

import multiprocessing as mp
import posixpath

import pyarrow.parquet as pq
import pytest

from storage.errors import StorageError
from storage.query import run_sql
from storage.workspace import Workspace
from tests.storage.conftest import make_images

N_SHARDS = 6
REGIONS = [2, 0, 1]  # 3 rows per 3-image shard
JOBS = {  # worker: [(shard, key, seed)], the racing job first
    0: [(4, "same-key", 4), (0, "k0", 0)],
    1: [(4, "same-key", 44), (1, "k1", 1)],
    2: [(5, "key-a", 5), (2, "k2", 2)],
    3: [(5, "key-b", 55), (3, "k3", 3)],
}
RACED = (4, 5)
TIMEOUT_S = 120


def _images(shard: int, seed: int):
    return make_images(3, REGIONS, seed=seed, prefix=f"s{shard}")


def _worker(root, jobs, start, rivals, results) -> None:
    """Write `jobs` after all workers are ready, then commit the round with the others."""
    from storage import workspace as module

    create_json = module.create_json

    def create_after_rival(fs, root_path, final, value):
        if "/_manifest/shard=" in final and value["shard"] in rivals:
            rivals[value["shard"]].wait(TIMEOUT_S)  # the rival has written its data too
        return create_json(fs, root_path, final, value)

    module.create_json = create_after_rival
    ws = Workspace(root)
    start.wait(TIMEOUT_S)
    out = []
    for shard, key, seed in jobs:
        try:
            out.append((shard, key, seed, ws.write_shard(1, shard, key, _images(shard, seed))))
        except StorageError as exc:
            out.append((shard, key, seed, str(exc)))
    start.wait(TIMEOUT_S)  # every shard is written: commit the round together
    ws.commit_round(1, N_SHARDS)
    results.put(out)


def _run_workers(root: str) -> dict:
    """{(shard, key, seed): ShardInfo or the refusal message} from 4 spawned writers."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(len(JOBS))
    rivals = {shard: ctx.Barrier(2) for shard in RACED}
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(root, jobs, start, rivals, results))
             for jobs in JOBS.values()]
    for proc in procs:
        proc.start()
    try:
        outcome = {}
        for _ in procs:
            outcome.update({job[:3]: job[3] for job in results.get(timeout=TIMEOUT_S)})
    finally:
        for proc in procs:
            proc.join(timeout=TIMEOUT_S)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)
    return outcome


def _confidences(images) -> list[float]:
    return [round(r.confidence, 5) for im in images for r in im.regions]


def _check_store(ws: Workspace, outcome: dict) -> None:
    # shard 4, same key: both writers got the one committed copy
    same = [outcome[(4, "same-key", seed)] for seed in (4, 44)]
    assert same[0] == same[1] and same[0].key == "same-key"
    # shard 5, different keys: exactly one committed, the other was refused
    raced = {key: outcome[(5, key, seed)] for key, seed in (("key-a", 5), ("key-b", 55))}
    refused = [key for key, result in raced.items() if isinstance(result, str)]
    assert len(refused) == 1 and "inputs changed" in raced[refused[0]]
    (winner,) = set(raced) - set(refused)
    expected_keys = {0: "k0", 1: "k1", 2: "k2", 3: "k3", 4: "same-key", 5: winner}
    assert ws.committed_shards(1) == expected_keys
    assert ws.round_entry(1)["shards"] == {str(k): v for k, v in expected_keys.items()}
    assert ws.round_entry(1)["rows"] == 3 * N_SHARDS

    # every committed shard is whole: its files hold exactly the rows its entry announces
    entries = ws.shard_entries(1)
    for entry in entries:
        for name, rows in (("pseudo_labels", entry["rows"]), ("images_file", entry["images"])):
            with ws.fs.open(posixpath.join(ws.path, entry[name]), "rb") as f:
                assert pq.read_table(f).num_rows == rows == 3
    # the losers removed their files: the data folders hold exactly the referenced files
    for kind, field in (("pseudo_labels", "pseudo_labels"), ("images", "images_file")):
        stored = {posixpath.relpath(p, ws.path) for p in ws.fs.find(f"{ws.path}/{kind}")
                  if p.endswith(".parquet")}
        assert stored == {e[field] for e in entries}

    # no duplicate rows; each shard holds one writer's rows, whole
    stored = run_sql(ws, "SELECT shard, count(DISTINCT (image_id, region_id)) AS distinct_rows, "
                         "list(confidence ORDER BY image_id, region_id) AS confidence "
                         "FROM pseudo_labels GROUP BY shard ORDER BY shard").to_pylist()
    assert [row["shard"] for row in stored] == list(range(N_SHARDS))
    seeds = {4: (4, 44), 5: (5,) if winner == "key-a" else (55,)}
    for row in stored:
        versions = [_confidences(_images(row["shard"], s))
                    for s in seeds.get(row["shard"], (row["shard"],))]
        assert row["distinct_rows"] == 3
        assert [round(c, 5) for c in row["confidence"]] in versions


def test_concurrent_writers_on_a_local_disk(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    _check_store(ws, _run_workers(ws.root))
    assert not list((tmp_path / "ws" / "_tmp").iterdir())  # no stray temporary file


@pytest.fixture
def s3_root():
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    from tests.storage.test_s3 import fresh_s3_root

    return fresh_s3_root()


def test_concurrent_writers_on_s3(s3_root):
    ws = Workspace(s3_root)
    _check_store(ws, _run_workers(ws.root))
    ws.fs.rm(ws.path, recursive=True)
