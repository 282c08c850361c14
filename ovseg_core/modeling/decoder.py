"""SED-style cost-aware decoder with auxiliary heads and category early rejection.

Per-class features (B, N, C, H, W) go through three stages (strides 32 -> 16 -> 8 -> 4, i.e.
24 -> 48 -> 96 -> 192 px at a 768 input). Each stage: spatial aggregation (a ConvNeXt block with
a depthwise k x k conv, run per class), class aggregation (linear attention across the classes
at each location), an auxiliary head, then x2 upsampling fused with the CLIP trunk skip of that
scale and the upsampled raw cost volume. A final head gives one logit per class per pixel.

Class aggregation takes its keys and values from the coarsest level's class features of all N
classes (the key-value sums are upsampled, which is exact because upsampling is linear), and
its queries from the current level. So every class is computed independently given that
memory: early rejection (keeping each image's union of per-pixel top-K classes after a level)
drops work without changing the logits of the classes it keeps, for any batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REJECTED_LOGIT = -1.0e4
"""Logit given to classes removed by early rejection."""


def resize_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize (align_corners=False) of the last two dims of a (..., C, H, W) tensor;
    `x` itself when already at `size`."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.flatten(0, len(lead) - 1), size=size, mode="bilinear", align_corners=False)
    return y.view(*lead, *y.shape[1:])


class SpatialBlock(nn.Module):
    """ConvNeXt block per class: x + MLP(LN(depthwise k x k conv(x))); (M, C, H, W) -> same."""

    def __init__(self, dim: int, kernel_size: int = 9) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        return x + self.mlp(y).permute(0, 3, 1, 2)


class ClassAggregation(nn.Module):
    """Linear attention across class tokens at each location (feature map elu + 1).

    memory(f0): coarse class features (B, N, C0, h, w) -> key-value sums (B, a*a + a, h, w).
    forward(x, memory): x (B, M, C, H, W) queries -> x + attention output, same shape.
    """

    def __init__(self, dim: int, memory_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.attn_dim = attn_dim
        self.q_norm = nn.LayerNorm(dim)
        self.m_norm = nn.LayerNorm(memory_dim)
        self.q = nn.Linear(dim, attn_dim)
        self.k = nn.Linear(memory_dim, attn_dim)
        self.v = nn.Linear(memory_dim, attn_dim)
        self.out = nn.Linear(attn_dim, dim)

    def memory(self, f0: Tensor) -> Tensor:
        f = self.m_norm(f0.permute(0, 3, 4, 1, 2))  # (B, h, w, N, C0)
        k = F.elu(self.k(f)) + 1.0
        kv = torch.einsum("bhwna,bhwnc->bhwac", k, self.v(f)).flatten(-2)
        return torch.cat([kv, k.sum(3)], dim=-1).permute(0, 3, 1, 2)

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        a = self.attn_dim
        mem = resize_bilinear(memory, x.shape[-2:]).permute(0, 2, 3, 1)  # (B, H, W, a*a + a)
        kv, z = mem[..., : a * a].unflatten(-1, (a, a)), mem[..., a * a:]
        q = F.elu(self.q(self.q_norm(x.permute(0, 3, 4, 1, 2)))) + 1.0  # (B, H, W, M, a)
        num = torch.einsum("bhwma,bhwac->bhwmc", q, kv)
        den = torch.einsum("bhwma,bhwa->bhwm", q, z).unsqueeze(-1)
        return x + self.out(num / (den + 1e-6)).permute(0, 3, 4, 1, 2)


class CostAwareDecoder(nn.Module):
    """Cost volume (B, N, P, h, w) + skips [stride 4, 8, 16] -> logits (B, N, 8h, 8w) + aux.

    dims: channels (C0, C1, C2, C3) at h, 2h, 4h, 8h. skip_channels: CLIP trunk channels at
    strides 4, 8, 16. num_templates: P.
    """

    def __init__(self, num_templates: int, skip_channels: list[int], dims: tuple[int, ...],
                 attn_dim: int = 32, kernel_size: int = 9) -> None:
        super().__init__()
        c = list(dims)
        self.embed = nn.Conv2d(num_templates, c[0], 7, padding=3)
        self.spatial = nn.ModuleList(SpatialBlock(c[i], kernel_size) for i in range(3))
        self.classes = nn.ModuleList(ClassAggregation(c[i], c[0], attn_dim) for i in range(3))
        self.aux_heads = nn.ModuleList(nn.Conv2d(c[i], 1, 1) for i in range(3))
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(c[i], c[i + 1], 2, stride=2)
                                      for i in range(3))
        skips_fine_last = list(reversed(skip_channels))  # strides 16, 8, 4
        self.skip_proj = nn.ModuleList(nn.Conv2d(skips_fine_last[i], c[i + 1], 1) for i in range(3))
        self.cost_proj = nn.ModuleList(nn.Conv2d(num_templates, c[i + 1], 1) for i in range(3))
        self.head = nn.Sequential(nn.Conv2d(c[3], c[3], 3, padding=1), nn.GELU(),
                                  nn.Conv2d(c[3], 1, 1))

    def forward(self, cost: Tensor, skips: list[Tensor], top_k: int | None = None
                ) -> tuple[Tensor, list[Tensor]]:
        """Returns (logits (B, N, 8h, 8w), aux logits [(B, N, h, w), (.., 2h, 2w), (.., 4h, 4w)]).

        top_k: after each level keep, per image, the union of every pixel's top-K classes;
        rejected classes get REJECTED_LOGIT from then on. None = all classes everywhere.
        """
        b, n, p, h, w = cost.shape
        flat_cost = cost.flatten(0, 1)  # (B*N, P, h, w)
        x = self.embed(flat_cost).unflatten(0, (b, n))
        costs = [proj(flat_cost).unflatten(0, (b, n)) for proj in self.cost_proj]
        idx = torch.arange(n, device=cost.device).expand(b, n)  # global class id per slot
        valid = torch.ones(b, n, dtype=torch.bool, device=cost.device)
        x = self._spatial(0, x)
        memories = [ca.memory(x) for ca in self.classes]
        aux_logits = []
        for i in range(3):
            if i:
                x = self._spatial(i, x)
            x = self.classes[i](x, memories[i])
            aux = self.aux_heads[i](x.flatten(0, 1)).squeeze(1).unflatten(0, (b, -1))
            aux_logits.append(self._scatter(aux, idx, valid, n))
            if top_k is not None and top_k < idx.shape[1]:
                x, idx, valid = self._reject(x, aux, idx, valid, top_k)
            x = self._fuse(i, x, skips[2 - i], costs[i], idx)
        logits = self.head(x.flatten(0, 1)).squeeze(1).unflatten(0, (b, -1))
        return self._scatter(logits, idx, valid, n), aux_logits

    def _spatial(self, i: int, x: Tensor) -> Tensor:
        return self.spatial[i](x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def _fuse(self, i: int, x: Tensor, skip: Tensor, cost: Tensor, idx: Tensor) -> Tensor:
        """x2 upsample (B, M, C_i, H, W) -> (B, M, C_i+1, 2H, 2W) + skip + upsampled cost."""
        up = self.upsample[i](x.flatten(0, 1)).unflatten(0, x.shape[:2])
        size = up.shape[-2:]
        skip = F.interpolate(self.skip_proj[i](skip.to(up.dtype)), size=size, mode="bilinear",
                             align_corners=False)
        rows = torch.arange(idx.shape[0], device=idx.device)[:, None]
        return up + skip.unsqueeze(1) + resize_bilinear(cost[rows, idx], size)

    @staticmethod
    def _reject(x: Tensor, aux: Tensor, idx: Tensor, valid: Tensor, k: int
                ) -> tuple[Tensor, Tensor, Tensor]:
        """Keep each image's union of per-pixel top-k slots; pad rows to the batch maximum."""
        b, m = aux.shape[:2]
        scores = aux.masked_fill(~valid[:, :, None, None], float("-inf"))
        top = scores.topk(min(k, m), dim=1).indices.flatten(1)  # (B, k*H*W)
        keep = torch.zeros(b, m, dtype=torch.bool, device=aux.device).scatter_(1, top, True)
        keep &= valid
        order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)
        m_new = int(keep.sum(1).max())
        pos = order[:, :m_new]
        rows = torch.arange(b, device=aux.device)[:, None]
        return x[rows, pos], idx[rows, pos], keep[rows, pos]

    @staticmethod
    def _scatter(values: Tensor, idx: Tensor, valid: Tensor, n: int) -> Tensor:
        """(B, M, H, W) slot values -> (B, N, H, W); rejected classes get REJECTED_LOGIT."""
        if idx.shape[1] == n and bool(valid.all()):
            return values.gather(1, torch.argsort(idx, dim=1)[:, :, None, None].expand_as(values))
        full = values.new_full((values.shape[0], n, *values.shape[2:]), REJECTED_LOGIT)
        vals = values.masked_fill(~valid[:, :, None, None], REJECTED_LOGIT)
        return full.scatter(1, idx[:, :, None, None].expand_as(vals), vals)
