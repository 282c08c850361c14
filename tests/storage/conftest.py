"""Shared fixtures: a workspace on a local path or in memory://, and generated regions."""

import uuid

import fsspec
import numpy as np
import pytest

from storage.records import ImageRegions, RegionRecord
from storage.workspace import Workspace


@pytest.fixture(params=["local", "memory"])
def workspace(request, tmp_path):
    """The same tests run on a local directory and on fsspec's memory:// filesystem."""
    if request.param == "local":
        yield Workspace(str(tmp_path / "ws"))
        return
    name = f"ws-{uuid.uuid4().hex[:8]}"
    yield Workspace(f"memory://{name}")
    memory = fsspec.filesystem("memory")
    if memory.exists(f"/{name}"):
        memory.rm(f"/{name}", recursive=True)


def random_region(rng, height, width, class_id, refined=True, **fields) -> RegionRecord:
    """A rectangle-plus-noise coarse mask and (optionally) a shifted refined mask."""
    y0, x0 = rng.integers(0, height // 2), rng.integers(0, width // 2)
    y1, x1 = y0 + rng.integers(2, height // 2), x0 + rng.integers(2, width // 2)
    coarse = np.zeros((height, width), dtype=bool)
    coarse[y0:y1, x0:x1] = True
    coarse ^= rng.random((height, width)) < 0.02
    ys, xs = np.nonzero(coarse)
    bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    refined_mask = np.roll(coarse, 1, axis=1) if refined else None
    values = dict(class_id=class_id, class_name=f"class{class_id}",
                  confidence=float(rng.uniform(0.5, 1.0)), gated=True,
                  sam_iou=float(rng.uniform(0.6, 1.0)) if refined else None,
                  agreement_iou=float(rng.uniform(0.5, 1.0)) if refined else None,
                  accepted=refined, paints="refined" if refined else "coarse", coarse_mask=coarse,
                  refined_mask=refined_mask, bbox=bbox)
    values.update(fields)
    return RegionRecord(**values)


def make_images(n_images, regions_per_image, seed=0, height=24, width=32, prefix="img"):
    """`n_images` ImageRegions; region counts cycle through `regions_per_image` (0 allowed)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_images):
        n = regions_per_image[i % len(regions_per_image)]
        regions = [random_region(rng, height, width, class_id=int(rng.integers(0, 5)),
                                 refined=bool(k % 2 == 0)) for k in range(n)]
        images.append(ImageRegions(image_id=f"{prefix}/{i:04d}.jpg", height=height, width=width,
                                   gate_threshold=0.9, checkpoint_sha256="c" * 64,
                                   regions=regions))
    return images
