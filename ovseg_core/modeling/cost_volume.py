"""Pixel-text cosine cost volume (eq. 5), with the template axis P kept."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cost_volume(image_features: Tensor, text: Tensor) -> Tensor:
    """cos(F_cv(x, y), E(n, p)).

    image_features: (B, D, h, w); text: (N, P, D) -> (B, N, P, h, w), values in [-1, 1].
    """
    img = F.normalize(image_features, dim=1)
    txt = F.normalize(text.to(img.dtype), dim=-1)
    return torch.einsum("bdhw,npd->bnphw", img, txt)
