"""A writer SIGKILLed mid-shard (a real subprocess) leaves the store readable, the shard absent."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.query import run_sql
from storage.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
N_SHARDS, N_IMAGES, REGIONS = 4, 24, [4, 0, 3]

WRITER = f"""
import sys  # run with `-c` in ROOT, so the checkout is importable
from storage.workspace import Workspace
from tests.storage.conftest import make_images
ws = Workspace(sys.argv[1])
for shard in range({N_SHARDS}):
    images = make_images({N_IMAGES}, {REGIONS}, seed=shard, height=384, width=512,
                         prefix=f"s{{shard}}")
    ws.write_shard(1, shard, f"key{{shard}}", images)
    print("committed", shard, flush=True)
"""


def _start(root: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, root], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the writer finished before the kill point"
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _rows_per_shard() -> int:
    return sum(REGIONS[i % len(REGIONS)] for i in range(N_IMAGES))


def _check_readable_and_resumable(root: str) -> None:
    ws = Workspace(root)
    committed = ws.committed_shards(1)
    assert sorted(committed) == list(range(len(committed))) and len(committed) < N_SHARDS
    counts = run_sql(ws, "SELECT shard, count(*) AS n FROM pseudo_labels GROUP BY shard "
                         "ORDER BY shard").to_pylist()
    assert counts == [{"shard": s, "n": _rows_per_shard()} for s in sorted(committed)]
    images = run_sql(ws, "SELECT count(*) AS n FROM images")["n"][0].as_py()
    assert images == N_IMAGES * len(committed)
    # the killed shard is absent; resuming writes exactly the missing shards
    resumed = _start(root)
    assert resumed.wait(timeout=120) == 0
    total = run_sql(ws, "SELECT count(*) AS n FROM pseudo_labels")["n"][0].as_py()
    assert total == N_SHARDS * _rows_per_shard()
    ws.commit_round(1, N_SHARDS)


def _tmp_file_exists(root: str):
    tmp = Path(root) / "_tmp"
    return lambda: tmp.is_dir() and any(tmp.iterdir())


def test_kill_during_a_parquet_write(tmp_path):
    root = str(tmp_path / "ws")
    _kill_when(_start(root), _tmp_file_exists(root))  # a temporary file is being written
    _check_readable_and_resumable(root)


def test_kill_after_the_first_commit(tmp_path):
    root = str(tmp_path / "ws")
    proc = _start(root)
    first = proc.stdout.readline()
    assert first.strip() == "committed 0"
    _kill_when(proc, lambda: True)  # while shard 1 is encoded or written
    _check_readable_and_resumable(root)


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.005 * k for k in range(30)])  # a shard takes ~0.1 s
def test_kill_at_many_moments(tmp_path, delay_s):
    root = str(tmp_path / "ws")
    proc = _start(root)
    assert proc.stdout.readline().strip() == "committed 0"
    start = time.monotonic()
    _kill_when(proc, lambda: time.monotonic() - start >= delay_s)
    _check_readable_and_resumable(root)
