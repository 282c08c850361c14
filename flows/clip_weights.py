"""The run's CLIP weights: a local file the user names, or, for the tiny preset on the built-in
world, the tiny CLIP pretrained on that world's caption corpus (once per workspace)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from flows.config import RunConfig
from flows.plan import local_dir
from ovseg_core.progress import say

CLIP_PRETRAIN_SEED = 0
"""The pretrained tiny CLIP is an input of a run, like real CLIP weights: one per workspace,
whatever the run's seed (Table 2's seeds vary what is trained on top of it)."""


def pretrains_clip(cfg: RunConfig) -> bool:
    """The tiny preset on the built-in world, with no CLIP weights given and pretraining on."""
    m = cfg.model
    return m.preset == "tiny" and m.clip_weights is None and m.pretrain_clip and \
        cfg.data.source is None


def clip_weights(cfg: RunConfig) -> str | None:
    """The run's CLIP weights file: `model.clip_weights`, or the workspace's pretrained tiny
    CLIP (named by the key of what shapes it; made by `ensure_clip`), or None (random)."""
    if not pretrains_clip(cfg):
        return cfg.model.clip_weights
    from ovseg_core import clip_pretrain as cp

    key = cp.corpus_key(CLIP_PRETRAIN_SEED, cp.DEFAULT_STEPS, cp.DEFAULT_BATCH,
                        cp.DEFAULT_IMAGE_SIZE, cp.DEFAULT_LR)
    return str(local_dir(cfg.workspace, "clip") / f"ovseg-tiny-{key[:16]}.pt")


def ensure_clip(cfg: RunConfig) -> dict:
    """Pretrain the tiny CLIP once per workspace (atomically) and return its report (key,
    seconds, loss, zero-shot checks); {} when the run does not pretrain."""
    if not pretrains_clip(cfg):
        return {}
    from ovseg_core.clip_pretrain import pretrain_tiny_clip

    path = Path(clip_weights(cfg))
    report_file = path.with_suffix(".json")
    if not report_file.is_file():  # written last: its presence means the weights are complete
        say("pretraining the tiny CLIP (once per workspace): image and text encoders learn "
            "from captions of the built-in world that name every class, seen and unseen; "
            "ovseg uses it as its CLIP weights (no CLIP weights are downloaded)")
        report = pretrain_tiny_clip(path, seed=CLIP_PRETRAIN_SEED)  # saves atomically
        tmp = report_file.with_name(f"{report_file.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(report_file)
    return json.loads(report_file.read_text())


def clip_metrics(report: dict) -> dict:
    """The pretrained CLIP's key and zero-shot figures, for the stage-one lineage record."""
    if not report:
        return {}
    crops, dense = report["pretrained"]["crops"], report["pretrained"]["dense"]
    return {"clip_pretrain_key": report["corpus_key"],
            "clip_crop_unseen_top1": crops["unseen_top1"], "clip_crop_chance": crops["chance"],
            "clip_dense_unseen_miou": dense["unseen_miou"]}
