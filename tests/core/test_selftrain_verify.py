"""CLIP's check of a pseudo-label's class: the region crop and its zero-shot class."""

import numpy as np
import torch
import torch.nn.functional as F

from ovseg_core import clip_pretrain as cp
from ovseg_core.selftrain import RefinedRegion
from ovseg_core.selftrain.regions import Region, mask_bbox
from ovseg_core.selftrain.verify import ClipVerifier, masked_crop, verify_regions


def two_objects() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 96x128 image: a red square (top left), a striped blue bar (bottom right), their masks."""
    rng = np.random.default_rng(0)
    image = rng.integers(90, 110, size=(96, 128, 3)).astype(np.uint8)
    red = np.zeros((96, 128), bool)
    red[8:40, 10:42] = True
    blue = np.zeros((96, 128), bool)
    blue[60:90, 40:120] = True
    image[red] = (220, 30, 30)
    image[blue] = (30, 40, 230)
    image[blue & (np.arange(128)[None, :] % 6 < 3)] = (240, 240, 240)
    return image, red, blue


def test_masked_crop_keeps_the_region_and_fills_the_rest_with_its_mean_colour():
    image, red, blue = two_objects()
    crop = masked_crop(image, red, 32)
    assert crop.shape == (3, 32, 32) and crop.dtype == torch.float32
    # the square box grows by 1/8 of its 32 px side per side: 4 px of fill around the square
    assert torch.allclose(crop[:, 0, 0], torch.tensor([220, 30, 30]) / 255.0)  # no blue, no grey
    assert torch.allclose(crop[:, 16, 16], torch.tensor([220, 30, 30]) / 255.0)
    wide = masked_crop(image, blue, 40)  # a wide box: square, cut at the image's bottom edge
    assert wide.shape == (3, 40, 40)
    mean = torch.from_numpy(image[blue].astype(np.float32).mean(axis=0)) / 255.0
    assert torch.allclose(wide[:, 0, 0], mean, atol=1e-5)  # above the bar: the bar's mean


def verifier_that_knows(image: np.ndarray, masks: list[np.ndarray], order: list[int]
                        ) -> ClipVerifier:
    """A verifier on a real (random) tiny CLIP whose class k is the embedding of the crop of
    masks[order[k]]: so CLIP's class of masks[i] is order.index(i)."""
    visual, _ = cp.split_clip(cp.new_tiny_clip(0).eval())
    crops = torch.stack([masked_crop(image, masks[i], 64) for i in order])
    with torch.no_grad():
        emb = cp.pooled_image_embedding(visual, crops)
    return ClipVerifier(visual, emb, 64, batch_size=1)


def test_classify_gives_each_mask_the_class_its_crop_is_nearest_to():
    image, red, blue = two_objects()
    knows = verifier_that_knows(image, [red, blue], [0, 1])  # batch_size 1: one call per crop
    assert knows.classify([(image, red), (image, blue)]).tolist() == [0, 1]
    swapped = verifier_that_knows(image, [red, blue], [1, 0])
    assert swapped.classify([(image, blue), (image, red)]).tolist() == [0, 1]
    assert knows.classify([]).shape == (0,)


def refined(mask: np.ndarray, class_id: int, gated: bool, accepted: bool,
            source: str) -> RefinedRegion:
    region = Region(class_id=class_id, mask=mask, confidence=0.8, area=int(mask.sum()),
                    bbox=mask_bbox(mask))
    return RefinedRegion(region=region, gated=gated, refined_mask=mask if gated else None,
                         sam_iou=0.9 if gated else None, agreement_iou=0.9 if gated else None,
                         accepted=accepted, paints=source)


def test_a_gated_region_of_another_class_than_clip_picks_paints_nothing():
    image, red, blue = two_objects()
    verifier = verifier_that_knows(image, [red, blue], [0, 1])  # red -> 0, blue -> 1
    regions = [refined(red, 0, True, True, "refined"),     # CLIP agrees
               refined(blue, 0, True, True, "refined"),    # CLIP says 1
               refined(blue, 1, True, False, "none"),  # untrusted: its coarse mask is checked
               refined(red, 1, False, False, "none")]  # not gated: not checked
    (out,) = verify_regions(verifier, [image], [regions])
    assert [r.clip_class for r in out] == [0, 1, 1, None]
    assert [r.paints for r in out] == ["refined", "none", "none", "none"]
    assert [r.accepted for r in out] == [True, True, False, False]  # SAM's trust is kept


def test_verifier_from_clip_uses_the_template_average_of_the_vocabulary():
    names = ["red disk", "blue square", "checkerboard"]
    verifier = ClipVerifier.from_clip(cp.new_tiny_clip(0), names, 32)
    _, text = cp.split_clip(cp.new_tiny_clip(0))
    expected = F.normalize(cp.class_embeddings(text, names), dim=-1)
    assert torch.allclose(verifier.class_emb, expected, atol=1e-6)
    image, red, _ = two_objects()
    assert verifier.classify([(image, red)]).shape == (1,)


def test_an_empty_trusted_mask_is_checked_by_its_coarse_region():
    image, red, blue = two_objects()
    verifier = verifier_that_knows(image, [red, blue], [0, 1])
    emptied = refined(blue, 1, True, True, "refined")
    emptied.refined_mask = np.zeros_like(blue)  # e.g. vanished when resized to the image
    ((out,),) = verify_regions(verifier, [image], [[emptied]])
    assert out.clip_class == 1 and out.paints == "refined"


def test_regions_of_several_images_get_their_own_images_classes():
    image, red, blue = two_objects()
    verifier = verifier_that_knows(image, [red, blue], [0, 1])
    first, second = verify_regions(verifier, [image, image.copy()],
                                   [[refined(blue, 1, True, True, "refined")],
                                    [refined(red, 1, True, True, "refined"),
                                     refined(blue, 0, False, False, "none")]])
    assert [r.clip_class for r in first] == [1] and first[0].paints == "refined"
    assert [r.clip_class for r in second] == [0, None]
    assert [r.paints for r in second] == ["none", "none"]
