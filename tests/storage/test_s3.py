"""The storage tests again on s3://, against a real S3 server (moto's) on 127.0.0.1.

The server runs in a child process, listening on loopback only, on a free port; it stays up for the
session. Credentials and the endpoint come from the environment, as on a cluster:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and AWS_ENDPOINT_URL (read by
botocore when s3fs makes its client, so setting it after fsspec is imported works; spawned
worker processes inherit it).

The tests imported below run here with this module's `workspace` fixture: a fresh
`s3://<bucket>/<prefix>` per test.
"""

import atexit
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from storage.workspace import Workspace
from tests.storage.test_lineage_checkpoints import (  # noqa: F401  (collected here on S3)
    test_checkpoints_round_trip_with_their_hash,
    test_failed_attempts_are_superseded_and_redo_clears_the_round,
    test_lineage_is_immutable_once_completed,
    test_redo_drops_the_round_checkpoint_and_shards,
    test_rounds_view_exposes_lineage,
)
from tests.storage.test_query import (  # noqa: F401
    test_class_stats_match_hand_computed_values,
    test_files_inside_the_workspace_stay_readable,
    two_rounds,
)
from tests.storage.test_samples_export import (  # noqa: F401
    test_coco_export_round_trips,
    test_default_selection_paints_the_expected_map,
)
from tests.storage.test_samples_export import test_label_map_export_round_trips as _label_maps
from tests.storage.test_shards import (  # noqa: F401
    test_a_different_key_is_refused_until_the_round_is_redone,
    test_committing_twice_is_idempotent,
    test_files_carry_the_declared_schema_and_version,
    test_round_commit_needs_every_shard_and_freezes_the_round,
    test_rows_written_equal_rows_read_and_masks_decode_to_the_same_pixels,
)

BUCKET = "ovseg-test"
_SERVER: dict = {}


def _start_server() -> int:
    """Run `python -m moto.server` on 127.0.0.1 and a free port (its own process: no GIL
    shared with the client); stopped at exit. Returns the port once it accepts connections."""
    for _ in range(3):  # the free port may be taken between the probe and the bind
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                   "-p", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            atexit.register(_stop, server)
            return port
        _stop(server)
    raise RuntimeError("the moto S3 server did not start")


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


def s3_endpoint() -> str:
    """Start (once per process) a moto S3 server on 127.0.0.1 and a bucket; set the AWS_*
    environment for it. Returns the endpoint URL."""
    if "url" not in _SERVER:
        port = _start_server()
        url = f"http://127.0.0.1:{port}"
        os.environ.update(AWS_ACCESS_KEY_ID="ovseg-test", AWS_SECRET_ACCESS_KEY="ovseg-test",
                          AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=url)
        import fsspec

        fsspec.filesystem("s3", skip_instance_cache=True).mkdir(BUCKET)
        _SERVER["url"] = url
    return _SERVER["url"]


def fresh_s3_root() -> str:
    """A new empty `s3://` prefix on the test server."""
    s3_endpoint()
    return f"s3://{BUCKET}/ws-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def s3_server() -> str:
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    return s3_endpoint()


@pytest.fixture
def workspace(s3_server):
    ws = Workspace(fresh_s3_root())
    yield ws
    if ws.fs.exists(ws.path):
        ws.fs.rm(ws.path, recursive=True)


def test_the_workspace_really_talks_to_the_local_server(s3_server, workspace):
    import botocore.session

    workspace.write_shard(1, 0, "k", [])
    client = botocore.session.get_session().create_client("s3")  # endpoint from the env
    assert client.meta.endpoint_url == s3_server
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    prefix = workspace.path.split("/", 1)[1]
    assert f"{prefix}/pseudo_labels/round=001/_manifest/shard=00000.json" in keys
    assert f"{prefix}/pseudo_labels/round=001/shard=00000.parquet" in keys
    assert not any("/_tmp/" in k for k in keys)  # S3 writes go straight to their final key


def test_commits_of_another_process_are_seen_at_once(workspace):
    import s3fs

    writer = Workspace(workspace.root)
    writer.fs = s3fs.S3FileSystem(skip_instance_cache=True)  # its own client, as elsewhere
    writer.write_shard(1, 0, "k0", [])
    assert workspace.committed_shards(1) == {0: "k0"}  # the reader lists the manifests
    writer.write_shard(1, 1, "k1", [])
    assert workspace.committed_shards(1) == {0: "k0", 1: "k1"}  # not from a stale listing
    assert workspace.shard_entry(1, 1)["key"] == "k1"


def test_label_map_export_round_trips_16_bit(workspace, tmp_path):
    _label_maps(workspace, tmp_path, "png", 300, 16)  # one case of the local/memory matrix
