"""open_clip ConvNeXt as a dense encoder, and its frozen text tower with a vocabulary cache.

The visual side runs the timm ConvNeXt trunk stage by stage, keeps the stride 4/8/16 stage
outputs as decoder skips, and applies the trunk's head norm and CLIP's projection at every
stride-32 position, so each position is a vector in the text embedding space.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovseg_core.config import ClipConfig
from ovseg_core.errors import OvsegError
from ovseg_core.templates import IMAGENET_TEMPLATES, fill_templates, synonyms
from ovseg_core.weights import load_file_into

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

TINY_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {
        "timm_model_name": "convnext_atto", "timm_model_pretrained": False, "timm_pool": "",
        "timm_proj": "linear", "timm_drop": 0.0, "timm_drop_path": 0.0, "image_size": 128,
    },
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
"""A small random open_clip config for tests ("ovseg-tiny"): ConvNeXt-atto trunk, 2-layer text."""

TEXT_BATCH = 1024
"""Prompts encoded per text-tower call."""


def open_clip_config(model_name: str) -> dict:
    """The open_clip architecture dict of `model_name` (a copy; nothing is registered)."""
    import open_clip

    if model_name == "ovseg-tiny":
        return copy.deepcopy(TINY_CLIP)
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise OvsegError(f"unknown open_clip model {model_name!r} (clip.model_name)")
    if "timm_model_name" not in cfg.get("vision_cfg", {}):
        raise OvsegError(f"open_clip model {model_name!r} is not a timm ConvNeXt model")
    return cfg


def build_open_clip(cfg: ClipConfig) -> nn.Module:
    """Build an open_clip CLIP from its config and load `cfg.pretrained` (a local file)."""
    import open_clip

    model = open_clip.model.CLIP(**open_clip_config(cfg.model_name))
    if cfg.pretrained is not None:
        load_open_clip_weights(model, Path(cfg.pretrained))
    return model


def load_open_clip_weights(model: nn.Module, path: Path) -> None:
    """Load an open_clip checkpoint file (.safetensors or a .pt/.bin state dict) strictly, on
    the CPU, through `ovseg_core.weights`."""
    load_file_into(model, path, "CLIP checkpoint",
                   hint="Set the model config's clip.pretrained to a local open_clip checkpoint "
                        "file (or null for random init).")


class ClipVisual(nn.Module):
    """Dense CLIP image encoder with multi-scale skips.

    forward: images (B, 3, S, S) RGB in [0, 1], S = input size ->
    (dense (B, D, S/32, S/32) in text space,
     skips [stride 4, stride 8, stride 16] (B, C_i, S/s, S/s)).
    """

    def __init__(self, trunk: nn.Module, proj: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.proj = proj
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def skip_channels(self) -> list[int]:
        """Channels of the stride 4, 8, 16 skips."""
        return [int(info["num_chs"]) for info in self.trunk.feature_info[:3]]

    def forward(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = (images - self.mean) / self.std
        x = self.trunk.stem(x)
        skips = []
        for stage in self.trunk.stages:
            x = stage(x)
            skips.append(x)
        x = self.trunk.head.norm(self.trunk.norm_pre(x))  # LayerNorm2d per position
        dense = self.proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return dense, skips[:3]


class ClipText(nn.Module):
    """The frozen CLIP text tower (an open_clip CLIP with its visual tower removed).

    encode_vocabulary(names) -> (N, P, D) unit-norm embeddings, cached per tuple(names).
    """

    def __init__(self, clip: nn.Module, context_length: int) -> None:
        super().__init__()
        clip.visual = None
        self.clip = clip
        self.context_length = context_length
        self.requires_grad_(False)
        self.eval()
        self._cache: dict[tuple[str, ...], Tensor] = {}

    def train(self, mode: bool = True) -> ClipText:
        """Frozen: always stays in eval mode."""
        return super().train(False)

    def _apply(self, fn, recurse=True):
        self._cache.clear()  # cached embeddings follow the weights' device/dtype
        return super()._apply(fn, recurse)

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """(M,) strings -> (M, D) unit-norm text embeddings."""
        from open_clip.tokenizer import tokenize

        device = self.clip.token_embedding.weight.device
        out = []
        for start in range(0, len(prompts), TEXT_BATCH):
            tokens = tokenize(list(prompts[start:start + TEXT_BATCH]), self.context_length)
            out.append(self.clip.encode_text(tokens.to(device), normalize=True).float())
        return torch.cat(out)

    def encode_vocabulary(self, class_names: Sequence[str]) -> Tensor:
        """N vocabulary entries -> (N, P, D) embeddings, P = 80 templates; synonyms averaged."""
        key = tuple(class_names)
        if key not in self._cache:
            if not key:
                raise OvsegError("the vocabulary is empty")
            entries = [synonyms(entry) for entry in key]
            prompts = [p for names in entries for name in names for p in fill_templates(name)]
            emb = self.encode_prompts(prompts).view(-1, len(IMAGENET_TEMPLATES), self.embed_dim)
            per_entry = torch.split(emb, [len(names) for names in entries])
            self._cache[key] = torch.stack([F.normalize(e.mean(0), dim=-1) for e in per_entry])
        return self._cache[key]

    @property
    def embed_dim(self) -> int:
        """D, the width of the text embedding space."""
        proj = self.clip.text_projection
        return int(proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1])


def dense_visual(clip: nn.Module) -> ClipVisual:
    """The dense visual encoder sharing `clip`'s ConvNeXt trunk and head projection."""
    return ClipVisual(clip.visual.trunk, clip.visual.head.proj)


def clip_parts(clip: nn.Module) -> tuple[ClipVisual, ClipText]:
    """The dense visual encoder and the frozen text tower of one open_clip model (sharing its
    modules)."""
    return dense_visual(clip), ClipText(clip, clip.context_length)
