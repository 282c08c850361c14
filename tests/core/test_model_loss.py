"""Eq. 6 loss against a hand computation with seen, unseen and ignored pixels."""

import math

import pytest
import torch

from ovseg_core.constants import IGNORE_INDEX
from ovseg_core.errors import OvsegError
from ovseg_core.loss import seen_unseen_weights, stseg_loss
from ovseg_core.modeling.model import STSegOutput


def nll(row, y):
    return math.log(sum(math.exp(v) for v in row)) - row[y]


def test_seen_unseen_weights():
    w = seen_unseen_weights([True, False, True])
    assert torch.allclose(w, torch.tensor([0.3, 0.7, 0.3]))
    assert torch.allclose(seen_unseen_weights(torch.tensor([False]), alpha=0.2),
                          torch.tensor([0.8]))


def test_loss_matches_hand_computation():
    # 3 classes (0, 2 seen; 1 unseen), a 2x2 image: labels 0, 2 / ignore, 1.
    pix = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [5.0, 5.0, 5.0], [-2.0, 0.3, 1.0]]
    logits = torch.tensor(pix).T.reshape(1, 3, 2, 2)
    aux_row = [1.0, -1.0, 0.5]  # one coarse 1x1 aux map, upsampled to 2x2 = constant
    aux = torch.tensor(aux_row).view(1, 3, 1, 1)
    labels = torch.tensor([[[0, 2], [IGNORE_INDEX, 1]]])
    weights = seen_unseen_weights([True, False, True])
    out = STSegOutput(logits=logits, aux_logits=[aux], sam_embedding=None)

    w = {0: 0.3, 1: 0.7, 2: 0.3}
    pixels = [(0, 0), (1, 2), (3, 1)]  # (pixel, label); pixel 2 is ignored
    main = sum(w[y] * nll(pix[i], y) for i, y in pixels) / sum(w[y] for _, y in pixels)
    aux_ce = sum(w[y] * nll(aux_row, y) for _, y in pixels) / sum(w[y] for _, y in pixels)
    expected = main + 0.5 * aux_ce

    got = stseg_loss(out, labels, weights, aux_weight=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_all_ignored_is_zero_and_bad_labels_refused():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    out = STSegOutput(logits=logits, aux_logits=[], sam_embedding=None)
    labels = torch.full((1, 4, 4), IGNORE_INDEX)
    loss = stseg_loss(out, labels, torch.ones(2))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
    with pytest.raises(OvsegError, match="outside"):
        stseg_loss(out, torch.full((1, 4, 4), 2), torch.ones(2))
