"""Bounds on what a review file may make ovseg read, parse and rasterise (storage.review_import).

A review file comes from outside (a labelling tool, a person, anyone): nothing in it may crash
the process or make it allocate without bound. Every check here raises ValueError with a short
reason; the importer turns it into one StorageError naming the file, and nothing is stored.

- The file: at most MAX_FILE_BYTES, also the annotation JSON inside a zip (its declared and its
  actual size), a zip of at most MAX_ZIP_MEMBERS entries.
- The JSON: NaN, Infinity and numbers beyond float range are refused (Python's json module
  accepts them); nesting deeper than Python's recursion limit is a ValueError, not a crash.
- The content: at most MAX_ANNOTATIONS masks and MAX_VERTICES polygon vertices per file.
- A polygon: finite coordinates within the image, give or take COORDINATE_MARGIN of its size
  (then clipped to it), and an outline no longer than MAX_OUTLINE_PER_SIDE times the image's
  height + width (pycocotools allocates memory per pixel of outline).
- An RLE: runs that are non-negative and add up to exactly height x width (pycocotools
  writes one pixel per run length into an H x W buffer without checking).
"""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np

MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest review file (or annotation JSON inside a zip) read, in bytes."""
MAX_ZIP_MEMBERS = 10_000
MAX_ANNOTATIONS = 1_000_000
"""Most masks (COCO annotations, Label Studio results) one file may hold."""
MAX_VERTICES = 20_000_000
"""Most polygon vertices one file may hold, all polygons together."""
COORDINATE_MARGIN = 0.01
"""How far outside the image a polygon vertex may lie, as a share of the image's side (tools
put a vertex a fraction of a pixel outside when a person clicks on the border)."""
MAX_OUTLINE_PER_SIDE = 64
"""A polygon's outline may be at most this many times (height + width) pixels long."""


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number ovseg reads")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a number")
    return value


def parse_json(data: bytes) -> object:
    """Parse JSON strictly (see the module docstring). ValueError for anything unreadable,
    deep nesting included."""
    try:
        return json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply to be an annotation export") from None
    except UnicodeDecodeError:
        raise ValueError("not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None


def read_bounded(f) -> bytes:
    """At most MAX_FILE_BYTES of the open binary file `f`; ValueError when it holds more."""
    data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES >> 20} MiB, more than a review file "
                         "ovseg reads")
    return data


def zip_member(data: bytes) -> bytes:
    """The one annotation JSON of a zip export (CVAT's annotations/instances_default.json),
    read within the bounds; ValueError for a broken, encrypted, crowded or oversized zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise ValueError(f"a zip of {len(infos)} entries; an annotation export holds "
                                 "a few")
            names = [i for i in infos if i.filename.endswith(".json")]
            if len(names) != 1:
                raise ValueError("a zip should hold one annotation JSON (CVAT's "
                                 "annotations/instances_default.json); found "
                                 f"{[i.filename for i in names]}")
            if names[0].file_size > MAX_FILE_BYTES:
                raise ValueError(f"{names[0].filename} in the zip unpacks to "
                                 f"{names[0].file_size} bytes, more than the "
                                 f"{MAX_FILE_BYTES >> 20} MiB ovseg reads")
            with z.open(names[0]) as member:
                return read_bounded(member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            EOFError, OSError) as exc:
        raise ValueError(f"a broken or unsupported zip ({exc})") from None


def check_count(n: int, what: str = "masks") -> None:
    if n > MAX_ANNOTATIONS:
        raise ValueError(f"{n} {what}, more than the {MAX_ANNOTATIONS} one file may hold")


class VertexBudget:
    """Counts the polygon vertices of one file against MAX_VERTICES."""

    def __init__(self):
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > MAX_VERTICES:
            raise ValueError(f"more than {MAX_VERTICES} polygon vertices in one file")


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def checked_polygon(flat, height: int, width: int, budget: VertexBudget) -> list[float]:
    """A flat [x0, y0, x1, y1, ...] polygon in pixels, checked (module docstring) and clipped
    to [0, width] x [0, height]; ValueError naming the first problem."""
    if not isinstance(flat, list) or len(flat) % 2 or not all(_number(v) for v in flat):
        raise ValueError("a polygon is not a flat list of x, y numbers")
    budget.take(len(flat) // 2)
    xy = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(xy).all():
        raise ValueError("a polygon has a coordinate that is not a finite number")
    size = np.array([width, height], dtype=np.float64)
    margin = COORDINATE_MARGIN * size + 1.0
    outside = (xy < -margin) | (xy > size + margin)
    if outside.any():
        value = xy[outside][0]
        raise ValueError(f"a polygon vertex lies at {value:g}, outside the {height}x{width} "
                         "image")
    xy = np.clip(xy, 0.0, size)
    outline = np.abs(np.diff(xy, axis=0, append=xy[:1])).max(axis=1).sum() if len(xy) else 0
    if outline > MAX_OUTLINE_PER_SIDE * (height + width):
        raise ValueError(f"a polygon's outline is {outline:.0f} pixels long, more than "
                         f"{MAX_OUTLINE_PER_SIDE} times the {height}x{width} image's sides")
    return xy.ravel().tolist()


def check_runs(counts, height: int, width: int) -> None:
    """Uncompressed RLE run lengths: non-negative ints adding up to height x width."""
    if not isinstance(counts, list) or not all(isinstance(c, int) and not isinstance(c, bool)
                                                for c in counts):
        raise ValueError("RLE counts are not a list of whole numbers")
    if len(counts) > height * width + 1 or any(c < 0 for c in counts):
        raise ValueError("RLE counts are not run lengths of the image")
    if sum(counts) != height * width:
        raise ValueError(f"RLE runs cover {sum(counts)} pixels, the image has "
                         f"{height * width}")


def compressed_runs(counts: str) -> np.ndarray:
    """The run lengths of a compressed COCO RLE string (pycocotools' rleFrString), int64
    `(M,)`; ValueError for characters or values outside the format."""
    try:
        raw = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    except (UnicodeEncodeError, AttributeError):
        raise ValueError("RLE counts are not an ASCII string") from None
    if raw.size and ((raw < 0) | (raw > 63)).any():
        raise ValueError("RLE counts hold characters outside the COCO RLE alphabet")
    ends = np.flatnonzero((raw & 0x20) == 0)
    if raw.size and (ends.size == 0 or ends[-1] != raw.size - 1):
        raise ValueError("RLE counts end in the middle of a number")
    starts = np.concatenate([[0], ends[:-1] + 1]) if ends.size else ends
    if ends.size and (ends - starts).max() >= 7:
        raise ValueError("RLE counts hold a number too large for an image")
    group = np.repeat(np.arange(ends.size), ends - starts + 1)
    shift = 5 * (np.arange(raw.size) - starts[group])
    values = np.bincount(group, weights=(raw & 0x1F) << shift, minlength=ends.size)
    values = values.astype(np.int64)
    negative = (raw[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * (ends - starts + 1))[negative]
    runs = values.copy()  # from the fourth run on, each is a delta to the run two before
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def check_compressed(counts: str, height: int, width: int) -> None:
    """A compressed COCO RLE string whose runs are non-negative and cover height x width."""
    runs = compressed_runs(counts)
    if (runs < 0).any() or int(runs.sum()) != height * width:
        raise ValueError(f"RLE runs cover {int(runs.sum())} pixels (or run backwards), the "
                         f"image has {height * width}")
