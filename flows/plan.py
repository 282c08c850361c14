"""From a RunConfig to the run's datasets and vocabularies (`DataPlan`), and the local scratch
folders of a workspace. A task opens these through its context (`flows.context`), once."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from flows.config import DatasetRef, RunConfig
from ovseg_core.data import open_dataset
from ovseg_core.data.name_map import NameMap
from ovseg_core.data.readers import LabeledDataset
from ovseg_core.data.synth import read_synthetic_info, write_synthetic_dataset
from ovseg_core.data.unlabeled import UnlabeledImages
from ovseg_core.errors import OvsegError
from ovseg_core.progress import say
from storage.fsio import local_path
from storage.hashing import dataset_manifest_hash
from storage.workspace import Workspace

SYNTHETIC_DIR = "datasets"


@dataclass
class DataPlan:
    """The datasets of a run. target: images only (`image_ids`, `read(image_id)`)."""

    source: LabeledDataset
    source_val: LabeledDataset | None
    target: LabeledDataset | UnlabeledImages
    target_eval: LabeledDataset | None
    target_labels: LabeledDataset | None
    source_classes: list[str]
    target_classes: list[str]
    target_seen: list[bool]
    seen_names: frozenset[str]
    name_map: NameMap

    def seen(self, names: list[str]) -> list[bool]:
        """One bool per class of `names`: seen when a seen source class means it (name map)."""
        return self.name_map.seen_mask(names, sorted(self.seen_names))

    def read_target(self, image_id: str):
        """uint8 (H, W, 3) target image by id."""
        if isinstance(self.target, UnlabeledImages):
            return self.target.read(image_id)
        return self.target.read_image(image_id)

    def target_problems(self) -> dict[str, str]:
        """{image id: reason} of target files found but unreadable (quarantined by the rounds)."""
        return dict(getattr(self.target, "skipped", []))

    def target_ids(self) -> list[str]:
        """Every target file a round labels, sorted: the readable images and the unreadable
        ones (recorded as quarantined)."""
        return sorted(set(self.target.image_ids) | set(self.target_problems()))

    def target_manifest_hash(self) -> str:
        """sha256 of `target_ids`: which files the rounds label (storage.hashing's hash)."""
        return dataset_manifest_hash(self.target_ids())


def local_dir(workspace: str, *parts: str) -> Path:
    """A local scratch folder for `workspace` (inside it when the workspace is local)."""
    local = local_path(workspace)
    if local is not None:
        base = Path(local) / "_work"
    else:
        digest = hashlib.sha256(workspace.encode()).hexdigest()[:12]
        base = Path.home() / ".cache" / "ovseg" / "work" / digest
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def synthetic_root(cfg: RunConfig) -> Path:
    """Where the built-in synthetic dataset of this run lives (made on first use)."""
    local = local_path(cfg.workspace)
    base = Path(local) if local is not None else Path.cwd() / "ovseg-data"
    sizes = cfg.data.synthetic
    return base / SYNTHETIC_DIR / (f"synthetic-seed{cfg.seed}-{sizes.train}-{sizes.val}-"
                                   f"{sizes.target}-{sizes.target_val}")


def ensure_synthetic(cfg: RunConfig) -> Path:
    """Generate the synthetic dataset once (atomically: a killed run never leaves half of it)."""
    root = synthetic_root(cfg)
    if (root / "dataset.json").exists():
        return root
    tmp = root.with_name(root.name + f".tmp-{os.getpid()}")
    sizes = cfg.data.synthetic
    say(f"generating the built-in world (once, under {root}): coloured shapes on textured "
        f"ground; {sizes.train} + {sizes.val} labelled source images with 5 seen classes, "
        f"{sizes.target} unlabelled target images to self-train on and {sizes.target_val} "
        "held-out labelled target images for the mIoU; the target also shows 3 unseen classes")
    write_synthetic_dataset(tmp, seed=cfg.seed, num_train=sizes.train, num_val=sizes.val,
                            num_target=sizes.target, num_target_val=sizes.target_val)
    tmp.rename(root)
    return root


def _open(ref: DatasetRef | None) -> LabeledDataset | UnlabeledImages | None:
    if ref is None:
        return None
    if ref.kind == "images":
        images = UnlabeledImages(ref.root, warn=False)
        if images.skipped:
            from flows.invocation import ovseg_command

            say(f"{len(images.skipped)} file(s) under {ref.root} cannot be read; every round "
                f"records them with the reason: {ovseg_command()} sql \"SELECT * FROM "
                "quarantine\"")
        return images
    return open_dataset(ref.kind, ref.root, ref.split)


def resolve_refs(cfg: RunConfig) -> dict[str, DatasetRef | None]:
    """The dataset references of the run, with the synthetic defaults filled in."""
    data = cfg.data
    if data.source is not None:
        if data.target is None:
            raise OvsegError("data.target is required when data.source is set")
        return {"source": data.source, "source_val": data.source_val, "target": data.target,
                "target_eval": data.target_eval, "target_labels": data.target_labels}
    given = [k for k in ("source_val", "target", "target_eval", "target_labels")
             if getattr(data, k) is not None]
    if given:
        raise OvsegError(f"data.{given[0]} is set but data.source is not: set data.source (the "
                         "labelled stage-one data) too, or remove data.* to run on the built-in "
                         "synthetic world")
    root = synthetic_root(cfg)
    return {"source": DatasetRef(root=str(root / "source"), split="train"),
            "source_val": DatasetRef(root=str(root / "source"), split="val"),
            "target": DatasetRef(kind="images", root=str(root / "target" / "images")),
            "target_eval": DatasetRef(root=str(root / "target_val")),
            "target_labels": DatasetRef(root=str(root / "target"))}


def open_plan(cfg: RunConfig) -> DataPlan:
    """The run's datasets, opened from disk (the built-in synthetic world is written first when
    the run uses it and it is not on disk yet). Tasks get it from their context, which opens
    it once per process (`flows.context.WorkerResources.data_plan`)."""
    if cfg.data.source is None:
        ensure_synthetic(cfg)
    refs = resolve_refs(cfg)
    source, target = _open(refs["source"]), _open(refs["target"])
    source_val, target_eval = _open(refs["source_val"]), _open(refs["target_eval"])
    target_classes = cfg.data.target_classes or _classes_of(target_eval or target)
    name_map = NameMap.default().extend(same=cfg.data.same_names)
    if cfg.data.source is None:
        info = read_synthetic_info(synthetic_root(cfg))
        seen_names = set(info["seen"])
    else:
        seen_names = set(source.class_names)
    return DataPlan(source=source, source_val=source_val, target=target, target_eval=target_eval,
                    target_labels=_open(refs["target_labels"]),
                    source_classes=list(source.class_names), target_classes=list(target_classes),
                    target_seen=name_map.seen_mask(target_classes, sorted(seen_names)),
                    seen_names=frozenset(seen_names), name_map=name_map)


def _classes_of(dataset) -> list[str]:
    names = getattr(dataset, "class_names", None)
    if not names:
        raise OvsegError("the target vocabulary is unknown: set data.target_classes or give a "
                         "labelled data.target_eval")
    return list(names)


def data_plan(cfg: RunConfig) -> DataPlan:
    """The run's datasets as this process holds them (`flows.context.RESOURCES`), for code
    outside a task's context (the report, the commands, the benchmarks)."""
    from flows.context import RESOURCES

    return RESOURCES.data_plan(cfg)


def rescan_target(cfg: RunConfig) -> DataPlan:
    """The run's datasets with the target read again from disk (images added since)."""
    from flows.context import RESOURCES

    return RESOURCES.data_plan(cfg, fresh=True)


def workspace(cfg: RunConfig) -> Workspace:
    """The run's store, for code outside a task's context (the report, the commands)."""
    return Workspace(cfg.workspace)


def round_manifest_hash(store: Workspace, round: int) -> str | None:
    """The manifest hash of the target files round `round` labels (its recorded plan, not the
    target as it is now); None before the round has planned."""
    planned = store.round_plan(round)
    return planned and dataset_manifest_hash(planned["image_ids"])
