"""Dual Embedding Aggregation (DEA, eq. 1-4): CLIP dense features attend to SAM features.

With F_c the CLIP tokens (B, L, D) and F_s the SAM embedding resampled to the CLIP grid and
projected to width D, the paper writes (post-norm):
  F'   = LN(Q + softmax(Q K^T / sqrt(d)) V),  Q = F_c W_Q, K = F_s W_K, V = F_s W_V   (eq. 1-2)
  F''  = LN(F' + SelfAttention(F'))                                                 (eq. 3)
  F_cv = LN(F'' + FFN(F''))                                                         (eq. 4)
Taken literally, the residual Q = F_c W_Q and the LayerNorms replace CLIP's features by a random
projection at initialisation, so the cost volume no longer matches CLIP's text space (the tiny
preset's DEA-on cost volume correlates -0.06 with the DEA-off one,
`dea_init` in docs/results.md) and the model must relearn image-text alignment from the seen
classes alone, the opposite of what open-vocabulary transfer needs. ovseg keeps the same three
blocks (cross-attention with queries from CLIP and keys/values from SAM, self-attention, FFN)
but as pre-norm residual blocks on F_c itself, each block's output projection initialised to
zero:
  F'   = F_c  + CrossAttention(LN(F_c), F_s)
  F''  = F'   + SelfAttention(LN(F'))
  F_cv = F''  + FFN(LN(F''))
so at initialisation F_cv = F_c exactly (DEA on = DEA off) and training moves away from CLIP's
alignment only as far as the loss asks. See docs/method-notes.md.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention without a residual: (B, Lq, D) queries, (B, Lk, D) keys/values ->
    (B, Lq, D). The output projection starts at zero (the block is the identity at init)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        _zero(self.out_proj)

    def forward(self, q: Tensor, kv: Tensor) -> Tensor:
        b, lq, d = q.shape

        def split(t: Tensor) -> Tensor:  # (B, L, D) -> (B, heads, L, D / heads)
            return t.reshape(b, t.shape[1], self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(q)), split(self.k_proj(kv)),
                                             split(self.v_proj(kv)))
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, d))


class DEA(nn.Module):
    """CLIP dense (B, D, h, w) + SAM features (B, C_sam, gh, gw) -> fused (B, D, h, w).

    The SAM features cover the same image as CLIP's grid (no padding: `STSeg.sam_features`);
    they are resampled to the CLIP grid (h, w) with an antialiased bilinear filter, so a finer
    SAM grid is averaged down rather than point-sampled. Identity on CLIP's features at init.
    """

    def __init__(self, dim: int, sam_dim: int, heads: int = 8, ffn_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"DEA width {dim} is not divisible by {heads} heads")
        self.sam_proj = nn.Linear(sam_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.cross = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        hidden = int(dim * ffn_ratio)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        _zero(self.ffn[-1])

    def forward(self, clip_dense: Tensor, sam_features: Tensor) -> Tensor:
        b, d, h, w = clip_dense.shape
        sam = sam_features.to(clip_dense.dtype)
        if sam.shape[-2:] != (h, w):
            sam = F.interpolate(sam, size=(h, w), mode="bilinear", align_corners=False,
                                antialias=True)
        f_s = self.sam_proj(sam.flatten(2).transpose(1, 2))  # (B, hw, D)
        x = clip_dense.flatten(2).transpose(1, 2)  # F_c (B, hw, D)
        x = x + self.cross(self.norm1(x), f_s)  # eq. 1-2, residual on F_c
        y = self.norm2(x)
        x = x + self.self_attn(y, y)  # eq. 3
        x = x + self.ffn(self.norm3(x))  # eq. 4
        return x.transpose(1, 2).reshape(b, d, h, w)


def _zero(layer: nn.Linear) -> None:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
