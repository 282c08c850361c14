"""The memory estimate's parts (`ovseg_core.memory_estimate`): the live-bytes tracker on fake
tensors equals the same tracker on real tensors and, up to kernels' scratch space, the CPU
allocator's own count, and the
emulated CUDA autocast policy applies inside its context only."""

import torch
import torch.nn.functional as F

from ovseg_core import memory_estimate as estimate_memory


def test_fake_estimate_equals_real_run_and_allocator():
    result = estimate_memory.check(batch=1, crop=64, classes=32)

    # activations are a real part of the peak (the tiny preset's frozen MobileSAM weights are
    # most of it at this size)
    assert result["fake"]["activations_temporaries"] > 0.1 * result["fake"]["peak_gib"]
    assert abs(result["fake_peak_mib"] / result["real_peak_mib"] - 1) < 0.005
    # the allocator also counts kernels' scratch space (here inside a conv backward), which is
    # no tensor: the tracker may stay below it, by a little
    gap = 1 - result["tracker_rise_mib"] / result["allocator_rise_mib"]
    assert 0 <= gap < 0.1
    assert abs(result["loss_gap"]) < 1e-5


def test_cuda_like_autocast_follows_cuda_policy_inside_only():
    x = torch.randn(4, 8)

    def dtypes():
        return (F.layer_norm(x.bfloat16(), (8,)).dtype, x.bfloat16().softmax(-1).dtype,
                F.interpolate(x.bfloat16()[None, None], scale_factor=2, mode="bilinear").dtype,
                F.linear(x, x).dtype)

    with estimate_memory.cuda_like_bf16_autocast():
        inside = dtypes()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        after = dtypes()

    assert inside == (torch.float32, torch.float32, torch.float32, torch.bfloat16)
    assert after == (torch.bfloat16,) * 4
