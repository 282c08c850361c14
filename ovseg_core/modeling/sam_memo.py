"""SAM encodes each image once per process: a memo of frozen-encoder embeddings by content.

The rounds show a SAM encoder the same images again and again: evaluation encodes the held-out
images after stage one, after every round and for the control; labelling encodes the target
images in every round, with the model's SAM and with the refiner's. The encoders are frozen,
so an embedding depends only on the encoder's weights and the image's pixels. `SamMemo` keeps
embeddings keyed by (the encoder's weight fingerprint, the preprocessed image's bytes), least
recently used first out beyond `max_bytes`.

On the CPU only (where an encoder pass costs seconds and the input is already in host memory);
each missing image is encoded alone, so an embedding never depends on which other images
shared its batch or on what the memo held: a resumed run computes the same numbers as an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from torch import Tensor, nn

MAX_BYTES = 512 * 2**20
"""Embeddings kept per process, in bytes (256 KiB per image for MobileSAM at 256 px, 4 MiB at
1024 px)."""


class SamMemo:
    """Embeddings (C, s, s) float on the CPU by (weights fingerprint, image sha1)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[str, str], Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    def encode(self, encoder: nn.Module, fingerprint: str, x: Tensor) -> Tensor:
        """encoder(x) for x (B, 3, S, S) preprocessed on the CPU -> (B, C, s, s), each image
        looked up or encoded alone."""
        out = []
        for image in x:
            key = (fingerprint, _digest(image))
            embedding = self.entries.get(key)
            if embedding is None:
                self.misses += 1
                embedding = encoder(image[None])[0]
                self._put(key, embedding)
            else:
                self.hits += 1
                self.entries.move_to_end(key)
            out.append(embedding)
        return torch.stack(out)

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def _put(self, key: tuple[str, str], embedding: Tensor) -> None:
        size = embedding.numel() * embedding.element_size()
        if size > self.max_bytes:
            return
        self.entries[key] = embedding
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()


MEMO = SamMemo()
"""The process's memo (`SamImageEncoder` uses it on the CPU)."""


class WeightFingerprint:
    """sha1 of a module's parameters and buffers, recomputed only when one of them changed in
    place (torch's version counters) or was replaced."""

    def __init__(self) -> None:
        self._state: tuple | None = None
        self._digest = ""

    def of(self, module: nn.Module) -> str:
        tensors = list(module.parameters()) + list(module.buffers())
        state = tuple((id(t), t._version) for t in tensors)
        if state != self._state:
            sha = hashlib.sha1()
            for t in tensors:
                sha.update(t.detach().cpu().contiguous().numpy().tobytes())
            self._state, self._digest = state, sha.hexdigest()
        return self._digest


def _digest(image: Tensor) -> str:
    """sha1 of a (3, S, S) tensor's shape, dtype and bytes."""
    data = image.detach().contiguous()
    sha = hashlib.sha1(f"{tuple(data.shape)}{data.dtype}".encode())
    sha.update(data.numpy().tobytes())
    return sha.hexdigest()
