"""Contrastive pretraining of the tiny open_clip model ("ovseg-tiny") on the caption corpus.

The segmentation model reads CLIP's visual tower densely (`ClipVisual`: one text-space vector
per stride-32 position), so the image embedding trained here is the mean of exactly those
per-position projections: pretraining trains the dense features. The text side is open_clip's
own `encode_text`. The loss is CLIP's symmetric InfoNCE with a learnable temperature, except
that samples whose captions name the same classes (`CaptionedImage.key`) count as positives of
each other (the corpus repeats concepts, so a batch holds many true pairs beyond the diagonal).

The result is a plain open_clip state_dict file (torch.save, or safetensors by suffix) that
`ClipConfig(model_name="ovseg-tiny", pretrained=path)` + `build_open_clip` load strictly.

Zero-shot checks (`zero_shot_check`): (a) top-1 accuracy on held-out single-object images of
every class among all classes of the world, split seen / unseen, against chance; (b) dense
zero-shot segmentation of held-out target scenes (`render_scene(rng, 128, with_unseen=True)`):
per-pixel argmax of the cosine between upsampled ClipVisual features and template-averaged
class embeddings, scored with `ConfusionMatrix` (seen / unseen mIoU, percent).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovseg_core.config import ClipConfig
from ovseg_core.data import captions
from ovseg_core.data.synth import SEEN_SHAPES, UNSEEN_SHAPES, render_scene, world_classes
from ovseg_core.errors import OvsegError
from ovseg_core.metrics import ConfusionMatrix
from ovseg_core.modeling.clip_encoder import (
    TINY_CLIP,
    ClipText,
    ClipVisual,
    build_open_clip,
    clip_parts,
    dense_visual,
    open_clip_config,
)
from ovseg_core.progress import Progress

PRETRAIN_VERSION = 1
"""Bump when the objective or the training loop changes what a run produces."""

MODEL_NAME = "ovseg-tiny"
THREADS = 2
"""torch CPU threads during pretraining and checks (fixed, so results repeat)."""

DEFAULT_STEPS = 200
"""Measured (seed 0, 48 x 64 px per step): 200 steps -> dense mIoU seen 33.9 / unseen 22.2 (grid
ceiling 35.8 / 28.0, random init 3.2 / 2.5), crop top-1 1.00 / 1.00; 0.21-0.27 s per step on 2
idle cores. 400 steps lowered the loss (2.04 -> 1.68) but the dense figures to 27.6 / 16.8."""
DEFAULT_BATCH = 48
DEFAULT_IMAGE_SIZE = 64
"""Pretraining image side in px; objects keep the world's 128 px scale (see captions.py)."""

DEFAULT_LR = 2e-3
WEIGHT_DECAY = 0.05
WARMUP_FRACTION = 0.1
MAX_LOGIT_SCALE = math.log(100.0)

CROP_STREAM = 1
"""Corpus stream of the held-out single-object images (training uses captions.TRAIN_STREAM)."""
SCENE_STREAM = 2
"""Seed offset of the held-out target scenes of the dense check."""
CROPS_PER_CLASS = 24
DENSE_SCENES = 16
DENSE_SIZE = 128


# ----------------------------------------------------------------------------- model pieces


def new_tiny_clip(seed: int) -> nn.Module:
    """A randomly initialised open_clip CLIP with the "ovseg-tiny" architecture (seeded)."""
    import open_clip

    torch.manual_seed(seed)
    return open_clip.model.CLIP(**open_clip_config(MODEL_NAME))


def split_clip(model: nn.Module) -> tuple[ClipVisual, ClipText]:
    """(ClipVisual, ClipText) of a copy of `model` (`clip_parts`); `model` is kept."""
    return clip_parts(copy.deepcopy(model))


def to_tensor(images: np.ndarray) -> Tensor:
    """uint8 (B, S, S, 3) RGB -> float32 (B, 3, S, S) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def pooled_image_embedding(visual: ClipVisual, images: Tensor) -> Tensor:
    """images (B, 3, S, S) in [0, 1] -> (B, D) unit-norm mean of the dense projections."""
    dense, _ = visual(images)
    return F.normalize(dense.mean(dim=(2, 3)), dim=-1)


def encode_captions(model: nn.Module, texts: Sequence[str]) -> Tensor:
    """(B,) captions -> (B, D) unit-norm text embeddings (gradients flow)."""
    from open_clip.tokenizer import tokenize

    tokens = tokenize(list(texts), model.context_length)
    return model.encode_text(tokens.to(model.token_embedding.weight.device), normalize=True)


# ----------------------------------------------------------------------------- the objective


def positive_targets(keys: Sequence[tuple[int, ...]]) -> Tensor:
    """(B, B) float32 rows summing to 1: uniform over the samples with the same key."""
    index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    ids = torch.tensor([index[k] for k in keys])
    same = (ids[:, None] == ids[None, :]).float()
    return same / same.sum(dim=1, keepdim=True)


def contrastive_loss(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor,
                     targets: Tensor) -> Tensor:
    """Symmetric InfoNCE. image_emb, text_emb (B, D) unit-norm; logit_scale () log-temperature
    (clamped at log 100 as in CLIP); targets (B, B) symmetric soft positives. Returns () nats."""
    scale = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
    logits = scale * image_emb @ text_emb.t()
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


def batch_loss(model: nn.Module, visual: ClipVisual,
               batch: Sequence[captions.CaptionedImage]) -> Tensor:
    """The contrastive loss () of one corpus batch."""
    images = to_tensor(np.stack([s.image for s in batch]))
    image_emb = pooled_image_embedding(visual, images)
    text_emb = encode_captions(model, [s.caption for s in batch])
    return contrastive_loss(image_emb, text_emb, model.logit_scale,
                            positive_targets([s.key for s in batch]))


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not norms, biases, embeddings, the temperature)."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        no_decay = p.ndim < 2 or "embedding" in name or name == "logit_scale"
        (plain if no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY},
              {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over WARMUP_FRACTION of the steps, then cosine decay to 0."""
    warmup = max(1, int(WARMUP_FRACTION * steps))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


@contextmanager
def fixed_threads(threads: int = THREADS) -> Iterator[None]:
    """Run the block with a fixed torch CPU thread count, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_steps(model: nn.Module, seed: int, steps: int, batch_size: int, image_size: int,
                lr: float, progress: bool = False) -> list[float]:
    """Train `model` in place for `steps` corpus batches; returns the loss (nats) per step."""
    model.train()
    visual = dense_visual(model)
    optimizer = make_optimizer(model, lr)
    losses: list[float] = []
    bar = Progress(steps, "CLIP pretraining", "steps", disable=not progress)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_factor(step, steps)
        batch = captions.caption_batch(seed, step, image_size, batch_size)
        loss = batch_loss(model, visual, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}",
                        temp=f"1/{model.logit_scale.exp().item():.1f}")
        bar.update(1)
    bar.close()
    model.eval()
    return losses


# ----------------------------------------------------------------------------- checkpoints


def save_open_clip(model: nn.Module, path: Path) -> None:
    """Write `model`'s state_dict as an open_clip checkpoint (safetensors by suffix, else
    torch.save), atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(tmp))
    else:
        torch.save(state, tmp)
    os.replace(tmp, path)


def load_tiny_clip(path: str | Path) -> nn.Module:
    """The tiny open_clip model with weights from `path`, by the segmentation model's own path."""
    return build_open_clip(ClipConfig(model_name=MODEL_NAME, pretrained=str(path)))


def corpus_key(seed: int, steps: int, batch_size: int, image_size: int, lr: float) -> str:
    """sha256 hex of everything that shapes a pretraining result."""
    shapes = [[c.name, c.shape, list(c.color), c.texture] for c in SEEN_SHAPES + UNSEEN_SHAPES]
    spec = {
        "corpus_version": captions.CORPUS_VERSION, "pretrain_version": PRETRAIN_VERSION,
        "seed": seed, "steps": steps, "batch_size": batch_size, "image_size": image_size,
        "lr": lr, "classes": world_classes(), "shapes": shapes, "model": TINY_CLIP,
        "kinds": captions.KIND_WEIGHTS, "threads": THREADS,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------- zero-shot checks


def class_embeddings(text: ClipText, names: Sequence[str]) -> Tensor:
    """(N, D) unit-norm class embeddings: ClipText's 80-template average, renormalised."""
    return F.normalize(text.encode_vocabulary(list(names)).mean(dim=1), dim=-1)


def crop_top1(image_emb: Tensor, class_emb: Tensor, labels: Tensor) -> Tensor:
    """(M,) bool: whether each image's nearest class is its own. image_emb (M, D), class_emb
    (N, D) (any norm: cosine is taken), labels int64 (M,) in [0, N)."""
    sims = F.normalize(image_emb, dim=-1) @ F.normalize(class_emb, dim=-1).t()
    return sims.argmax(dim=1) == labels


def dense_labels(dense: Tensor, class_emb: Tensor, size: tuple[int, int]) -> Tensor:
    """Per-pixel zero-shot labels int64 (B, H, W): argmax over classes of the cosine between
    dense features (B, D, h, w) bilinearly upsampled to `size` (H, W) and class_emb (N, D)."""
    up = F.interpolate(dense, size=size, mode="bilinear", align_corners=False)
    cos = torch.einsum("bdhw,nd->bnhw", F.normalize(up, dim=1), F.normalize(class_emb, dim=-1))
    return cos.argmax(dim=1)


def seen_mask(names: Sequence[str]) -> list[bool]:
    """One bool per world class: seen (the ground and the source shapes) or unseen."""
    unseen = {c.name for c in UNSEEN_SHAPES}
    return [n not in unseen for n in names]


@torch.no_grad()
def crop_check(visual: ClipVisual, class_emb: Tensor, seed: int, image_size: int,
               per_class: int = CROPS_PER_CLASS) -> dict:
    """Top-1 accuracy on held-out single-object images among all world classes."""
    images, labels = captions.labelled_objects(seed, CROP_STREAM, image_size, per_class)
    emb = torch.cat([pooled_image_embedding(visual, to_tensor(images[i:i + 64]))
                     for i in range(0, len(images), 64)])
    hits = crop_top1(emb, class_emb, torch.from_numpy(labels)).numpy()
    seen = np.array(seen_mask(world_classes()))[labels]
    names = world_classes()
    return {
        "seen_top1": float(hits[seen].mean()), "unseen_top1": float(hits[~seen].mean()),
        "chance": 1.0 / len(names), "image_size": image_size, "per_class": per_class,
        "per_class_top1": {n: float(hits[labels == i].mean()) for i, n in enumerate(names)},
    }


@torch.no_grad()
def dense_check(visual: ClipVisual, class_emb: Tensor, seed: int,
                scenes: int = DENSE_SCENES, size: int = DENSE_SIZE) -> dict:
    """Dense zero-shot mIoU (percent) on held-out target scenes with unseen shapes."""
    rng = np.random.default_rng([seed, SCENE_STREAM, 12345])
    pairs = [render_scene(rng, size, with_unseen=True) for _ in range(scenes)]
    names = world_classes()
    matrix = ConfusionMatrix(len(names), names)
    for i in range(0, scenes, 8):
        images = to_tensor(np.stack([p[0] for p in pairs[i:i + 8]]))
        dense, _ = visual(images)
        pred = dense_labels(dense, class_emb, (size, size))
        matrix.update(pred, np.stack([p[1] for p in pairs[i:i + 8]]))
    result = matrix.compute(seen_mask(names))
    ceiling = grid_ceiling([p[1] for p in pairs], len(names), size // 32)
    return {"seen_miou": result["seen_miou"], "unseen_miou": result["unseen_miou"],
            "miou": result["miou"], "pixel_acc": result["pixel_acc"], "scenes": scenes,
            "per_class": result["per_class"], "ceiling": ceiling}


def grid_ceiling(labels: Sequence[np.ndarray], num_classes: int, grid: int) -> dict:
    """Seen / unseen mIoU (percent) of an oracle whose stride-32 features are the true class
    fractions of each cell (grid x grid cells), decoded like `dense_labels`: the best the
    dense check can score at that feature resolution. labels: uint16 (H, W) each."""
    names = world_classes()
    matrix = ConfusionMatrix(num_classes, names)
    for label in labels:
        onehot = F.one_hot(torch.from_numpy(label.astype(np.int64)), num_classes)
        cells = F.adaptive_avg_pool2d(onehot.permute(2, 0, 1)[None].float(), grid)
        matrix.update(dense_labels(cells, torch.eye(num_classes), label.shape)[0], label)
    result = matrix.compute(seen_mask(names))
    return {"seen_miou": result["seen_miou"], "unseen_miou": result["unseen_miou"]}


def zero_shot_check(model_or_path: nn.Module | str | Path, seed: int = 0,
                    image_size: int = DEFAULT_IMAGE_SIZE, per_class: int = CROPS_PER_CLASS,
                    scenes: int = DENSE_SCENES) -> dict:
    """Both zero-shot checks of an open_clip "ovseg-tiny" model (or checkpoint file).

    Returns {"crops": crop_check(...), "dense": dense_check(...)}; held-out data from `seed`:
    `per_class` single-object images of side `image_size` px per class, `scenes` target scenes.
    """
    model = model_or_path
    if not isinstance(model, nn.Module):
        model = load_tiny_clip(model_or_path)
    visual, text = split_clip(model)
    visual.eval()
    with fixed_threads():
        class_emb = class_embeddings(text, world_classes())
        return {"crops": crop_check(visual, class_emb, seed, image_size, per_class),
                "dense": dense_check(visual, class_emb, seed, scenes)}


def format_check(check: dict, label: str) -> str:
    """One line of a zero-shot check's headline figures."""
    crops, dense = check["crops"], check["dense"]
    return (f"{label:<10} crop top-1 seen {crops['seen_top1']:.2f} unseen "
            f"{crops['unseen_top1']:.2f} (chance {crops['chance']:.2f})  dense mIoU seen "
            f"{_pct(dense['seen_miou'])} unseen {_pct(dense['unseen_miou'])}")


def _pct(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.1f}"


# ----------------------------------------------------------------------------- the entry point


def pretrain_tiny_clip(out_file: str | Path, seed: int = 0, steps: int = DEFAULT_STEPS,
                       batch_size: int = DEFAULT_BATCH, image_size: int = DEFAULT_IMAGE_SIZE,
                       lr: float = DEFAULT_LR, progress: bool = True, check: bool = True) -> dict:
    """Pretrain "ovseg-tiny" on the caption corpus, save it to `out_file`, check it zero-shot.

    Deterministic given the arguments (seeded init, corpus batches by index, THREADS threads).
    Returns a JSON-able report: steps, seconds (training wall time), loss (first / final, nats,
    mean of the last 10 steps), corpus_key, and with `check` the zero-shot figures of the
    random-init model ("random") and of the pretrained one ("pretrained").
    """
    if steps < 1 or batch_size < 2 or image_size < 32 or image_size % 32:
        raise OvsegError("clip pretraining needs steps >= 1, batch >= 2 and an image size that "
                         f"is a multiple of 32 (got {steps}, {batch_size}, {image_size})")
    out_file = Path(out_file)
    model = new_tiny_clip(seed)
    report: dict = {"model": MODEL_NAME, "out": str(out_file), "seed": seed, "steps": steps,
                    "batch_size": batch_size, "image_size": image_size, "lr": lr,
                    "corpus_key": corpus_key(seed, steps, batch_size, image_size, lr)}
    if check:
        report["random"] = zero_shot_check(model, seed, image_size)
        if progress:
            print(format_check(report["random"], "random"), file=sys.stderr, flush=True)
    with fixed_threads():
        start, cpu = time.perf_counter(), time.process_time()
        losses = train_steps(model, seed, steps, batch_size, image_size, lr, progress)
        report["seconds"] = round(time.perf_counter() - start, 1)
        report["cpu_seconds"] = round(time.process_time() - cpu, 1)
    report["loss"] = {"first": losses[0], "final": float(np.mean(losses[-10:]))}
    report["temperature"] = float(1.0 / model.logit_scale.detach().exp())
    save_open_clip(model, out_file)
    if check:
        report["pretrained"] = zero_shot_check(out_file, seed, image_size)
        if progress:
            print(format_check(report["pretrained"], "pretrained"), file=sys.stderr, flush=True)
    return report
