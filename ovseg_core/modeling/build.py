"""Assemble STSeg from a ModelConfig (no device choice, no downloads)."""

from __future__ import annotations

import dataclasses

import torch

from ovseg_core.config import ModelConfig
from ovseg_core.modeling.clip_encoder import build_open_clip, clip_parts
from ovseg_core.modeling.dea import DEA
from ovseg_core.modeling.decoder import CostAwareDecoder
from ovseg_core.modeling.model import STSeg
from ovseg_core.modeling.sam_encoder import SamImageEncoder, build_sam
from ovseg_core.templates import IMAGENET_TEMPLATES


def build_model(config: ModelConfig, seed: int | None = None) -> STSeg:
    """STSeg with pretrained weights read from the local files the config names.

    CLIP: `config.clip.pretrained` (None = random init). SAM: `config.sam.checkpoint`, else
    `default_sam_checkpoint(variant)`; a missing file raises OvsegError. SAM is built only when
    DEA is on (the baseline rows of Table 2 carry no SAM). seed: the random init of what is not
    loaded from files (None = the current global RNG state); the global RNG is left as it was.
    """
    if seed is None:
        return _assemble(config.validate(), load_pretrained=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _assemble(config.validate(), load_pretrained=True)


def build_skeleton(config: ModelConfig) -> STSeg:
    """The same architecture with random weights and no file reads (for `load_model`)."""
    return _assemble(config.validate(), load_pretrained=False)


def _assemble(config: ModelConfig, load_pretrained: bool) -> STSeg:
    # SAM first, so a missing file fails fast; on its own RNG stream, so CLIP and the decoder
    # get the same random init with DEA on or off.
    sam = None
    if config.dea_enabled:
        with torch.random.fork_rng(devices=[]):
            sam = SamImageEncoder(build_sam(config.sam.variant, config.sam.checkpoint,
                                            random_init=not load_pretrained,
                                            setting="model.sam_checkpoint",
                                            image_size=config.sam.image_size))
    clip_cfg = config.clip if load_pretrained else dataclasses.replace(config.clip, pretrained=None)
    visual, text = clip_parts(build_open_clip(clip_cfg))
    embed_dim = visual.proj.out_features
    dc = config.decoder
    decoder = CostAwareDecoder(len(IMAGENET_TEMPLATES), visual.skip_channels, dc.dims,
                               attn_dim=dc.attn_dim, kernel_size=dc.kernel_size)
    dea = None
    if sam is not None:
        dea = DEA(embed_dim, sam.embed_dim, heads=config.dea.heads, ffn_ratio=config.dea.ffn_ratio)
    return STSeg(config, visual, text, decoder, sam=sam, dea=dea)
