"""ESTIMATED peak GPU memory of an STSeg training step and of inference, computed without a GPU.

`benchmarks/estimate_memory.py` is its command line.

How: the real model (`build_skeleton`: real open_clip ConvNeXt and segment-anything modules,
random weights) runs the real training step (`train._train_step`, twice, the second being the
steady state: forward, eq. 6 loss, backward, grad clipping, AdamW step) or the real inference
call on fake tensors: `inference.predict_probabilities` ("infer", the rounds' batch inference,
which needs every class's probabilities) or `inference.predict_labels` ("labels", what `ovseg
predict` and `evaluate` run) (`FakeTensorMode`: shapes and dtypes,
no data; about 20 s and 1 GB of RAM for the paper preset). `LiveBytes`, a TorchDispatchMode,
adds up the bytes of the live tensor storages after every op; the peak is the largest sum,
split into parameters (+ buffers), gradients, optimizer state and activations + temporaries
(+ the inputs: images (B, 3, crop, crop) fp32, labels (B, crop, crop) int64, text (N, 80, D)).

What differs from a GPU run, and how it is handled:
- Fake CUDA tensors cannot run backward without a CUDA driver, so the fake tensors are on the
  CPU, under CPU bf16 autocast given CUDA's policy: the fp32 op lists of this torch's
  ATen/autocast_mode.h (layer norms, softmax, bilinear upsampling, sums, norms, exp, pow, ...)
  and `CUDA_ONLY_LOWER_OPS`, registered as AutocastCPU kernels for the run.
- AdamW uses the foreach implementation, torch's default for CUDA parameters.
- Values read on the host (`bool(t)`, `int(t)`, `float(t)`) are answered by `HostReads`; the one
  that shapes memory is early rejection's count of surviving classes, `--kept` (data-dependent;
  `--kept` = `--classes`, nothing rejected, is the upper bound).
- `stseg_loss`'s label-range check (`labels[labels != IGNORE_INDEX]`, a data-dependent shape) is
  left out (`loss_without_label_checks`; `--check` shows the loss is the same).
Not counted: the CUDA context (about 0.5-1 GiB), the caching allocator's rounding (512 B per
block) and fragmentation, cuDNN/cuBLAS workspaces and other kernel scratch space (on the CPU,
`--check` sees such scratch inside a conv backward at some sizes).
"""

from __future__ import annotations

import contextlib
import re
import weakref
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

from ovseg_core import train as train_module
from ovseg_core.config import preset
from ovseg_core.device import Runtime
from ovseg_core.inference import predict_labels, predict_probabilities
from ovseg_core.loss import AUX_WEIGHT, seen_unseen_weights, stseg_loss, weighted_ce
from ovseg_core.modeling.build import build_skeleton
from ovseg_core.templates import IMAGENET_TEMPLATES

GIB = 2**30
GPU_GIB = 80
CUDA_ONLY_LOWER_OPS = ("einsum",)
"""This model's op that CUDA autocast casts to bf16 itself, CPU autocast only inside (its bmm)."""


def cuda_autocast_lists() -> dict[str, list[str]]:
    """CUDA autocast's "FP32" and "FP32_SET_OPT_DTYPE" op lists ("op" or "op.overload") as this
    torch declares them in its header ATen/autocast_mode.h."""
    text = (Path(torch.__file__).parent / "include/ATen/autocast_mode.h").read_text()
    lists = {}
    for name in ("FP32", "FP32_SET_OPT_DTYPE"):
        body = re.search(rf"#define AT_FORALL_{name}\(_\)(.*?)\n\n", text, re.S).group(1)
        lists[name] = [".".join(part.strip() for part in entry.split(","))
                       for entry in re.findall(r"_\(([\w, ]+)\)", body)]
    return lists


def _kernel(op, policy: str):
    """An AutocastCPU kernel with CUDA's `policy` for `op`, which then runs below autocast:
    "fp32" casts bf16/fp16 tensor inputs to fp32, "lower" casts fp32 ones to bf16,
    "fp32_dtype" asks a floating-point op for an fp32 result (dtype=float32) when none is set."""
    names = [arg.name for arg in op._schema.arguments]

    def cast(a):
        if isinstance(a, (list, tuple)):
            return type(a)(cast(x) for x in a)
        if not (isinstance(a, torch.Tensor) and a.is_floating_point()) or a.dtype == torch.float64:
            return a
        return a.float() if policy == "fp32" else a.to(torch.bfloat16)

    def kernel(*args, **kwargs):
        if policy in ("fp32", "lower"):
            args, kwargs = cast(args), {k: cast(v) for k, v in kwargs.items()}
        elif args[0].is_floating_point() and args[0].dtype != torch.float64:
            i = names.index("dtype")
            if i < len(args) and args[i] is None:
                args = (*args[:i], torch.float32, *args[i + 1:])
            elif i >= len(args) and kwargs.get("dtype") is None:
                kwargs = {**kwargs, "dtype": torch.float32}
        with torch._C._ExcludeDispatchKeyGuard(
                torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)):
            return op(*args, **kwargs)
    return kernel


@contextlib.contextmanager
def cuda_like_bf16_autocast():
    """CPU bf16 autocast with CUDA autocast's fp32 lists (from torch's header) and
    CUDA_ONLY_LOWER_OPS, registered as AutocastCPU kernels for the duration."""
    lib = torch.library.Library("aten", "IMPL")
    lists = cuda_autocast_lists()
    for policy, ops in (("fp32", lists["FP32"]), ("fp32_dtype", lists["FP32_SET_OPT_DTYPE"]),
                        ("lower", CUDA_ONLY_LOWER_OPS)):
        for name in ops:
            op, _, overload = name.partition(".")
            packet = getattr(torch.ops.aten, op)
            lib.impl(name, _kernel(getattr(packet, overload or "default"), policy), "AutocastCPU")
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    finally:
        lib._destroy()


class EmulatedRuntime(Runtime):
    """A Runtime whose autocast is `cuda_like_bf16_autocast` (tensors on the CPU)."""

    def autocast(self):
        return cuda_like_bf16_autocast()


class LiveBytes(TorchDispatchMode):
    """Sum of the bytes of live tensor storages after every op, and its peak.

    Storages are those of `track(tensors)` and of every op's outputs; one leaves the sum when
    its last reference dies (a weakref callback). `peak` (bytes), `peak_at` (the op that reached
    it), `peak_live` (storage key -> bytes at the peak); `key(tensor)`: a tracked tensor's key.
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys = WeakIdKeyDictionary()
        self._refs: dict[int, weakref.ref] = {}
        self.live: dict[int, int] = {}
        self.total = self.peak = 0
        self.peak_live: dict[int, int] = {}
        self.peak_at = ""

    def track(self, *tensors) -> None:
        for t in tree_leaves(tensors):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if st not in self._keys:
                    key = len(self._refs)
                    self._keys[st] = key
                    self._refs[key] = weakref.ref(st, lambda _, k=key: self._free(k))
                    self.live[key] = st.nbytes()
                    self.total += st.nbytes()
        if self.total > self.peak:
            self.peak, self.peak_live = self.total, dict(self.live)

    def key(self, t: torch.Tensor) -> int | None:
        return self._keys.get(t.untyped_storage())

    def _free(self, key: int) -> None:
        self.total -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        peak = self.peak
        self.track(out)
        if self.peak > peak:
            phase = "backward" if torch._C._current_graph_task_id() != -1 else "forward"
            self.peak_at = f"{func} ({phase})"
        return out


class HostReads(TorchDispatchMode):
    """Answers host reads of fake tensor values: bool -> True (e.g. "some pixel is labelled"),
    integer -> `kept` (early rejection's surviving classes), float -> 1.0 (the loss, AdamW's
    step count). Reads of real tensors run as usual."""

    def __init__(self, kept: int) -> None:
        super().__init__()
        self.kept = kept

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and isinstance(args[0], FakeTensor):
            t = args[0]
            return True if t.dtype == torch.bool else self.kept if not t.is_floating_point() \
                else 1.0
        return func(*args, **(kwargs or {}))


def loss_without_label_checks(output, labels, class_weights):
    """`stseg_loss` (eq. 6) without its label-range check, whose masked index has a
    data-dependent shape; the check's own memory (B*H*W * 9 bytes at most) is not counted."""
    loss = weighted_ce(output.logits, labels, class_weights)
    for aux in output.aux_logits:
        loss = loss + AUX_WEIGHT * weighted_ce(aux, labels, class_weights)
    return loss


def estimate(mode: str, name: str, batch: int, crop: int, classes: int, top_k: int | None = None,
             kept: int | None = None, fake: bool = True, around=contextlib.nullcontext) -> dict:
    """Peak live-tensor bytes of one training step (`mode` "train") or one inference call
    ("infer": probabilities, "labels": a label map) of preset `name` on (batch, 3, crop, crop)
    images and `classes` classes.

    fake=False runs the same on real CPU tensors (for the tracker check); `around()` is entered
    around the tracked run. Returns the figures in GiB: the peak, its split, and `start_gib`
    (live at the start: weights and inputs).
    """
    runtime = EmulatedRuntime(torch.device("cpu"), torch.bfloat16)
    kept = classes if kept is None else kept
    config = preset(name, decoder={"top_k": top_k})
    torch.manual_seed(0)
    if fake:  # built on the meta device: open_clip and timm read values while building
        with torch.device("meta"):
            model = build_skeleton(config)
    else:
        model = build_skeleton(config)
    with FakeTensorMode(allow_non_fake_inputs=True) if fake else contextlib.nullcontext():
        if fake:
            model.to_empty(device="cpu")
        dim = model.clip_text.embed_dim
        text = F.normalize(torch.randn(classes, len(IMAGENET_TEMPLATES), dim), dim=-1)
        images = torch.rand(batch, 3, crop, crop)
        labels = torch.randint(0, classes, (batch, crop, crop))
        weights = seen_unseen_weights([c % 2 == 0 for c in range(classes)])
        optimizer = None
        if mode == "train":
            model.train()
            cfg = train_module.preset_train_config(name, batch_size=batch, crop_size=crop)
            optimizer = torch.optim.AdamW(train_module._param_groups(model, cfg), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay, foreach=True)
        else:
            model.eval()
        tracker = LiveBytes()
        grads: set[int] = set()  # storage keys of every gradient, also of freed ones
        for p in model.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(lambda p: grads.add(tracker.key(p.grad)))
        tracker.track(list(model.parameters()), list(model.buffers()), text, images, labels,
                      weights)
        start = tracker.total
        with around(), tracker, HostReads(kept):
            if mode == "train":
                with mock.patch.object(train_module, "stseg_loss", loss_without_label_checks):
                    for _ in range(2):  # the 2nd step is the steady state: it starts with the
                        # AdamW state and the 1st step's gradients (freed after its forward)
                        train_module._train_step(model, optimizer, images, labels, text,
                                                 weights, runtime, cfg.grad_clip)
            else:
                predict = predict_probabilities if mode == "infer" else predict_labels
                predict(model, images, text, runtime)
        split = _split(tracker, model, optimizer, grads)
    peak = tracker.peak / GIB
    return {"mode": mode, "preset": name, "batch": batch, "crop": crop, "classes": classes,
            "top_k": top_k, "kept": kept if top_k else None, "fake": fake,
            "peak_gib": peak, "start_gib": start / GIB, **split, "peak_at": tracker.peak_at,
            "under_80_gib": peak < GPU_GIB}


def _split(tracker: LiveBytes, model, optimizer, grads: set[int]) -> dict[str, float]:
    """The peak's bytes (GiB) by kind: what is not a parameter, buffer, gradient (`grads`:
    storage keys) or optimizer state is an activation or temporary (the inputs included)."""
    kinds = dict.fromkeys(grads, "gradients")
    for name, tensors in (
            ("optimizer_state", [] if optimizer is None else list(optimizer.state.values())),
            ("parameters", [*model.parameters(), *model.buffers()])):
        for t in tree_leaves(tensors):
            if isinstance(t, torch.Tensor) and tracker.key(t) is not None:
                kinds[tracker.key(t)] = name
    split = dict.fromkeys(("parameters", "gradients", "optimizer_state",
                           "activations_temporaries"), 0.0)
    for key, size in tracker.peak_live.items():
        split[kinds.get(key, "activations_temporaries")] += size / GIB
    return split


def check(batch: int = 2, crop: int = 128, classes: int = 32) -> dict:
    """The tracker check on the tiny preset's training step (2 steps, as estimated):
    - the fake-tensor estimate vs the same tracker on the same step run on real CPU tensors;
    - the tracker's rise over the start (real run) vs the CPU allocator's peak rise over the
      same run, as torch's profiler reports it (every allocation and free, in order);
    - `loss_without_label_checks` vs `stseg_loss` on a real output (difference, should be 0)."""
    fake = estimate("train", "tiny", batch, crop, classes, fake=True)
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                      profile_memory=True)
    real = estimate("train", "tiny", batch, crop, classes, fake=False, around=lambda: profiler)
    events = sorted((e.start_ns(), e.nbytes()) for e in profiler.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = allocator_peak = 0
    for _, change in events:
        live += change
        allocator_peak = max(allocator_peak, live)
    torch.manual_seed(0)
    model = build_skeleton(preset("tiny")).eval()
    text = F.normalize(torch.randn(classes, len(IMAGENET_TEMPLATES), model.clip_text.embed_dim),
                       dim=-1)
    labels = torch.randint(0, classes, (batch, crop, crop))
    weights = seen_unseen_weights([c % 2 == 0 for c in range(classes)])
    with torch.no_grad():
        out = model(torch.rand(batch, 3, crop, crop), text)
    loss_gap = float(stseg_loss(out, labels, weights)
                     - loss_without_label_checks(out, labels, weights))
    mib = 1024
    return {"fake_peak_mib": fake["peak_gib"] * mib, "real_peak_mib": real["peak_gib"] * mib,
            "tracker_rise_mib": (real["peak_gib"] - real["start_gib"]) * mib,
            "allocator_rise_mib": allocator_peak / 2**20, "loss_gap": loss_gap,
            "fake": fake, "real": real}
