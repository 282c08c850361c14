"""STSeg on the tiny preset: shapes for any N, gradients, DEA switch, early rejection."""

import pytest
import torch

from ovseg_core.config import preset
from ovseg_core.loss import seen_unseen_weights, stseg_loss
from ovseg_core.modeling.build import build_model
from ovseg_core.modeling.decoder import REJECTED_LOGIT

NAMES = ["cat", "dog", "person, people", "sky", "road"]
MORE = NAMES + ["tree", "car", "boat", "bird", "wall", "grass", "water"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(preset("tiny"))


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.rand(2, 3, 96, 160)


def test_output_shapes_for_any_vocabulary_size(model, images):
    for names in (NAMES, MORE, ["cat"]):
        text = model.encode_vocabulary(names)
        assert text.shape == (len(names), 80, 64)
        with torch.no_grad():
            out = model(images, text)
        assert out.logits.shape == (2, len(names), 96, 160)
        assert [a.shape[-1] for a in out.aux_logits] == [4, 8, 16]
        assert all(a.shape[:2] == (2, len(names)) for a in out.aux_logits)
        assert out.sam_embedding.shape == (2, 256, 16, 16)  # MobileSAM at 256 px
        assert torch.isfinite(out.logits).all()


def test_vocabulary_cache_and_synonyms(model):
    a = model.encode_vocabulary(NAMES)
    assert model.encode_vocabulary(list(NAMES)) is a
    assert torch.allclose(a.norm(dim=-1), torch.ones(5, 80), atol=1e-5)
    parts = model.encode_vocabulary(["person", "people"])
    mean = torch.nn.functional.normalize(parts.mean(0), dim=-1)
    assert torch.allclose(a[2], mean, atol=1e-5)


def test_gradients_reach_trainable_parts_only(model, images):
    model.train()
    model.zero_grad(set_to_none=True)
    text = model.encode_vocabulary(NAMES)
    labels = torch.randint(0, 5, (2, 96, 160))
    loss = stseg_loss(model(images, text), labels, seen_unseen_weights([True] * 3 + [False] * 2))
    loss.backward()
    for part in (model.dea, model.decoder, model.clip_visual):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads)
        assert sum(g.abs().sum().item() for g in grads) > 0
    for part in (model.clip_text, model.sam):
        assert all(p.grad is None and not p.requires_grad for p in part.parameters())
    assert not model.sam.training and not model.clip_text.training
    groups = model.trainable_parameter_groups(2e-4)
    assert [g["lr"] for g in groups] == pytest.approx([2e-6, 2e-4])
    grouped = {id(p) for g in groups for p in g["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert grouped == trainable
    model.zero_grad(set_to_none=True)
    model.eval()


def test_dea_off_removes_parameters_and_changes_output(model, images):
    torch.manual_seed(0)
    base = build_model(preset("tiny", dea_enabled=False)).eval()
    assert base.dea is None and base.sam is None
    keys = set(base.state_dict())
    assert not any(k.startswith(("dea.", "sam.")) for k in keys)
    assert keys < set(model.state_dict())
    # same seed: CLIP and decoder weights are identical, only DEA differs
    shared = model.state_dict()
    assert all(torch.equal(v, shared[k]) for k, v in base.state_dict().items())
    text = model.encode_vocabulary(NAMES)
    with torch.no_grad():
        without = base(images, text)
    assert without.sam_embedding is None


def test_dea_keeps_clip_alignment_at_init_and_learns_away_from_it(images):
    """At init the DEA-on cost volume equals the DEA-off one (CLIP's image-text alignment is
    kept); once DEA's output projections move, SAM's features change the logits."""
    on = build_model(preset("tiny"), seed=0).eval()
    off = build_model(preset("tiny", dea_enabled=False), seed=0).eval()
    text = on.encode_vocabulary(NAMES)
    with torch.no_grad():
        dense, _ = on.clip_visual(torch.nn.functional.interpolate(images, size=(128, 128)))
        fused = on.dea(dense, on.sam_features(images))
        assert torch.equal(fused, dense)
        assert torch.equal(on(images, text).logits, off(images, text).logits)
        torch.nn.init.normal_(on.dea.cross.out_proj.weight, std=0.5)
        moved = on(images, text).logits
    assert (moved - off(images, text).logits).abs().max() > 1e-3


def test_early_rejection_keeps_winners_and_their_logits(model, images):
    text = model.encode_vocabulary(MORE)
    with torch.no_grad():
        full = model(images, text).logits
        fast = model(images, text, top_k=2).logits
    kept = (fast > REJECTED_LOGIT).flatten(2).all(-1)  # (B, N) classes kept per image
    assert (~kept).any(), "top-2 of 12 classes should reject some"
    for b in range(2):
        assert torch.allclose(fast[b, kept[b]], full[b, kept[b]], atol=1e-5)
    winners = full.argmax(1)
    winner_kept = torch.gather(kept, 1, winners.flatten(1)).view_as(winners)
    assert winner_kept.float().mean() > 0.5
    assert torch.equal(fast.argmax(1)[winner_kept], winners[winner_kept])


def test_early_rejection_batch_equals_single_images(model, images):
    text = model.encode_vocabulary(MORE)
    with torch.no_grad():
        batch = model(images, text, top_k=1).logits
        singles = torch.cat([model(images[i:i + 1], text, top_k=1).logits for i in range(2)])
    assert torch.allclose(batch, singles, atol=1e-5)


def test_seeded_build_is_reproducible_and_leaves_the_global_rng_alone():
    import torch

    from ovseg_core.config import preset
    from ovseg_core.modeling.build import build_model

    state = torch.random.get_rng_state()
    a = build_model(preset("tiny"), seed=3).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    b = build_model(preset("tiny"), seed=3).state_dict()
    c = build_model(preset("tiny"), seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
