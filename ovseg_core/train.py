"""The training loop shared by stage one and every self-training retraining round.

Reads samples through `SegmentationSamples` (numpy image + label with ignore). Sample k of the
run (k = step * batch_size + j) is `samples[order(k)]` augmented with `default_rng([seed, k])`,
so the data stream is a pure function of the seed and resuming needs no loader state.
Checkpoints (`out_dir/model.safetensors` + `config.json` via `save_model`, and
`out_dir/trainer_state.pt` with optimizer, scheduler, step and RNG states) are written every
`checkpoint_every` steps and at the end; a resumed run ends with the same weights as an
uninterrupted one.

Data parallel (launched by torchrun, process group set up by `distributed.init_from_env`):
`batch_size` is the GLOBAL batch. Rank r of R takes samples k = step * batch_size +
r * batch_size / R + j, so the global batch holds exactly the samples of a single-process run;
each rank's loss is weighted by its share of the labelled pixels (`distributed.loss_share`), so
DDP's averaged gradient is the single-process gradient up to float summation order. Only
rank 0 writes the checkpoint, trainer state and log; every rank resumes from the same
trainer state (the output folder must be on a file system all nodes share).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ovseg_core import distributed
from ovseg_core.checkpoint import WEIGHTS_FILE, file_sha256, save_model
from ovseg_core.config import PRESETS
from ovseg_core.constants import ALPHA
from ovseg_core.data import SegmentationSamples
from ovseg_core.data.transforms import AugmentConfig, augment_with_geometry
from ovseg_core.data.workers import forget_parent_atexits
from ovseg_core.device import Runtime
from ovseg_core.errors import OvsegError
from ovseg_core.loss import seen_unseen_weights, stseg_loss
from ovseg_core.progress import Progress
from ovseg_core.sam_features import SamFeatureCache, crop_features
from ovseg_core.weights import load_file_into

LOG_NAME = "train_log.jsonl"
STATE_NAME = "trainer_state.pt"
STAGING = ".checkpoint-staging"


SAM_CROPS = ("warped", "encoded")
"""How training gets SAM's features of an augmented crop (`TrainConfig.sam_crops`)."""


@dataclass
class TrainConfig:
    """Optimisation settings (paper values as defaults; lr in absolute units, crop in px).

    clip_lr_mult: the CLIP visual tower's learning rate relative to `lr`; None = the model
    config's `clip.visual_lr_scale` (0.01 in every preset). warmup_steps: linear
    warmup, then cosine decay to 0 at `steps`. grad_clip: max global grad norm (0 = off).
    alpha: the seen-class loss weight of eq. 6 (unseen classes get 1 - alpha).
    sam_crops: how DEA gets the frozen SAM's features of each augmented crop: "warped" (each
    source image encoded once per run, its features warped with the crop's geometry,
    `ovseg_core.sam_features`) or "encoded" (SAM encodes every crop, as at evaluation; about
    3x a tiny-preset step's cost, `benchmarks/bench_sam_features.py`).
    """

    steps: int = 80_000
    batch_size: int = 4
    lr: float = 2e-4
    clip_lr_mult: float | None = None
    weight_decay: float = 1e-4
    warmup_steps: int = 1500
    grad_clip: float = 0.01
    crop_size: int = 768
    scale_range: tuple[float, float] = (0.5, 2.0)
    color_jitter: float = 0.2
    alpha: float = ALPHA
    seed: int = 0
    num_workers: int = 2
    log_every: int = 10
    checkpoint_every: int = 1000
    sam_crops: str = "warped"

    def validate(self) -> TrainConfig:
        if self.steps < 1 or self.batch_size < 1 or self.crop_size < 32:
            raise OvsegError("steps and batch_size must be >= 1 and crop_size >= 32")
        if self.batch_size % distributed.world_size():
            raise OvsegError(f"batch_size {self.batch_size} (global) must be a multiple of the "
                             f"{distributed.world_size()} data-parallel processes")
        if not 0 <= self.alpha <= 1:
            raise OvsegError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.sam_crops not in SAM_CROPS:
            raise OvsegError(f"sam_crops must be one of {', '.join(SAM_CROPS)}, not "
                             f"{self.sam_crops!r}")
        return self


@dataclass
class TrainResult:
    """out_dir: where the checkpoint is. start_step: where this call began (0 = fresh).
    final_loss: mean loss over the last logging window (None if no step ran in this call)."""

    out_dir: Path
    steps: int
    start_step: int
    final_loss: float | None
    wall_s: float
    checkpoint_sha256: str


PRESET_DEFAULTS = {name: p.train for name, p in PRESETS.items()}
"""Training defaults per model preset (defined with the preset: `ovseg_core.config.PRESETS`)."""


def preset_train_config(preset: str, **overrides) -> TrainConfig:
    """The TrainConfig of a model preset (PRESET_DEFAULTS) with `overrides` applied.

    Warmup is capped at a tenth of the steps and checkpoints come at least once per run.
    """
    if preset not in PRESET_DEFAULTS:
        raise OvsegError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_DEFAULTS)}")
    values = {**PRESET_DEFAULTS[preset], **overrides}
    values["warmup_steps"] = min(values["warmup_steps"], max(1, values["steps"] // 10))
    values["checkpoint_every"] = min(values["checkpoint_every"], values["steps"])
    return TrainConfig(**values).validate()


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): linear warmup, then cosine
    to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class AugmentedStream(Dataset):
    """Item k = sample k of the run: `samples[perm_epoch(k)]` augmented with rng (seed, k), as
    (image (3, S, S), label (S, S), sample index, crop geometry (5,)) (`augment_with_geometry`)."""

    def __init__(self, samples: SegmentationSamples, cfg: AugmentConfig, seed: int):
        if len(samples) == 0:
            raise OvsegError("no training samples")
        self.samples, self.cfg, self.seed = samples, cfg, seed
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return 2**62

    def index_of(self, k: int) -> int:
        n = len(self.samples)
        epoch = k // n
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, 7, epoch]).permutation(n))
        return int(self._perm[1][k % n])

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        index = self.index_of(k)
        image, label = self.samples[index]
        image, label, geometry = augment_with_geometry(
            image, label, np.random.default_rng([self.seed, k]), self.cfg)
        return image, label, index, geometry


def train(model, samples: SegmentationSamples, class_names: Sequence[str], seen: Sequence[bool],
          cfg: TrainConfig, out_dir: Path, runtime: Runtime, resume: bool = True,
          progress: bool = True, desc: str = "train",
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train `model` in place and checkpoint it to `out_dir`; see the module docstring.

    seen: one bool per class of `class_names` (unseen classes get weight 1 - alpha).
    progress, desc: show progress (on the main process) under the name `desc`.
    on_step(step, loss): called after each optimizer step and its checkpoint (1-based step;
    loss: the global batch's loss, on every rank).
    """
    cfg.validate()
    if len(seen) != len(class_names):
        raise OvsegError(f"seen has {len(seen)} entries for {len(class_names)} classes")
    out_dir = Path(out_dir)
    main = distributed.is_main()
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            _finish_staging(out_dir)
    distributed.barrier()  # a checkpoint interrupted mid-move is complete before anyone reads
    started = time.perf_counter()
    model.to(runtime.device)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps))
    torch.manual_seed(cfg.seed)
    step = 0
    if resume:
        step = load_trainer_state(out_dir, model, optimizer, scheduler, _identity(cfg, class_names))
    step = distributed.same_on_all(step, "resumed step")
    if step >= cfg.steps:
        return TrainResult(out_dir, step, step, None, time.perf_counter() - started,
                           file_sha256(out_dir / WEIGHTS_FILE))
    net = distributed.wrap(model, runtime.device)  # after resume: rank 0's weights everywhere
    text = model.encode_vocabulary(list(class_names))
    weights = seen_unseen_weights(list(seen), alpha=cfg.alpha).to(runtime.device)
    loader = _loader(samples, cfg, step)
    sam_crops = _sam_crops(model, samples, cfg)
    log = (out_dir / LOG_NAME).open("a") if main else None
    window: list[float] = []
    bar = Progress(cfg.steps, desc, "steps", initial=step, disable=not (progress and main))
    net.train()
    start_step, last_loss, sha = step, None, None
    for images, labels, indices, geometry in loader:
        loss = _train_step(net, optimizer, images, labels, text, weights, runtime, cfg.grad_clip,
                           sam_crops(indices, geometry))
        scheduler.step()
        step += 1
        window.append(loss)
        bar.update(1)
        lr = max(g["lr"] for g in optimizer.param_groups)  # the base lr (CLIP's is lower)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        if step % cfg.log_every == 0 or step == cfg.steps:
            last_loss = float(np.mean(window))
            if main:
                _log(log, step, last_loss, optimizer, started)
            window = []
        if main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            sha = save_checkpoint(out_dir, model, optimizer, scheduler, step,
                                  _identity(cfg, class_names))
        if on_step is not None:
            on_step(step, loss)
        if step >= cfg.steps:
            break
    bar.close()
    if main:
        log.close()
    sha = distributed.broadcast_object(sha)  # also waits for rank 0's last checkpoint
    if window:
        last_loss = float(np.mean(window))
    return TrainResult(out_dir, step, start_step, last_loss, time.perf_counter() - started, sha)


def _sam_crops(model, samples: SegmentationSamples, cfg: TrainConfig
               ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None]:
    """(indices (B,), geometry (B, 5)) -> the batch's SAM features (B, C, g, g): with
    `sam_crops` "warped", each source image encoded once per run and warped to its crop
    (`ovseg_core.sam_features`); None (the model encodes the crops) with "encoded" or when the
    model has no DEA."""
    if model.dea is None or cfg.sam_crops == "encoded":
        return lambda indices, geometry: None
    cache = SamFeatureCache()
    return lambda indices, geometry: crop_features(model, cache, samples, indices, geometry,
                                                   cfg.crop_size)


def _train_step(model, optimizer, images, labels, text, weights, runtime: Runtime,
                grad_clip: float, sam_features: torch.Tensor | None = None) -> float:
    """One optimizer step on a batch; sam_features (B, C, g, g) of the crops (None = the model
    encodes them, or has no DEA)."""
    images = images.to(runtime.device, non_blocking=True)
    labels = labels.to(runtime.device, non_blocking=True)
    with runtime.autocast():
        output = model(images, text, sam_features=sam_features)
    loss = stseg_loss(output, labels, weights) * distributed.loss_share(labels, weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    value = distributed.all_reduce_mean(float(loss.detach()))  # the global batch's loss
    if not math.isfinite(value):
        raise FloatingPointError(f"training loss became {value}")
    return value


def _param_groups(model, cfg: TrainConfig) -> list[dict]:
    groups = model.trainable_parameter_groups(cfg.lr)
    for group in groups:
        group.setdefault("weight_decay", cfg.weight_decay)
        if cfg.clip_lr_mult is not None and group.get("name") == "clip_visual":
            group["lr"] = cfg.lr * cfg.clip_lr_mult
    return [g for g in groups if g["params"]]


def _loader(samples: SegmentationSamples, cfg: TrainConfig, start_step: int) -> DataLoader:
    """Batches of this rank's share: samples step * batch_size + rank * per_rank + j."""
    stream = AugmentedStream(samples, AugmentConfig(cfg.crop_size, tuple(cfg.scale_range),
                                                    True, cfg.color_jitter), cfg.seed)
    per_rank = cfg.batch_size // distributed.world_size()
    offset = distributed.rank() * per_rank
    order = _RankOrder(start_step, cfg.steps, cfg.batch_size, offset, per_rank)
    return DataLoader(stream, batch_size=per_rank, sampler=order, drop_last=True,
                      num_workers=cfg.num_workers, persistent_workers=False,
                      worker_init_fn=forget_parent_atexits,
                      generator=torch.Generator().manual_seed(cfg.seed),
                      pin_memory=torch.cuda.is_available())


class _RankOrder:
    """Sample numbers step * batch + offset + j for j < per_rank, steps [start, stop)."""

    def __init__(self, start: int, stop: int, batch: int, offset: int, per_rank: int):
        self.start, self.stop, self.batch, self.offset, self.per_rank = (start, stop, batch, offset,
                                                                         per_rank)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.per_rank

    def __iter__(self):
        for step in range(self.start, self.stop):
            base = step * self.batch + self.offset
            yield from range(base, base + self.per_rank)


def _identity(cfg: TrainConfig, class_names: Sequence[str]) -> dict:
    """What must match for a checkpoint to be resumed by this run."""
    keep = {k: v for k, v in asdict(cfg).items()
            if k not in ("num_workers", "log_every", "checkpoint_every")}
    keep["scale_range"] = list(keep["scale_range"])
    return {"train_config": keep, "class_names": list(class_names)}


def _with_new_defaults(stored, expected: dict):
    """A stored run's train config with the identity keys TrainConfig gained since it was
    written set to their defaults (what that run did), so an older run still resumes."""
    if not isinstance(stored, dict):
        return stored
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return {**{k: defaults[k] for k in expected if k not in stored and k in defaults}, **stored}


def _log(log, step: int, loss: float, optimizer, started: float) -> None:
    record = {"step": step, "loss": round(loss, 6),
              "lr": [g["lr"] for g in optimizer.param_groups],
              "elapsed_s": round(time.perf_counter() - started, 3)}
    log.write(json.dumps(record) + "\n")
    log.flush()


def read_train_log(out_dir: Path) -> list[dict]:
    """The JSONL training log of `out_dir` (one dict per logged step)."""
    path = Path(out_dir) / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_checkpoint(out_dir: Path, model, optimizer, scheduler, step: int, identity: dict) -> str:
    """Write model + trainer state to `out_dir` as one unit; returns the weights' sha256.

    Everything is first written to `out_dir/.checkpoint-staging/` (the trainer state last, via a
    rename that marks the staging folder complete), then moved into place with the trainer state
    moved last; `_finish_staging` completes an interrupted move on the next start.
    """
    staging = out_dir / STAGING
    if staging.exists():
        _clear(staging)
    save_model(model, staging)
    sha = file_sha256(staging / WEIGHTS_FILE)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "model_sha256": sha,
        **identity,
    }
    torch.save(state, staging / (STATE_NAME + ".tmp"))
    (staging / (STATE_NAME + ".tmp")).replace(staging / STATE_NAME)
    _finish_staging(out_dir)
    return sha


def load_trainer_state(out_dir: Path, model, optimizer, scheduler, identity: dict) -> int:
    """Restore weights, optimizer, scheduler and RNG from `out_dir`; returns the step
    (0 if none)."""
    _finish_staging(out_dir)
    path = out_dir / STATE_NAME
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["train_config"] = _with_new_defaults(state.get("train_config"),
                                               identity["train_config"])
    for key in ("train_config", "class_names"):
        if state.get(key) != identity[key]:
            raise OvsegError(
                f"{path} was written with a different {key.replace('_', ' ')}; "
                f"resume with the same settings or use a new output folder"
            )
    weights = out_dir / WEIGHTS_FILE
    if file_sha256(weights) != state["model_sha256"]:
        raise OvsegError(f"{weights} does not match {path} (step {state['step']}); "
                         "the checkpoint is inconsistent, start in a new output folder")
    load_file_into(model, weights, "resume weights")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"])


def _finish_staging(out_dir: Path) -> None:
    staging = out_dir / STAGING
    if not staging.exists():
        return
    if (staging / STATE_NAME).exists():  # complete: move the rest, trainer state last
        for path in sorted(staging.iterdir(), key=lambda p: p.name == STATE_NAME):
            path.replace(out_dir / path.name)
    _clear(staging)


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
