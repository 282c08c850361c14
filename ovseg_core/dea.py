"""Dual Embedding Aggregation (DEA, eq. 1-4): CLIP dense features attend to SAM features.

With F_c the CLIP tokens (B, L, D) and F_s the SAM embedding resampled to the CLIP grid and
projected to width D:
  F'   = LN(Q + softmax(Q K^T / sqrt(d)) V),  Q = F_c W_Q, K = F_s W_K, V = F_s W_V   (eq. 1-2)
  F''  = LN(F' + SelfAttention(F'))                                                 (eq. 3)
  F_cv = LN(F'' + FFN(F''))                                                         (eq. 4)
Multi-head attention (d = D / heads per head).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention without an output residual: (B, Lq, D), (B, Lk, D) -> (B, Lq, D).

    `q_proj` is exposed because eq. 2 adds the projected query Q (not F_c) as the residual.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, q: Tensor, kv: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (attention output (B, Lq, D), projected queries Q (B, Lq, D))."""
        b, lq, d = q.shape
        query = self.q_proj(q)
        split = lambda t: t.reshape(b, t.shape[1], self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(query), split(self.k_proj(kv)), split(self.v_proj(kv)))
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, d)), query


class DEA(nn.Module):
    """CLIP dense (B, D, h, w) + SAM embedding (B, C_sam, s, s) -> fused (B, D, h, w).

    `sam_valid` = (rows, cols) of the SAM grid covered by the image (the rest is padding); that
    part is resampled (bilinear) to the CLIP grid (h, w).
    """

    def __init__(self, dim: int, sam_dim: int, heads: int = 8, ffn_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"DEA width {dim} is not divisible by {heads} heads")
        self.sam_proj = nn.Linear(sam_dim, dim)
        self.cross = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * ffn_ratio)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, clip_dense: Tensor, sam_embedding: Tensor, sam_valid: tuple[int, int]) -> Tensor:
        b, d, h, w = clip_dense.shape
        sam = sam_embedding[:, :, : sam_valid[0], : sam_valid[1]].to(clip_dense.dtype)
        sam = F.interpolate(sam, size=(h, w), mode="bilinear", align_corners=False)
        f_s = self.sam_proj(sam.flatten(2).transpose(1, 2))  # (B, hw, D)
        f_c = clip_dense.flatten(2).transpose(1, 2)  # (B, hw, D)
        attn, query = self.cross(f_c, f_s)
        x = self.norm1(query + attn)  # eq. 1-2
        x = self.norm2(x + self.self_attn(x, x)[0])  # eq. 3
        x = self.norm3(x + self.ffn(x))  # eq. 4
        return x.transpose(1, 2).reshape(b, d, h, w)
