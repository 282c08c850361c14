"""STSeg: CLIP dense features (+ SAM through DEA) -> cost volume -> cost-aware decoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ovseg_core.config import ModelConfig
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.clip_encoder import ClipText, ClipVisual
from ovseg_core.modeling.cost_volume import cost_volume
from ovseg_core.modeling.dea import DEA
from ovseg_core.modeling.decoder import CostAwareDecoder
from ovseg_core.modeling.sam_encoder import SamImageEncoder, resize_longest_side


@dataclass
class STSegOutput:
    """logits: (B, N, H, W) at the input image size. aux_logits: [(B, N, h_i, w_i)] coarse to
    fine. sam_embedding: (B, C, s, s) SAM image embedding (None when DEA is off), reusable by
    the self-training refiner (`STSeg.sam.prompt_encoder` / `.mask_decoder`)."""

    logits: Tensor
    aux_logits: list[Tensor]
    sam_embedding: Tensor | None


class STSeg(nn.Module):
    """The composite model. Sub-modules: clip_visual (trained at lr x visual_lr_scale),
    clip_text (frozen), sam (frozen; None when DEA is off), dea (None when off), decoder."""

    def __init__(self, config: ModelConfig, clip_visual: ClipVisual, clip_text: ClipText,
                 decoder: CostAwareDecoder, sam: SamImageEncoder | None = None,
                 dea: DEA | None = None) -> None:
        super().__init__()
        self.config = config
        self.clip_visual = clip_visual
        self.clip_text = clip_text
        self.sam = sam
        self.dea = dea
        self.decoder = decoder

    def encode_vocabulary(self, class_names: Sequence[str]) -> Tensor:
        """N vocabulary entries ("a, b" = synonyms) -> (N, P, D) unit-norm text embeddings.

        Frozen text tower, 80 templates; cached per tuple(class_names) on the module.
        """
        return self.clip_text.encode_vocabulary(class_names)

    def forward(self, images: Tensor, text: Tensor, top_k: int | None = None,
                upsample: bool = True, sam_features: Tensor | None = None) -> STSegOutput:
        """images (B, 3, H, W) float RGB in [0, 1], any H, W; text (N, P, D) from
        `encode_vocabulary`. top_k: category early rejection (default: config.decoder.top_k).
        upsample=False returns the logits at the decoder's resolution (inference resizes them
        itself, a few classes at a time: N x H x W floats are 7.2 GB for 150 classes on 12 MP).
        sam_features: (B, C, gh, gw) SAM features of these images (`sam_features`), when the
        caller has them already; None = encode them now. Ignored when DEA is off."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise OvsegError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        size = self.config.input_size
        clip_in = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                antialias=True) if (height, width) != (size, size) else images
        dense, skips = self.clip_visual(clip_in)
        sam_embedding = None
        if self.dea is not None:
            if sam_features is None:
                sam_embedding = self.sam(images)
                sam_features = self.valid_features(sam_embedding, height, width)
            dense = self.dea(dense, sam_features)
        cost = cost_volume(dense, text)
        k = top_k if top_k is not None else self.config.decoder.top_k
        logits, aux = self.decoder(cost, skips, top_k=k)
        if upsample:
            logits = F.interpolate(logits, size=(height, width), mode="bilinear",
                                   align_corners=False)
        return STSegOutput(logits=logits, aux_logits=aux, sam_embedding=sam_embedding)

    def sam_features(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> the frozen SAM's features of the images alone,
        (B, C, gh, gw): the embedding's cells the image covers (SAM pads bottom-right)."""
        return self.valid_features(self.sam(images), *images.shape[-2:])

    def valid_features(self, embedding: Tensor, height: int, width: int) -> Tensor:
        """The cells of a (B, C, s, s) SAM embedding an (height, width) image covers."""
        h, w = resize_longest_side(height, width, self.sam.image_size)
        return embedding[:, :, : -(-h // 16), : -(-w // 16)]

    def trainable_parameter_groups(self, lr: float) -> list[dict]:
        """AdamW groups: CLIP visual tower at lr * clip.visual_lr_scale, DEA + decoder at lr.

        The frozen text tower and SAM are left out.
        """
        rest = list(self.decoder.parameters())
        if self.dea is not None:
            rest += list(self.dea.parameters())
        visual_lr = lr * self.config.clip.visual_lr_scale
        return [
            {"params": [p for p in self.clip_visual.parameters() if p.requires_grad],
             "lr": visual_lr, "name": "clip_visual"},
            {"params": [p for p in rest if p.requires_grad], "lr": lr, "name": "dea_decoder"},
        ]
