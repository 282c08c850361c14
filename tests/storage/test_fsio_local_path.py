"""storage.fsio.local_path: the one place a URL is told local or remote."""

import pytest

from storage.fsio import local_path


@pytest.mark.parametrize(("url", "path"), [
    ("/data/ws", "/data/ws"), ("runs/ws", "runs/ws"), ("file:///data/ws", "/data/ws"),
    ("s3://bucket/prefix", None), ("memory://ws", None), ("gs://b/p", None)])
def test_local_and_remote_urls(url, path):
    assert local_path(url) == path
