"""The caption corpus and the contrastive pretraining of the tiny CLIP (ovseg-tiny)."""

import json

import numpy as np
import pytest
import torch

from flows.cli import main
from ovseg_core import clip_pretrain as cp
from ovseg_core.config import ClipConfig
from ovseg_core.data import captions
from ovseg_core.data.synth import SEEN_SHAPES, UNSEEN_SHAPES, world_classes
from ovseg_core.modeling.clip_encoder import build_open_clip
from ovseg_core.templates import fill_templates


def test_world_classes_are_the_target_vocabulary():
    names = world_classes()
    assert names == ["ground"] + [c.name for c in SEEN_SHAPES] + [c.name for c in UNSEEN_SHAPES]
    assert cp.seen_mask(names) == [True] * 6 + [False] * 3


def test_corpus_covers_every_class_in_words_and_is_deterministic():
    batches = [captions.caption_batch(0, i, 64, 64) for i in range(3)]
    samples = [s for batch in batches for s in batch]
    names = world_classes()
    keys = {k for s in samples for k in s.key}
    assert keys == set(range(len(names)))  # ground, seen and unseen all named
    for class_id, name in enumerate(names):
        with_key = [s.caption for s in samples if class_id in s.key]
        assert with_key and all(name in caption for caption in with_key), name
    assert any(len(s.key) >= 2 for s in samples)  # multi-object scenes
    templated = {p for name in names for p in fill_templates(name)}
    assert any(s.caption in templated for s in samples)  # the model's own prompt forms
    assert all(s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8 for s in samples)
    again = captions.caption_batch(0, 1, 64, 64)
    assert [s.caption for s in again] == [s.caption for s in batches[1]]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(again, batches[1], strict=True))
    other = captions.caption_batch(1, 1, 64, 64)
    assert [s.caption for s in other] != [s.caption for s in batches[1]]


def test_scene_captions_name_the_visible_shapes():
    assert captions.name_list(["orange star"]) == "an orange star"
    assert captions.name_list(["red disk", "star", "cross"]) == (
        "a red disk, a star and a cross")
    label = np.zeros((10, 10), dtype=np.uint16)
    label[:5] = 6
    label[9, 9] = 2  # 1 % of the image: too small to be named
    label[5:7] = 1
    assert captions.visible_shapes(label) == [6, 1]


def test_held_out_objects_cover_every_class():
    images, ids = captions.labelled_objects(0, cp.CROP_STREAM, 32, per_class=2)
    assert images.shape == (18, 32, 32, 3) and ids.tolist() == sorted(list(range(9)) * 2)
    train_first = captions.caption_batch(0, 0, 32, 1)[0].image
    assert not any(np.array_equal(train_first, image) for image in images)


def test_soft_targets_make_same_caption_content_positive():
    targets = cp.positive_targets([(1,), (2, 3), (1,), (0,)])
    expected = torch.tensor([[0.5, 0, 0.5, 0], [0, 1, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 1]])
    assert torch.equal(targets, expected)
    emb = torch.eye(4)
    good = cp.contrastive_loss(emb, emb, torch.tensor(np.log(100.0)), torch.eye(4))
    bad = cp.contrastive_loss(emb, emb.roll(1, 0), torch.tensor(np.log(100.0)), torch.eye(4))
    assert good < 0.01 < 10 < bad


def test_a_few_steps_lower_the_contrastive_loss():
    torch.manual_seed(0)
    model = cp.new_tiny_clip(0)
    visual = cp.dense_visual(model)
    optimizer = cp.make_optimizer(model, 5e-4)  # at 2e-3 the first steps can overshoot
    batch = captions.caption_batch(0, 0, 32, 8)
    with cp.fixed_threads():
        before = cp.batch_loss(model, visual, batch).item()
        for _ in range(8):
            loss = cp.batch_loss(model, visual, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        after = cp.batch_loss(model, visual, batch).item()
    assert after < before - 0.3, (before, after)


def test_image_embedding_is_the_mean_of_the_dense_projections():
    model = cp.new_tiny_clip(0).eval()
    visual = cp.dense_visual(model)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        dense, _ = visual(images)
        pooled = cp.pooled_image_embedding(visual, images)
    assert dense.shape == (2, 64, 2, 2)
    expected = torch.nn.functional.normalize(dense.mean(dim=(2, 3)), dim=-1)
    assert torch.allclose(pooled, expected)


def test_checkpoint_loads_strictly_with_the_trained_tensors(tmp_path):
    model = cp.new_tiny_clip(0)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    with cp.fixed_threads():
        losses = cp.train_steps(model, seed=0, steps=1, batch_size=4, image_size=32, lr=1e-3)
    assert len(losses) == 1 and np.isfinite(losses[0])
    trained = model.state_dict()
    for key in ("visual.trunk.stem.0.weight", "visual.head.proj.weight", "text_projection",
                "token_embedding.weight", "transformer.resblocks.0.attn.in_proj_weight"):
        assert not torch.equal(initial[key], trained[key]), key  # trunk, proj and text trained
    for suffix in (".pt", ".safetensors"):
        path = tmp_path / f"clip{suffix}"
        cp.save_open_clip(model, path)
        loaded = build_open_clip(ClipConfig(model_name="ovseg-tiny", pretrained=str(path)))
        for key, value in loaded.state_dict().items():
            assert torch.equal(value, trained[key]), (suffix, key)


def test_pretraining_is_deterministic_and_reports(tmp_path):
    kw = dict(seed=3, steps=2, batch_size=2, image_size=32, progress=False, check=False)
    a = cp.pretrain_tiny_clip(tmp_path / "a.pt", **kw)
    b = cp.pretrain_tiny_clip(tmp_path / "b.pt", **kw)
    assert a["corpus_key"] == b["corpus_key"] == cp.corpus_key(3, 2, 2, 32, cp.DEFAULT_LR)
    assert a["corpus_key"] != cp.corpus_key(4, 2, 2, 32, cp.DEFAULT_LR)
    assert a["loss"] == b["loss"] and json.loads(json.dumps(a))["steps"] == 2
    sa, sb = torch.load(tmp_path / "a.pt"), torch.load(tmp_path / "b.pt")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_zero_shot_of_hand_made_embeddings():
    classes = torch.eye(3)
    images = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.2, 0.1], [1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    hits = cp.crop_top1(images, classes, torch.tensor([0, 2, 2, 0]))
    assert hits.tolist() == [True, False, True, False]
    dense = torch.zeros(1, 3, 2, 2)  # quadrants: class 0 | 1 over 2 | 0
    dense[0, 0, 0, 0] = dense[0, 1, 0, 1] = dense[0, 2, 1, 0] = dense[0, 0, 1, 1] = 1.0
    labels = cp.dense_labels(dense, classes, (4, 4))
    expected = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [2, 2, 0, 0]])
    assert torch.equal(labels[0], expected)
    label = np.zeros((64, 64), dtype=np.uint16)
    label[:, 32:] = 8
    ceiling = cp.grid_ceiling([label], 9, 2)
    assert ceiling == {"seen_miou": 100.0, "unseen_miou": 100.0}


def test_zero_shot_check_of_a_random_model_is_near_chance():
    result = cp.zero_shot_check(cp.new_tiny_clip(0), seed=0, image_size=32, per_class=4, scenes=2)
    crops, dense = result["crops"], result["dense"]
    assert crops["chance"] == pytest.approx(1 / 9) and len(crops["per_class_top1"]) == 9
    assert crops["seen_top1"] < 0.5 and crops["unseen_top1"] < 0.5  # chance is 0.11
    assert dense["unseen_miou"] is not None and dense["unseen_miou"] < 30.0
    assert dense["ceiling"]["unseen_miou"] > dense["unseen_miou"]


def test_cli_pretrain_writes_a_checkpoint_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "clip.pt"
    report = tmp_path / "report.json"
    assert main(["clip", "pretrain", "--out", str(out), "--steps", "1", "--batch-size", "2",
                 "--no-check", "--json", str(report)]) == 0
    assert out.is_file() and json.loads(report.read_text())["steps"] == 1
    assert "wrote" in capsys.readouterr().out
    assert main(["clip", "pretrain", "--out", str(tmp_path / "x.pt"), "--steps", "0"]) == 2
    assert main(["clip", "pretrain", "--out", str(tmp_path)]) == 2
    assert main(["clip", "check", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "not found" in err


@pytest.mark.slow
def test_full_pretraining_knows_the_unseen_classes(tmp_path):
    report = cp.pretrain_tiny_clip(tmp_path / "clip.pt", seed=0, progress=False)
    pre, rand = report["pretrained"], report["random"]
    assert pre["crops"]["unseen_top1"] >= 0.8 and pre["crops"]["seen_top1"] >= 0.8
    assert pre["dense"]["unseen_miou"] > rand["dense"]["unseen_miou"] + 5.0
    assert pre["dense"]["seen_miou"] > rand["dense"]["seen_miou"] + 5.0
