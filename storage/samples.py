"""Selection for retraining: a round's selected rows painted into label maps.

Painting rule (`storage.terms`, the one rule, which ovseg_core paints with too; training,
export, the report and the pseudo-label quality measure all paint through
`ImageSelection.label_map`):
- `paints` says what a row paints in the round's own label map: its SAM mask ("refined"), its
  coarse mask ("coarse", the fallback setting for an untrusted SAM mask) or nothing ("none");
  the default selection is the rows that paint (DEFAULT_WHERE). A row that a user's selection
  picks paints its SAM mask when `paints` is "refined", else its coarse mask (an ungated or
  untrusted region has no other mask to give);
- its score is `confidence * sam_iou` for a SAM mask, else `confidence * agreement_iou` (a
  coarse mask of a gated region), or `confidence` when the region was not gated
  (`terms.paint_score`);
- rows are painted in increasing (score, region_id) order, so where masks overlap the highest
  score wins; pixels no selected row covers are IGNORE_INDEX (65535).

Retraining (`PseudoLabelSamples`) prefers people's labels: an image of the round that a review
import covers (storage.human_labels, its latest import) paints those masks, in their order,
instead of its pseudo-labels (`human_selections`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from storage import human_labels
from storage.errors import StorageError
from storage.query import connect, execute, opened
from storage.rle import decode_masks
from storage.terms import COARSE, NONE, REFINED, paint_label_map, paint_score
from storage.workspace import Workspace

if TYPE_CHECKING:
    from storage.query import Store

DEFAULT_WHERE = f"paints <> '{NONE}'"
"""The retraining selection when none is given: every row that paints (the paper: trusted SAM
masks; with the coarse fallback on, also the coarse masks of untrusted gated regions)."""

_ROW_COLUMNS = ("image_id, region_id, class_id, class_name, confidence, sam_iou, agreement_iou, "
                "gated, accepted, paints, image_height, image_width, coarse_rle, refined_rle")


@dataclass
class ImageSelection:
    """The selected rows of one image, ready to paint. Arrays are `(N,)`; masks as RLE counts."""

    image_id: str
    height: int
    width: int
    region_ids: np.ndarray
    class_ids: np.ndarray
    class_names: list[str]
    scores: np.ndarray
    rles: list[str]
    uses_refined: np.ndarray
    rows: list[dict]

    def masks(self) -> np.ndarray:
        """Boolean `(N, H, W)` masks of the rows."""
        return decode_masks(self.rles, self.height, self.width)

    def label_map(self) -> np.ndarray:
        """uint16 `(H, W)` class ids, IGNORE_INDEX where no selected row paints."""
        return paint_label_map(self.height, self.width, self.class_ids, self.scores,
                               self.masks(), self.region_ids)


def _selection(image_id: str, rows: list[dict]) -> ImageSelection:
    uses_refined = np.array([r["paints"] == REFINED for r in rows], dtype=bool)
    scores = np.array([paint_score(r["confidence"], r["paints"], r["sam_iou"],
                                   r["agreement_iou"]) for r in rows], dtype=np.float64)
    return ImageSelection(
        image_id=image_id, height=rows[0]["image_height"], width=rows[0]["image_width"],
        region_ids=np.array([r["region_id"] for r in rows], dtype=np.int64),
        class_ids=np.array([r["class_id"] for r in rows], dtype=np.uint16),
        class_names=[r["class_name"] for r in rows], scores=scores,
        rles=[r["refined_rle"] if u else r["coarse_rle"] for r, u in zip(rows, uses_refined,
                                                                       strict=True)],
        uses_refined=uses_refined, rows=rows)


def select_rows(store: Store, round: int, where: str | None = None,
                params: list | dict | None = None) -> pa.Table:
    """The round's rows matching `where` (SQL over the pseudo_labels view, default
    DEFAULT_WHERE), with the columns needed to paint, ordered by image and region."""
    where = where or DEFAULT_WHERE
    query = (f"SELECT {_ROW_COLUMNS} FROM pseudo_labels WHERE round = {int(round)} "
             f"AND ({where}) ORDER BY image_id, region_id")
    with opened(store) as con:
        return execute(con, query, params)


def select_images(store: Store, round: int, where: str | None = None,
                  params: list | dict | None = None, coarse: bool = False
                  ) -> dict[str, ImageSelection]:
    """{image_id: ImageSelection} for the images with at least one selected row.

    coarse: every selected row paints its coarse mask instead (what SAM was asked to refine;
    the baseline of the pseudo-label quality measure).
    """
    grouped: dict[str, list[dict]] = {}
    for row in select_rows(store, round, where, params).to_pylist():
        if coarse:
            row["paints"] = COARSE
        grouped.setdefault(row["image_id"], []).append(row)
    return {image_id: _selection(image_id, rows) for image_id, rows in grouped.items()}


def human_selections(store: Store, round: int) -> dict[str, ImageSelection]:
    """{image_id: ImageSelection} of the round's images that human labels cover: the masks of
    the latest import covering each, painted in label order (a later label wins overlaps)."""
    query = (f"SELECT h.* FROM ({human_labels.LATEST}) h JOIN images i ON i.image_id = "
             "h.image_id AND i.round = ? AND i.problem IS NULL ORDER BY h.image_id, h.label_id")
    grouped: dict[str, list[dict]] = {}
    with opened(store) as con:
        for row in execute(con, query, [int(round)]).to_pylist():
            grouped.setdefault(row["image_id"], []).append(row)
    return {image_id: ImageSelection(
        image_id=image_id, height=rows[0]["image_height"], width=rows[0]["image_width"],
        region_ids=np.array([r["label_id"] for r in rows], dtype=np.int64),
        class_ids=np.array([r["class_id"] for r in rows], dtype=np.uint16),
        class_names=[r["class_name"] for r in rows], scores=np.ones(len(rows)),
        rles=[r["rle"] for r in rows], uses_refined=np.zeros(len(rows), dtype=bool), rows=rows)
        for image_id, rows in grouped.items()}


class PseudoLabelSamples(Sequence):
    """Retraining samples of one round: `(image uint8 (H, W, 3), label uint16 (H, W))`.

    One sample per image with at least one selected row or a human label (which then replaces
    the image's pseudo-labels: `human_selections`), sorted by image id. `image_loader`
    maps an image id (path relative to the dataset root) to its RGB array. The round must be
    committed unless `require_committed=False`.
    """

    def __init__(self, workspace: Workspace | str, round: int,
                 image_loader: Callable[[str], np.ndarray], where: str | None = None,
                 params: list | dict | None = None, require_committed: bool = True):
        ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        if require_committed and not ws.is_round_committed(round):
            raise StorageError(f"round {round} is not committed in {ws.root}")
        self.round = round
        self.image_loader = image_loader
        with connect(ws) as con:
            self.selections = select_images(con, round, where, params)
            self.selections.update(human_selections(con, round))  # people's labels win
        self.image_ids = sorted(self.selections)

    def __len__(self) -> int:
        return len(self.image_ids)

    def label_map(self, index: int) -> np.ndarray:
        """uint16 `(H, W)` label map of sample `index` (no image loading)."""
        return self.selections[self.image_ids[index]].label_map()

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        selection = self.selections[self.image_ids[index]]
        image = self.image_loader(selection.image_id)
        if image.shape[:2] != (selection.height, selection.width):
            raise StorageError(f"{selection.image_id}: image is {image.shape[:2]}, but its "
                               f"pseudo-labels are {(selection.height, selection.width)}")
        return image, selection.label_map()
