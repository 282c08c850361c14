"""Content hashes that decide identity in the store: configs, shard keys, files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

_CHUNK = 1 << 20


def canonical_json(value) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: dict) -> str:
    """sha256 hex of the canonical JSON of a (nested) config dict."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def shard_key(round: int, shard: int, image_ids: Iterable[str], parent_checkpoint_sha256: str,
              config_hash: str) -> str:
    """The identity of a shard's output: sha256 hex of everything that determines it.

    Image order does not matter (the ids are sorted); a change of any input gives a new key.
    """
    payload = {
        "round": int(round),
        "shard": int(shard),
        "images": sorted(image_ids),
        "parent_checkpoint_sha256": parent_checkpoint_sha256,
        "config_hash": config_hash,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def dataset_manifest_hash(image_ids: Iterable[str]) -> str:
    """sha256 hex of the sorted image ids: which images a stage saw."""
    return hashlib.sha256("\n".join(sorted(image_ids)).encode()).hexdigest()


def stream_sha256(fileobj) -> str:
    """sha256 hex of a binary file object, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    while chunk := fileobj.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
