"""Prompt geometry: points, boxes and mask prompts in SAM's resized-and-padded frame."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from ovseg_core.selftrain.prompts import (
    PromptSettings,
    SamFrame,
    build_prompts,
    edge_distance,
    negative_points,
    peak_points,
    soft_mask,
)
from ovseg_core.selftrain.regions import Region, mask_bbox

SIZES = [(300, 700), (700, 300), (375, 500), (1024, 1024), (1500, 900)]  # landscape and portrait


def region_from(mask: np.ndarray, cls: int = 1) -> Region:
    return Region(cls, mask, 0.95, int(mask.sum()), mask_bbox(mask))


def to_frame(mask: np.ndarray, frame: SamFrame) -> np.ndarray:
    """An image-sized mask as SAM's input frame sees it (resized like the image, padded)."""
    nh, nw = frame.resized
    t = torch.as_tensor(mask, dtype=torch.float32)[None, None]
    t = F.interpolate(t, size=(nh, nw), mode="nearest-exact")
    s = frame.image_size
    return F.pad(t, (0, s - nw, 0, s - nh))[0, 0].numpy() > 0.5


@pytest.mark.parametrize("hw", SIZES)
def test_points_land_on_their_pixel_after_resize_and_pad(hw):
    h, w = hw
    frame = SamFrame(h, w, 1024)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        one = np.zeros((h, w), bool)
        r = 0 if min(frame.scale) >= 1 else 1  # downscaled: a lone pixel may vanish, use 3 x 3
        one[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1] = True
        fx, fy = frame.points(np.array([x, y]))
        # SAM's prompt encoder adds 0.5: the point sits at (fx + 0.5, fy + 0.5) in the frame
        px, py = int(np.floor(fx + 0.5)), int(np.floor(fy + 0.5))
        assert to_frame(one, frame)[py, px], (hw, x, y, fx, fy)


@pytest.mark.parametrize("hw", SIZES)
def test_boxes_cover_the_resized_region(hw):
    h, w = hw
    frame = SamFrame(h, w, 1024)
    mask = np.zeros((h, w), bool)
    mask[h // 5 : h // 2, w // 3 : w - 7] = True
    bx0, by0, bx1, by1 = frame.boxes(np.array(mask_bbox(mask)))
    resized = to_frame(mask, frame)
    rx0, ry0, rx1, ry1 = mask_bbox(resized)  # inclusive-exclusive in the frame
    # the box corners are the first and last frame pixels of the resized region (within 1 px)
    assert abs(bx0 - rx0) <= 1 and abs(by0 - ry0) <= 1
    assert abs(bx1 - (rx1 - 1)) <= 1 and abs(by1 - (ry1 - 1)) <= 1
    nh, nw = frame.resized
    assert max(nh, nw) == 1024 and bx1 < nw and by1 < nh


@pytest.mark.parametrize("hw", SIZES)
def test_mask_prompt_frame_and_round_trip(hw):
    h, w = hw
    frame = SamFrame(h, w, 1024)
    mask = np.zeros((h, w), bool)
    mask[h // 4 : 3 * h // 4, w // 6 : w // 2] = True
    logits = frame.mask_prompt(torch.as_tensor(mask)[None], logit=20.0)
    assert logits.shape == (1, 1, 256, 256)
    assert logits.min() == -20.0 and logits.max() == 20.0
    nh, nw = frame.resized
    # padding (bottom rows for landscape, right columns for portrait) is "outside"
    assert (logits[0, 0, (nh + 3) // 4 :, :] == -20).all()
    assert (logits[0, 0, :, (nw + 3) // 4 :] == -20).all()
    # positive logits sit on the resized region, a quarter of the frame's scale
    framed = torch.as_tensor(to_frame(mask, frame), dtype=torch.float32)[None, None]
    expected = F.interpolate(framed, size=(256, 256), mode="area")[0, 0] > 0.5
    got = (logits[0, 0] > 0).numpy()
    assert got.sum() > 0
    assert (got >= ndimage.binary_erosion(expected.numpy())).all()  # only edge pixels may differ
    assert (got <= ndimage.binary_dilation(expected.numpy())).all()
    # SAM's postprocessing brings the prompt back onto the image's pixels
    back = frame.masks_to_image(logits)[0, 0].numpy() > 0
    assert back.shape == (h, w)
    assert (back & mask).sum() / (back | mask).sum() > 0.97


def test_peak_points_are_distance_transform_peaks():
    mask = np.zeros((40, 60), bool)
    mask[10:31, 5:26] = True  # 21 x 21 square centred at (15, 20)
    mask[15:26, 40:51] = True  # 11 x 11 square centred at (45, 20)
    assert peak_points(mask, 1) == [(15, 20)]
    assert peak_points(mask, 2) == [(15, 20), (45, 20)]
    assert len(peak_points(mask, 10)) >= 2 and all(mask[y, x] for x, y in peak_points(mask, 10))


def whole_image_peaks(mask: np.ndarray, count: int) -> list[tuple[int, int]]:
    """peak_points' definition, on the whole image (what the windowed version must equal)."""
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    yy, xx = np.ogrid[: mask.shape[0], : mask.shape[1]]
    picks = []
    for _ in range(count):
        y, x = divmod(int(np.argmax(depth)), mask.shape[1])
        if depth[y, x] <= 0:
            break
        picks.append((x, y))
        depth = np.where((xx - x) ** 2 + (yy - y) ** 2 <= depth[y, x] ** 2, 0.0, depth)
    return picks


def test_peak_points_on_the_window_equal_the_whole_image():
    rng = np.random.default_rng(1)
    for trial in range(40):
        h, w = rng.integers(10, 80, 2)
        mask = np.zeros((h, w), bool)
        for _ in range(rng.integers(1, 4)):  # blobs, some cut by the border, ties included
            y0, x0 = rng.integers(-4, h), rng.integers(-4, w)
            mask[max(y0, 0):y0 + rng.integers(2, 30), max(x0, 0):x0 + rng.integers(2, 30)] = True
        for count in (1, 2, 5):
            assert peak_points(mask, count) == whole_image_peaks(mask, count), (trial, count)
    assert peak_points(np.zeros((6, 6), bool), 2) == []


def test_negative_point_only_in_a_deep_pocket():
    u = np.zeros((50, 50), bool)
    u[5:45, 5:15] = u[5:45, 35:45] = u[35:45, 5:45] = True  # a U: pocket between the arms
    (neg,) = negative_points(region_from(u), count=1, min_depth=0.5)
    x, y = neg
    assert not u[y, x] and 15 <= x < 35 and 5 <= y < 35
    square = np.zeros((50, 50), bool)
    square[10:40, 10:40] = True  # no pocket inside its box
    assert negative_points(region_from(square), count=1, min_depth=0.5) == []


def test_build_prompts_shapes_and_padding():
    frame = SamFrame(120, 200, 1024)
    a = np.zeros((120, 200), bool)
    a[10:60, 20:90] = True
    b = np.zeros((120, 200), bool)
    b[70:110, 100:190] = True
    settings = PromptSettings(positive_points=2, negative_points=1)
    p = build_prompts([region_from(a), region_from(b)], frame, settings)
    assert p.points.shape == (2, 3, 2) and p.labels.shape == (2, 3)
    assert p.boxes.shape == (2, 4) and p.masks.shape == (2, 1, 256, 256)
    assert p.labels[0, 0] == 1 and set(p.labels[0].tolist()) <= {1, -1}  # rectangles: no negatives
    sx, sy = frame.scale
    for k, mask in enumerate((a, b)):
        x, y = p.points[k, 0].tolist()  # the positive point maps back into its region
        assert mask[int((y + 0.5) / sy), int((x + 0.5) / sx)]


def test_box_prompt_grows_by_margin_and_clips_to_image():
    frame = SamFrame(100, 200, 1024)
    a = np.zeros((100, 200), bool)
    a[2:50, 30:80] = True
    p = build_prompts([region_from(a)], frame, PromptSettings(box_margin=0.05))  # 10 px
    expected = frame.boxes(np.array([20, 0, 90, 60]))  # y0 clipped at 0
    assert p.boxes[0].tolist() == pytest.approx(expected.tolist(), abs=1e-3)
    tight = build_prompts([region_from(a)], frame, PromptSettings(box_margin=0.0))
    assert tight.boxes[0].tolist() == pytest.approx(frame.boxes(np.array([30, 2, 80, 50])).tolist(),
                                                    abs=1e-3)


def test_prompts_of_a_tiny_square_hand_computed():
    # 20 x 20 image, SAM frame 40: scale 2. A 5 x 5 square, rows 4-8, columns 6-10.
    frame = SamFrame(20, 20, 40)
    mask = np.zeros((20, 20), bool)
    mask[4:9, 6:11] = True
    settings = PromptSettings(positive_points=2, negative_points=1, box_margin=0.05)
    p = build_prompts([region_from(mask)], frame, settings)
    # deepest pixel (8, 6), depth 3; its disc covers the whole square: no second positive point;
    # a square has no pocket in its box: no negative point
    assert p.labels.tolist() == [[1, -1, -1]]
    assert p.points[0, 0].tolist() == [(8 + 0.5) * 2 - 0.5, (6 + 0.5) * 2 - 0.5]  # [16.5, 12.5]
    # box (6, 4, 11, 9) grown by round(0.05 * 20) = 1 px -> (5, 3, 12, 10); frame corners are
    # the first frame pixel 2 * x0 and the last one 2 * x1 - 1
    assert p.boxes[0].tolist() == [10.0, 6.0, 23.0, 19.0]
    # the mask prompt at 40 / 4 = 10 px: the square covers rows 2-4.5, columns 3-5.5 there
    logits = p.masks[0, 0]
    assert logits.shape == (10, 10)
    assert logits[3, 4] == 20.0 and logits[0, 0] == -20.0 and logits[8, 8] == -20.0
    assert -20.0 < logits[4, 5] < 20.0  # the half-covered corner cell is soft


def test_soft_mask_ramp_hand_computed():
    mask = np.zeros((3, 9), bool)
    mask[:, :4] = True  # columns 0-3; the image border is no edge
    np.testing.assert_array_equal(edge_distance(mask)[1], [4, 3, 2, 1, 1, 2, 3, 4, 5])
    ramp = soft_mask(mask, ramp=2.0)[1]
    np.testing.assert_allclose(ramp, [1, 1, 1, 0.75, 0.25, 0, 0, 0, 0])
    np.testing.assert_array_equal(soft_mask(mask, ramp=0.0), mask.astype(np.float32))
    frame = SamFrame(3, 9, 36)  # scale 4: the prompt keeps the ramp between +/- mask_logit
    binary = build_prompts([region_from(mask)], frame, PromptSettings())
    ramped = build_prompts([region_from(mask)], frame, PromptSettings(mask_ramp=2 / 9))
    assert binary.masks.max() == 20.0 and ramped.masks.max() == 20.0
    edge_cells = ramped.masks[0, 0, 0, 3:5]
    assert (edge_cells.abs() < 20.0).all() and edge_cells[0] > 0 > edge_cells[1]
