"""Batched SAM refinement (real segment_anything modules, tiny random preset)."""

import dataclasses

import numpy as np
import pytest
import torch

from ovseg_core.modeling.sam_encoder import build_sam
from ovseg_core.selftrain import PromptSettings, RefinerSettings, SamRefiner, find_regions
from ovseg_core.selftrain.prompts import SamFrame, build_prompts, edge_distance
from ovseg_core.selftrain.refiner import clip_to_band, mask_iou, prompts_per_pass, sam_decode


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    return build_sam("tiny")


def blob_probs(h: int, w: int, boxes: list[tuple[int, int, int, int]], p: float = 0.95):
    """(len(boxes) + 1, h, w) probabilities: class k+1 inside box k (XYXY), class 0 elsewhere."""
    n = len(boxes) + 1
    probs = np.full((n, h, w), (1 - p) / (n - 1), np.float32)
    probs[0] = p
    for k, (x0, y0, x1, y1) in enumerate(boxes, start=1):
        probs[:, y0:y1, x0:x1] = (1 - p) / (n - 1)
        probs[k, y0:y1, x0:x1] = p
    return probs


def test_batched_decoding_matches_official_one_at_a_time(parts):
    torch.manual_seed(1)
    embeddings = torch.randn(2, parts.embed_dim, 16, 16)
    sizes = [(60, 90), (100, 40)]  # landscape and portrait
    probs = [blob_probs(60, 90, [(5, 5, 30, 30), (40, 10, 85, 50)]),
             blob_probs(100, 40, [(3, 10, 30, 40), (5, 60, 35, 95), (20, 45, 38, 58)])]
    settings = PromptSettings(positive_points=2, negative_points=1)
    prompts, index = [], []
    for i, ((h, w), pr) in enumerate(zip(sizes, probs, strict=True)):
        regions = [r for r in find_regions(pr) if r.class_id > 0]
        prompts.append(build_prompts(regions, SamFrame(h, w, parts.image_size), settings))
        index += [i] * len(regions)
    from ovseg_core.selftrain.refiner import concat_prompts
    batch = concat_prompts(prompts)
    low, iou = sam_decode(parts, embeddings, torch.tensor(index), batch)
    assert low.shape == (5, 4, 64, 64) and iou.shape == (5, 4)
    pe = parts.prompt_encoder.get_dense_pe()
    for k, i in enumerate(index):
        one = batch.select(slice(k, k + 1))
        sparse, dense = parts.prompt_encoder(points=(one.points, one.labels), boxes=one.boxes,
                                             masks=one.masks)
        for multi, tokens in ((False, [0]), (True, [1, 2, 3])):
            ref_low, ref_iou = parts.mask_decoder(
                image_embeddings=embeddings[i : i + 1], image_pe=pe,
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=multi)
            torch.testing.assert_close(low[k, tokens], ref_low[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(iou[k, tokens], ref_iou[0], atol=1e-5, rtol=1e-4)


def test_refine_batch_equals_per_region_refinement(parts):
    torch.manual_seed(2)
    refiner = SamRefiner(parts, RefinerSettings(output="best", min_sam_iou=-1e9,
                                                min_agreement=0.0, band=None))
    images = torch.rand(2, 3, 80, 120)
    embeddings = refiner.encode(images)
    assert embeddings.shape == (2, parts.embed_dim, 16, 16)
    probs = [blob_probs(80, 120, [(10, 10, 50, 60), (70, 20, 110, 70)]),
             blob_probs(80, 120, [(0, 0, 40, 40)], p=0.8)]  # 0.8: gated out at 0.9
    batched = refiner.refine_batch(embeddings, [(80, 120)] * 2, probs)
    assert [len(b) for b in batched] == [3, 2]
    assert [r.gated for r in batched[1]] == [False, False]
    gated = [r for r in batched[0] if r.gated]
    assert len(gated) == 3 and {r.region.class_id for r in gated} == {0, 1, 2}
    for r in gated:
        (single,) = refiner.refine_batch(embeddings[:1], [(80, 120)], [[r.region]], threshold=0.9)
        assert np.array_equal(single[0].refined_mask, r.refined_mask)
        assert single[0].sam_iou == pytest.approx(r.sam_iou, abs=1e-5)
        assert r.refined_mask.shape == (80, 120) and r.accepted and r.paints == "refined"


def test_prompts_per_pass_changes_speed_not_results(parts):
    torch.manual_seed(3)
    embeddings = torch.randn(2, parts.embed_dim, 16, 16)
    probs = [blob_probs(80, 120, [(10, 10, 50, 60), (70, 20, 110, 70), (55, 62, 100, 79)]),
             blob_probs(80, 120, [(0, 0, 40, 40), (60, 30, 90, 75)])]
    runs = {p: SamRefiner(parts, RefinerSettings(max_prompts=p, min_sam_iou=-1e9,
                                                 min_agreement=0.0))
            .refine_batch(embeddings, [(80, 120)] * 2, probs, threshold=0.5)
            for p in (1, 2, 64, None)}
    gated = [[r for r in image if r.gated] for image in runs[64]]
    assert [len(g) for g in gated] == [4, 3]  # 7 prompts: passes of 1, 2 (4 passes) and 64
    for p, result in runs.items():
        for image, reference in zip(result, runs[64], strict=True):
            for r, ref in zip(image, reference, strict=True):
                assert r.gated == ref.gated and r.accepted == ref.accepted, p
                if r.gated:
                    assert np.array_equal(r.refined_mask, ref.refined_mask), p
                    assert r.sam_iou == pytest.approx(ref.sam_iou, abs=1e-5), p
    real = dataclasses.replace(parts, embed_dim=256, image_size=1024)  # SAM's and MobileSAM's
    assert prompts_per_pass(real, "cpu") == 2 and prompts_per_pass(real, "cuda") == 64
    assert prompts_per_pass(parts, "cpu") == 64  # 32 x 16 x 16 activations per prompt


def test_acceptance_and_fallbacks(parts):
    probs = [blob_probs(64, 64, [(8, 8, 40, 40)])]
    emb = torch.randn(1, parts.embed_dim, 16, 16)
    strict = RefinerSettings(min_sam_iou=1e9, fallback="coarse")
    (coarse,) = SamRefiner(parts, strict).refine_batch(emb, [(64, 64)], probs, threshold=0.5)
    assert all(r.gated and not r.accepted and r.paints == "coarse" for r in coarse)
    assert all(r.label_mask is r.region.mask for r in coarse)
    ignore = RefinerSettings(min_sam_iou=1e9, fallback="ignore")
    (ign,) = SamRefiner(parts, ignore).refine_batch(emb, [(64, 64)], probs, threshold=0.5)
    assert all(r.label_mask is None and r.agreement_iou is not None for r in ign)
    with pytest.raises(ValueError):
        RefinerSettings(fallback="sam")


def test_no_gated_regions_decodes_nothing(parts):
    emb = torch.randn(1, parts.embed_dim, 16, 16)
    probs = np.full((2, 32, 32), 0.5, np.float32)  # one region, confidence 0.5
    (out,) = SamRefiner(parts).refine_batch(emb, [(32, 32)], [probs])
    assert len(out) == 1 and not out[0].gated and out[0].refined_mask is None


def test_low_resolution_probs_are_resized_to_the_image(parts):
    emb = torch.randn(1, parts.embed_dim, 16, 16)
    low = torch.as_tensor(blob_probs(16, 24, [(4, 4, 12, 12)]))  # a quarter of 64 x 96
    (out,) = SamRefiner(parts).refine_batch(emb, [(64, 96)], [low], threshold=0.5)
    blob = next(r for r in out if r.region.class_id == 1)
    assert blob.region.mask.shape == (64, 96) and blob.refined_mask.shape == (64, 96)
    assert abs(blob.region.bbox[0] - 16) <= 2 and abs(blob.region.bbox[2] - 48) <= 2
    wrong = find_regions(blob_probs(10, 10, [(2, 2, 6, 6)]))
    with pytest.raises(ValueError, match="image size"):
        SamRefiner(parts).refine_batch(emb, [(64, 96)], [wrong])


def test_clip_to_band_hand_computed():
    coarse = np.zeros((1, 10), bool)
    coarse[0, :5] = True  # edge between columns 4 and 5
    sam = np.zeros((1, 10), bool)
    sam[0, 2:8] = True  # a hole far inside the region, a leak far outside it
    # within 2 px of the edge (columns 3-6) SAM's pixels, elsewhere the coarse region's
    got = clip_to_band(coarse, sam, width=2.0)[0]
    assert got.astype(int).tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert clip_to_band(coarse, sam, width=0.0)[0].tolist() == coarse[0].tolist()
    assert clip_to_band(coarse, sam, width=100.0)[0].tolist() == sam[0].tolist()


def test_clip_to_band_on_the_window_equals_the_whole_image():
    rng = np.random.default_rng(0)
    for trial in range(30):
        h, w = rng.integers(20, 90, 2)
        coarse = np.zeros((h, w), bool)
        y0, x0 = rng.integers(-5, h - 3), rng.integers(-5, w - 3)  # some touch the border
        coarse[max(y0, 0):y0 + rng.integers(3, 40), max(x0, 0):x0 + rng.integers(3, 40)] = True
        coarse[rng.random((h, w)) < 0.02] ^= True  # specks and holes far from the box too
        sam = rng.random((h, w)) < 0.5
        for width in (0.0, 0.5, 1.0, 2.5, 7.0, 1000.0, float("inf")):
            whole = np.where(edge_distance(coarse) <= width, sam, coarse)  # the definition
            np.testing.assert_array_equal(clip_to_band(coarse, sam, width), whole,
                                          err_msg=f"trial {trial}, width {width}")
    empty = np.zeros((5, 5), bool)
    np.testing.assert_array_equal(clip_to_band(empty, ~empty, 2.0), empty)


def test_single_token_threshold_and_band(parts):
    torch.manual_seed(3)
    emb = torch.randn(1, parts.embed_dim, 16, 16)
    h, w = 64, 96
    probs = blob_probs(h, w, [(20, 10, 70, 50)])
    settings = RefinerSettings(min_sam_iou=-1e9, min_agreement=0.0, mask_threshold=-1.0,
                               band=3 / 96)  # 3 px
    (out,) = SamRefiner(parts, settings).refine_batch(emb, [(h, w)], [probs], threshold=0.5)
    blob = next(r for r in out if r.region.class_id == 1)
    frame = SamFrame(h, w, parts.image_size)
    prompts = build_prompts([blob.region], frame, settings.prompts)
    low, iou = sam_decode(parts, emb, torch.tensor([0]), prompts)
    sam = (frame.masks_to_image(low[:, :1])[0, 0] > -1.0).numpy()  # token 0, logit > -1
    assert blob.sam_iou == pytest.approx(float(iou[0, 0]), abs=1e-5)
    assert blob.agreement_iou == pytest.approx(mask_iou(sam, blob.region.mask))  # before the band
    np.testing.assert_array_equal(blob.refined_mask, clip_to_band(blob.region.mask, sam, 3.0))
    assert blob.accepted and blob.label_mask is blob.refined_mask
