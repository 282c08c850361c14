"""The run configuration: everything a user changes to run ovseg on real data and weights.

One typed pydantic model, validated at the edge (CLI, YAML file, Prefect parameters). The
settings that shape a round's pseudo-labels are part of each shard's key (`flows.steps`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ovseg_core.config import PRESET_NAMES, PRESETS
from ovseg_core.constants import ALPHA, DEFAULT_WORKSPACE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(_Strict):
    """A dataset on disk: a reader kind (see `ovseg_core.data.open_dataset`) and its root."""

    kind: str = "generic"
    root: str
    split: str | None = None


class SyntheticSettings(_Strict):
    """Size of the built-in synthetic dataset (used when `data.source` is not set)."""

    train: int = Field(default=48, ge=1)
    val: int = Field(default=16, ge=1)
    target: int = Field(default=16, ge=1, description="images the rounds self-train on")
    target_val: int = Field(default=32, ge=1, description="held-out labelled target images: "
                            "mIoU per round is measured on these, never on the self-trained ones")


class DataSettings(_Strict):
    """Where the labelled source, the unlabelled target and the target's held-out labels live."""

    source: DatasetRef | None = Field(
        default=None, description="labelled stage-one data; None = generate the synthetic set")
    source_val: DatasetRef | None = Field(default=None, description="labelled validation split")
    target: DatasetRef | None = Field(
        default=None, description="images to self-train on (labels, if any, are never used)")
    target_eval: DatasetRef | None = Field(
        default=None, description="labelled target split for measuring mIoU per round")
    target_labels: DatasetRef | None = Field(
        default=None, description="labels of the target images themselves, never used for "
        "training: measure the painted pseudo-labels (flows/quality.py)")
    target_classes: list[str] | None = Field(
        default=None, description="target vocabulary; default: the target dataset's classes")
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    same_names: dict[str, str | list[str]] | None = Field(
        default=None, description="extra name pairs that mean the same class (source name -> "
        "target name(s)), added to the shipped COCO-Stuff map (ovseg_core.data.name_map)")


class ModelSettings(_Strict):
    """Which model to build and which weight files to load (never downloaded)."""

    preset: Literal[PRESET_NAMES] = "tiny"  # the names of ovseg_core.config.PRESETS
    clip_weights: str | None = Field(default=None, description="local open_clip checkpoint file")
    sam_checkpoint: str | None = Field(default=None, description="local SAM .pth / mobile_sam.pt")
    pretrain_clip: bool = Field(
        default=True, description="tiny preset on the built-in world without clip_weights: "
        "pretrain the tiny CLIP contrastively on the world's caption corpus (every class, seen "
        "and unseen, in words) once per workspace, and use it as the CLIP weights")
    dea: bool = True
    self_training: bool = True


class TrainSettings(_Strict):
    """Optimisation for stage one and every retraining; None = the preset's default
    (`ovseg_core.config.PRESETS`; crop = the model's input size)."""

    steps: int | None = Field(default=None, ge=1)
    retrain_steps: int | None = Field(default=None, ge=1, description="None = steps / 3")
    batch_size: int | None = Field(default=None, ge=1)
    crop_size: int | None = Field(default=None, ge=32)
    lr: float | None = Field(default=None, gt=0)
    alpha: float = Field(default=ALPHA, ge=0, le=1)
    num_workers: int | None = Field(default=None, ge=0)
    checkpoint_every: int | None = Field(default=None, ge=1)
    processes: int = Field(
        default=1, ge=1, description="data-parallel processes of each round's retraining on "
        "this machine (DDP started by torch's elastic launcher; one GPU each, else gloo on "
        "CPU); batch_size stays the global batch and must divide by it")


class SelfTrainingSettings(_Strict):
    """The rounds: gate, SAM refinement, sharding, and which rows retraining uses."""

    rounds: int = Field(default=2, ge=0)
    gate_threshold: float | None = Field(
        default=None, ge=0, le=1, description="regions with confidence above this prompt SAM; "
        "None = 0.9 (the paper), or 0.3 with the tiny preset: its region confidences have a "
        "median of 0.57 and none passed 0.9 in the default job's round 1")
    class_gates: dict[str, float] | None = Field(
        default=None, description="per-class gates, class name -> threshold, overriding "
        "gate_threshold for those classes (e.g. a lower bar for a rare class)")
    class_balance: float | None = Field(
        default=None, gt=0, lt=1, description="class-balanced gate (CBST): each class's gate is "
        "this quantile of its region confidences on the round's calibration images, never above "
        "gate_threshold / class_gates; None = off (the paper's one gate)")
    calibration_images: int = Field(
        default=256, ge=1, description="target images (the first by id) whose region "
        "confidences set the class-balanced gates")
    refiner_sam: str = Field(
        default="vit_t", description="SAM variant that refines pseudo-labels, or 'model' to "
        "reuse the model's own SAM encoder embedding")
    refiner_checkpoint: str | None = None
    shard_size: int = Field(default=8, ge=1, description="images per shard (one task each)")
    batch_size: int = Field(default=4, ge=1, description="images per inference batch")
    loader_workers: int | None = Field(
        default=None, ge=0, description="processes decoding the next batches of target images "
        "while the model runs; None = 2 on a GPU, 0 on the CPU (there they would take the "
        "model's cores)")
    prompts_per_pass: int | None = Field(
        default=None, ge=1, description="SAM prompts per mask-decoder pass (speed and memory "
        "only: the rows do not depend on it); None = 64 on CUDA (unmeasured), on the CPU as many "
        "as keep a pass's activations within 2 real-SAM prompts' (2 of SAM or MobileSAM)")
    fallback: Literal["ignore", "coarse"] = Field(
        default="ignore", description="what an untrusted SAM mask's region paints: nothing "
        "(the paper) or its coarse mask")
    clip_verify: bool | None = Field(
        default=None, description="CLIP classifies each gated region's crop and a region whose "
        "class it does not pick paints nothing (not in the paper; ovseg_core/selftrain/"
        "verify.py); None = on when the model's CLIP has weights (a random CLIP knows nothing)")
    selection: str | None = Field(
        default=None, description="SQL WHERE over pseudo_labels for retraining; None = every "
        "row that paints (paints <> 'none')")
    source_share: float = Field(
        default=0.5, ge=0, lt=1, description="share of each retraining batch drawn from the "
        "labelled source (remapped into the target vocabulary by meaning); 0 = the paper")
    report_images: int = Field(default=4, ge=0)


class QualitySettings(_Strict):
    """The quality gate (flows/quality_gate.py): checks on a round's committed pseudo-labels
    before retraining; a failing check stops the round there (its rows stay committed). None =
    the check is off. Not part of a round's labelling settings: changing a threshold or
    accepting a round never changes what a round labels. The defaults were measured on the
    default job (seeds 0-2, DEA on and off, 2 rounds, with CLIP's check: every image labelled,
    coverage 0.62-0.97, trusted share 0.97-0.99, mean SAM IoU 0.97-0.98, class shift
    0.03-0.19) and the tests' small setup (random CLIP, so no CLIP check: every image labelled,
    coverage 0.95, its random SAM never trusted, mean SAM IoU 0.19, class shift 0.05): the
    checks on by default stop only a nearly empty or collapsed round."""

    min_labelled_images: float | None = Field(
        default=0.5, ge=0, le=1, description="share of the round's readable images with any "
        "row that paints; on by default: 1.0 in the default job and the tests, 0 when the gate "
        "lets no region through (the paper's 0.9 with the tiny preset)")
    min_coverage: float | None = Field(
        default=0.1, ge=0, le=1, description="share of the readable images' pixels that are "
        "painted (per image at most all of it: refined_area for SAM-painted rows, area for "
        "coarse ones); on by default at a floor that only an almost empty round misses: "
        "0.55-0.76 in the default job with the class-balanced gate, 0.69-0.88 without")
    min_trusted_share: float | None = Field(
        default=None, ge=0, le=1, description="share of gated regions whose SAM mask is "
        "trusted (accepted / gated); off by default: 0.97-0.98 in the default job, but a "
        "refiner that is never trusted is a valid setting with fallback: coarse (the tests)")
    min_sam_iou: float | None = Field(
        default=None, ge=0, le=1, description="SAM's mean predicted IoU over the gated regions; "
        "off by default for the same reason (0.97 in the default job, 0.19 for the tests' random "
        "SAM)")
    max_class_shift: float | None = Field(
        default=0.5, ge=0, le=1, description="largest absolute change of a class's share of "
        "the painted pixels since the previous self-training round (not checked in round 1); "
        "on by default at a bound only a collapse (one class taking half the pixels from the "
        "others) crosses: at most 0.19 in the default job, 0.05 in the tests")
    accept_rounds: list[int] = Field(
        default_factory=list, description="rounds that go on to retraining even when a check "
        "fails (the failing checks are still recorded); `ovseg run --accept-round R` adds R")


class ClusterSettings(_Strict):
    """Where a round's shard tasks run: here, in order, or fanned out over a Dask cluster."""

    task_runner: Literal["local", "dask"] = "local"
    address: str | None = Field(
        default=None, description="Dask scheduler, e.g. tcp://10.0.0.5:8786; None = start a "
        "local cluster")
    workers: int = Field(default=2, ge=1, description="workers of the local cluster")
    cluster_class: str | None = Field(
        default=None, description="e.g. dask_cuda.LocalCUDACluster: one worker per GPU")
    gpu_tag: str | None = Field(
        default="ovseg-gpu", description="Prefect tag of the GPU steps (stage one, labelling, "
        "retraining) for a concurrency limit per device; not applied when they run on this "
        "process's CPU; None = never")


class RunConfig(_Strict):
    """A whole ovseg run: stage one + N self-training rounds."""

    workspace: str = Field(default=DEFAULT_WORKSPACE, description="fsspec URL or local path")
    seed: int = 0
    device: str | None = Field(default=None, description="cpu, cuda, cuda:1; default: auto")
    data: DataSettings = Field(default_factory=DataSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    self_training: SelfTrainingSettings = Field(default_factory=SelfTrainingSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @model_validator(mode="after")
    def _preset_defaults(self) -> RunConfig:
        if self.self_training.gate_threshold is None:
            self.self_training.gate_threshold = PRESETS[self.model.preset].gate
        return self

    @field_validator("workspace")
    @classmethod
    def _workspace_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("workspace must be a path or an fsspec URL")
        return value


def load_config(path: str | Path | None, **overrides: object) -> RunConfig:
    """Read a YAML config (or the defaults) and apply non-None top-level/nested overrides.

    Overrides use dotted keys, e.g. `{"self_training.rounds": 3, "workspace": "runs/a"}`.
    """
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return RunConfig.model_validate(data)
