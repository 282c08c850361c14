"""Eq. 6: class-weighted cross-entropy (alpha on seen, 1 - alpha on unseen) with deep
supervision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ovseg_core.constants import ALPHA, IGNORE_INDEX
from ovseg_core.errors import OvsegError
from ovseg_core.modeling.model import STSegOutput

AUX_WEIGHT = 0.4


def seen_unseen_weights(seen: Sequence[bool] | Tensor, alpha: float = ALPHA) -> Tensor:
    """(N,) float32 class weights: alpha for seen classes, 1 - alpha for unseen ones."""
    seen_t = torch.as_tensor(seen, dtype=torch.bool)
    return torch.where(seen_t, torch.tensor(alpha), torch.tensor(1.0 - alpha)).float()


def weighted_ce(logits: Tensor, labels: Tensor, class_weights: Tensor) -> Tensor:
    """Class-weighted CE of (B, N, h, w) logits against (B, H, W) labels (logits upsampled
    bilinearly to H, W first), ignoring IGNORE_INDEX.

    Normalised like torch's `cross_entropy(weight=...)`: sum_i w[y_i] * nll_i / sum_i w[y_i]
    over non-ignored pixels i. With no labelled pixel the loss is 0 (still differentiable).
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    if not bool((labels != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, weight=class_weights.to(logits.device).float(),
                           ignore_index=IGNORE_INDEX)


def stseg_loss(output: STSegOutput, labels: Tensor, class_weights: Tensor,
               aux_weight: float = AUX_WEIGHT) -> Tensor:
    """loss = CE(logits) + aux_weight * sum over aux heads of CE(aux logits), each a `weighted_ce`.

    labels: (B, H, W) int64 class ids in [0, N) or IGNORE_INDEX; class_weights: (N,).
    """
    n = output.logits.shape[1]
    if class_weights.shape != (n,):
        raise OvsegError(f"class_weights must have shape ({n},), got {tuple(class_weights.shape)}")
    labelled = labels[labels != IGNORE_INDEX]
    if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= n):
        raise OvsegError(f"labels hold class ids outside [0, {n}) other than IGNORE_INDEX")
    loss = weighted_ce(output.logits, labels, class_weights)
    for aux in output.aux_logits:
        loss = loss + aux_weight * weighted_ce(aux, labels, class_weights)
    return loss
