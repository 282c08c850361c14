"""A report per round for people: overlays, plots across rounds, and a Markdown page.

Written under `<workspace>/reports/round=NNN/` (PNG + `index.md`), and published as a Prefect
Markdown artifact when a Prefect API is reachable (the temporary local server counts). Prefect
cannot serve the workspace's files, so the artifact carries its pictures inline (data URIs,
at most ARTIFACT_WIDTH pixels wide) and says where the full report lives.
"""

from __future__ import annotations

import base64
import contextlib
import io
import posixpath
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from flows.config import RunConfig  # noqa: E402
from flows.measures import (  # noqa: E402
    MODEL_MEASURES,
    PSEUDO_LABEL_MEASURES,
    REGION_MEASURES,
    ROUND_NAME,
    SOURCE_MEASURE,
    round_label,
)
from flows.plan import data_plan, workspace  # noqa: E402
from flows.quality import match_ids  # noqa: E402
from ovseg_core.progress import say, step_name  # noqa: E402
from ovseg_core.visualize import (  # noqa: E402
    class_colours,
    paint,
    panels,
    present_classes,
    upscale,
    with_legend,
)
from storage.samples import DEFAULT_WHERE, select_images  # noqa: E402
from storage.schema import IGNORE_INDEX  # noqa: E402
from storage.stats import class_counts, first_images  # noqa: E402
from storage.terms import TRAINING_STAGES  # noqa: E402

ARTIFACT_WIDTH = 800
SAMPLE_SIDE = 640
"""Longest side (px) at most of each panel of a sample picture."""
MIN_SIDE = 320
"""Longest side (px) at least of each panel: smaller images are enlarged (nearest)."""
PICTURE = re.compile(r"!\[([^\]]*)\]\(([\w.-]+\.png)\)")
"""A Markdown picture with a link relative to the report's folder."""


def write_round_report(cfg: RunConfig, round: int) -> str:
    """Write the report of `round` (0 = stage one) and return the URL of its index.md."""
    ws = workspace(cfg)
    folder = ws.reports_dir(round)
    lines = [f"# ovseg report: round {round}", ""]
    lines += _metrics_section(cfg, folder)
    if round > 0:
        lines += _stats_section(cfg, round, folder)
        lines += _overlay_section(cfg, round, folder)
    index = posixpath.join(folder, "index.md")
    with ws.fs.open(index, "w") as f:
        f.write("\n".join(lines) + "\n")
    publish_artifact(f"ovseg-report-round-{round}", f"ovseg round {round}",
                     lambda: artifact_markdown(cfg, folder, lines, index))
    say(f"{step_name(round, 'report')} {index}")
    return index


def artifact_markdown(cfg: RunConfig, folder: str, lines: list[str], index: str) -> str:
    """The report for the Prefect UI: its pictures inline, and where the full report lives."""
    fs = workspace(cfg).fs

    def inline(match: re.Match) -> str:
        with fs.open(posixpath.join(folder, match.group(2)), "rb") as f:
            return f"![{match.group(1)}]({_data_uri(f.read())})"

    where = [f"Full report (pictures at full size): `{index}`", ""]
    return "\n".join([lines[0], "", *where, *(PICTURE.sub(inline, line) for line in lines[2:])])


def _data_uri(png: bytes) -> str:
    """A data URI of the picture, scaled down to ARTIFACT_WIDTH; JPEG when that is smaller."""
    image = Image.open(io.BytesIO(png))
    image.thumbnail((ARTIFACT_WIDTH, ARTIFACT_WIDTH * 4))
    encoded = {}
    for kind, options in (("png", {"optimize": True}), ("jpeg", {"quality": 85})):
        buffer = io.BytesIO()
        image.convert("RGB" if kind == "jpeg" else image.mode).save(buffer, kind, **options)
        encoded[kind] = buffer.getvalue()
    kind = min(encoded, key=lambda k: len(encoded[k]))
    return f"data:image/{kind};base64,{base64.b64encode(encoded[kind]).decode()}"


def _save_png(cfg: RunConfig, folder: str, name: str, picture: np.ndarray | plt.Figure) -> str:
    buffer = io.BytesIO()
    if isinstance(picture, plt.Figure):
        picture.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(picture)
    else:
        Image.fromarray(picture).save(buffer, format="png")
    with workspace(cfg).fs.open(posixpath.join(folder, name), "wb") as f:
        f.write(buffer.getvalue())
    return name


def _metrics_section(cfg: RunConfig, folder: str) -> list[str]:
    """Target mIoU (all, seen, unseen classes) and pseudo-label quality per completed round, as
    a plot and a table with a legend (the names and meanings of `flows.measures`)."""
    records = [r for r in workspace(cfg).lineage() if r.status == "completed"
               and r.stage in TRAINING_STAGES]
    if not records:
        return []
    measures = (*MODEL_MEASURES, SOURCE_MEASURE, *PSEUDO_LABEL_MEASURES)
    rows = ["| round | " + " | ".join(m.column for m in measures) + " |",
            "|---" * (len(measures) + 1) + "|"]
    for r in records:
        rows.append(f"| {round_label(r.round)} | "
                    + " | ".join(_fmt(r.metrics.get(m.key)) for m in measures) + " |")
    notes = ["", f"- {ROUND_NAME}", *(f"- **{m.column}** ({m.unit}): {m.meaning} (`{m.key}`)"
                                      for m in measures), ""]
    curves = {m.column: [(r.round, r.metrics[m.key]) for r in records
                         if r.metrics.get(m.key) is not None] for m in MODEL_MEASURES}
    if not any(curves.values()):
        return ["## Target mIoU and pseudo-label quality", "", "No target mIoU: this run has "
                "no held-out labelled target images (`data.target_eval`).", "", *rows, *notes]
    fig, ax = plt.subplots(figsize=(5, 3))
    for label, points in curves.items():
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xlabel("round (0 = stage one)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("target mIoU (%)")
    ax.set_title("target mIoU across rounds")
    ax.legend(fontsize=8)
    name = _save_png(cfg, folder, "miou.png", fig)
    return ["## Target mIoU and pseudo-label quality", "", f"![target mIoU across rounds]({name})",
            "", *rows, *notes]


def _stats_section(cfg: RunConfig, round: int, folder: str) -> list[str]:
    """Per-class pseudo-label counts across rounds (from the class_stats view, no masks read)."""
    stats = class_counts(workspace(cfg), round)
    if not stats:
        return []
    fig, ax = plt.subplots(figsize=(6, 3))
    names = sorted({s["class_name"] for s in stats})
    rounds = sorted({s["round"] for s in stats})
    width = 0.8 / len(rounds)
    for i, r in enumerate(rounds):
        counts = {s["class_name"]: s["n_painting"] for s in stats if s["round"] == r}
        ax.bar(np.arange(len(names)) + i * width, [counts.get(n, 0) for n in names], width,
               label=f"round {r}")
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=45, ha="right",
                  fontsize=7)
    ax.set_ylabel("regions that paint")
    ax.legend(fontsize=8)
    name = _save_png(cfg, folder, "painting_regions.png", fig)
    table = ["| class | regions | gated | trusted | CLIP-rej | paint | median confidence |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {s['class_name']} | {s['n_regions']} | {s['n_gated']} | {s['n_accepted']} | "
              f"{s['n_clip_rejected']} | {s['n_painting']} | {_fmt(s['confidence_p50'])} |"
              for s in stats if s["round"] == round]
    legend = ["", "- **regions**: regions the model found; **paint**: regions that paint the "
              "pseudo-labels retraining uses; **median confidence**: the model's (0-1)",
              *(f"- **{m.column}**: {m.meaning} (`{m.key}`)" for m in REGION_MEASURES[:3]), ""]
    return ["## Pseudo-labels", "", f"![regions that paint, per class]({name})", "", *table,
            *legend]


def _overlay_section(cfg: RunConfig, round: int, folder: str) -> list[str]:
    """image | ground truth (where the image has labels) | the model's coarse masks |
    pseudo-labels (what retraining sees), with one legend, for a few images."""
    plan, ws = data_plan(cfg), workspace(cfg)
    chosen = first_images(ws, round, cfg.self_training.report_images)
    if not chosen:
        return []
    # Only the chosen images' masks are read, whatever the size of the round.
    among = f"image_id IN ({', '.join('?' * len(chosen))})"
    every = select_images(ws, round, where=among, params=chosen, coarse=True)
    selection = cfg.self_training.selection or DEFAULT_WHERE
    selected = select_images(ws, round, where=f"({selection}) AND {among}", params=chosen)
    truths = ground_truth(plan, chosen)
    names = plan.target_classes
    colours = class_colours(names)
    lines = ["## Samples", "", SAMPLES_CAPTION, ""]
    for k, image_id in enumerate(chosen):
        coarse = every[image_id].label_map()
        pseudo = selected[image_id].label_map() if image_id in selected else \
            np.full_like(coarse, IGNORE_INDEX)
        maps = {"ground truth": truths.get(image_id), "model (coarse masks)": coarse,
                "pseudo-labels (retraining)": pseudo}
        maps = {title: sample_size(m, nearest=True) for title, m in maps.items() if m is not None}
        image = sample_size(plan.read_target(image_id), nearest=False)
        row = panels([image, *(paint(image, m, colours) for m in maps.values())],
                     ["image", *maps])
        ignored = any(bool((m == IGNORE_INDEX).any()) for m in maps.values())
        picture = with_legend(row, present_classes(list(maps.values())), names, ignored)
        name = _save_png(cfg, folder, f"sample_{k}.png", picture)
        lines += [f"`{image_id}`", "", f"![{image_id}]({name})", ""]
    return lines


SAMPLES_CAPTION = (
    "Each row: the target image; its ground truth where the image has labels (never used for "
    "training); the model's coarse masks of every region it found; the pseudo-labels this round "
    "retrains on (SAM's trusted masks that CLIP agrees with). Each class is filled in its colour "
    "over the photo and outlined; a class named with a colour ('blue square') is drawn in that "
    "colour, others in a fixed palette (`ovseg_core/visualize.py`). Grey hatching: ignored "
    "pixels (no label; retraining skips them).")


def ground_truth(plan, image_ids: list[str]) -> dict[str, np.ndarray]:
    """{target image id: its label map in the target vocabulary's ids} for the images that have
    labels (`data.target_labels`, else a `data.target_eval` holding the same files)."""
    labels = plan.target_labels or plan.target_eval
    if labels is None or not labels.has_labels:
        return {}
    matches = match_ids(image_ids, list(labels.image_ids))
    position = {n: i for i, n in enumerate(plan.target_classes)}
    lookup = np.full(IGNORE_INDEX + 1, IGNORE_INDEX, dtype=np.uint16)
    for i, name in enumerate(labels.class_names):
        lookup[i] = position.get(name, IGNORE_INDEX)
    return {t: lookup[labels.read_label(e)] for t, e in matches.items()}


def sample_size(array: np.ndarray, nearest: bool) -> np.ndarray:
    """An (H, W[, 3]) picture or label map at a size a person reads: the longest side at most
    SAMPLE_SIDE px (a 12-megapixel photo's panels made a 12210 x 3018 PNG), and small images
    (the built-in world's 128 px) enlarged a whole number of times, nearest-neighbour, to at
    least MIN_SIDE px. Label maps are resized nearest (no mixed class ids)."""
    h, w = array.shape[:2]
    if max(h, w) < MIN_SIDE:
        return upscale(array, -(-MIN_SIDE // max(h, w)))
    scale = SAMPLE_SIDE / max(h, w)
    if scale >= 1:
        return array
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if nearest:  # label maps: uint16 ids, resampled without mixing classes
        return np.asarray(Image.fromarray(array.astype(np.int32)).resize(size, Image.NEAREST)
                          ).astype(array.dtype)
    return np.asarray(Image.fromarray(array).resize(size, Image.BILINEAR))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def publish_artifact(key: str, description: str, markdown) -> None:
    """Inside a flow run, publish `markdown()` (a callable making the text) as the Markdown
    artifact `key`. Best effort: a report or a quality gate must never fail a round because
    no Prefect API is reachable."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    text = markdown()
    with contextlib.suppress(Exception):  # publishing is optional
        create_markdown_artifact(markdown=text, key=key, description=description)
