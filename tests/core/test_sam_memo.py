"""The SAM memo: a frozen encoder's embedding is computed once per image and process, equals a
fresh encoding of that image alone, and follows the encoder's weights."""

import torch

from ovseg_core.modeling.sam_encoder import SamImageEncoder, build_sam
from ovseg_core.modeling.sam_memo import MEMO, SamMemo


class Counting(torch.nn.Module):
    """An encoder that counts the images it encodes: (B, 3, S, S) -> (B, 2, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(2.0))
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return (self.scale * x.mean(dim=(2, 3), keepdim=True))[:, :2]


def test_each_image_is_encoded_once_and_batches_do_not_matter():
    memo, enc = SamMemo(), Counting()
    a, b = torch.rand(2, 3, 8, 8), torch.rand(1, 3, 8, 8)
    first = memo.encode(enc, "w", a)
    again = memo.encode(enc, "w", torch.cat([b, a[1:], a[:1]]))
    assert enc.seen == 3 and memo.hits == 2 and memo.misses == 3
    assert torch.equal(again[1], first[1]) and torch.equal(again[2], first[0])
    assert torch.equal(again[0], enc(b)[0])
    memo.encode(enc, "other weights", a[:1])
    assert memo.misses == 4  # another fingerprint is another entry


def test_least_recently_used_entries_go_beyond_the_byte_limit():
    memo, enc = SamMemo(max_bytes=2 * 2 * 4), Counting()  # two (2, 1, 1) float32 embeddings
    images = torch.rand(3, 3, 4, 4)
    memo.encode(enc, "w", images[:2])
    memo.encode(enc, "w", images[:1])  # image 0 used last: image 1 is the oldest
    memo.encode(enc, "w", images[2:])
    assert len(memo.entries) == 2 and memo.bytes == 16
    memo.encode(enc, "w", images[:1])
    assert enc.seen == 3
    memo.encode(enc, "w", images[1:2])
    assert enc.seen == 4


def test_the_encoder_uses_the_memo_and_a_weight_change_is_a_new_key():
    encoder = SamImageEncoder(build_sam("tiny", random_init=True))
    images = torch.rand(2, 3, 64, 64)
    MEMO.clear()
    before = MEMO.misses
    first = encoder(images)
    assert MEMO.misses == before + 2
    assert torch.equal(encoder(images), first) and MEMO.misses == before + 2
    with torch.no_grad():
        next(encoder.image_encoder.parameters()).add_(0.5)  # in place: the fingerprint changes
    changed = encoder(images)
    assert MEMO.misses == before + 4 and not torch.equal(changed, first)
    alone = encoder.image_encoder(encoder_input(encoder, images[1:]))
    assert torch.allclose(changed[1:], alone, atol=0, rtol=0)


def encoder_input(encoder, images):
    from ovseg_core.modeling.sam_encoder import preprocess_for_sam

    return preprocess_for_sam(images, encoder.image_size)
