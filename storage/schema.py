"""The store's table schemas, declared once; every write is cast to them.

`pseudo_labels`: one row per (round, image, region). Masks are COCO RLE *compressed counts*
strings (pycocotools' `counts`), at the image's full size `(image_height, image_width)`; the
size is not repeated inside the mask columns. Mask columns come last so that statistics
queries (which never name them) read only the small columns.

`images`: one row per (round, image), also for images with no region at all, so that "images
with no accepted region" is answerable and rows written equal rows read.
"""

from __future__ import annotations

import pyarrow as pa

from storage.terms import IGNORE_INDEX, PAINTS  # noqa: F401  (the schema's terms)

SCHEMA_VERSION = 4
"""Bumped on any change of the columns below; stored in every file's metadata and manifest entry.
Readers refuse shards of another version (`storage.query.connect`)."""


MASK_COLUMNS = ("coarse_rle", "refined_rle")


def _metadata(table: str) -> dict[bytes, bytes]:
    return {b"ovseg.table": table.encode(), b"ovseg.schema_version": str(SCHEMA_VERSION).encode()}


PSEUDO_LABEL_SCHEMA = pa.schema(
    [
        pa.field("round", pa.int32(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),  # path relative to the dataset root
        pa.field("region_id", pa.int32(), nullable=False),  # 0.. within the image
        pa.field("class_id", pa.uint16(), nullable=False),
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("confidence", pa.float32(), nullable=False),  # region confidence in [0, 1]
        pa.field("gate_threshold", pa.float32(), nullable=False),
        pa.field("gated", pa.bool_(), nullable=False),  # confidence passed the gate
        pa.field("sam_iou", pa.float32()),  # SAM's predicted IoU; null if not gated
        pa.field("agreement_iou", pa.float32()),  # IoU(coarse, SAM mask); null if not gated
        pa.field("accepted", pa.bool_(), nullable=False),  # SAM's mask is trusted
        pa.field("paints", pa.string(), nullable=False),  # one of PAINTS
        pa.field("clip_class_id", pa.uint16()),  # CLIP's class of the crop; null if unchecked
        pa.field("area", pa.int64(), nullable=False),  # coarse mask pixels
        pa.field("refined_area", pa.int64()),  # SAM mask pixels; null if not gated
        pa.field("bbox_x0", pa.int32(), nullable=False),  # XYXY of the coarse region, pixels
        pa.field("bbox_y0", pa.int32(), nullable=False),
        pa.field("bbox_x1", pa.int32(), nullable=False),
        pa.field("bbox_y1", pa.int32(), nullable=False),
        pa.field("image_height", pa.int32(), nullable=False),
        pa.field("image_width", pa.int32(), nullable=False),
        pa.field("checkpoint_sha256", pa.string(), nullable=False),  # the producing checkpoint
        pa.field("coarse_rle", pa.string(), nullable=False),  # COCO RLE counts, (H, W) mask
        pa.field("refined_rle", pa.string()),  # SAM's mask, trusted or not; null if not gated
    ],
    metadata=_metadata("pseudo_labels"),
)

IMAGES_SCHEMA = pa.schema(
    [
        pa.field("round", pa.int32(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("image_height", pa.int32(), nullable=False),
        pa.field("image_width", pa.int32(), nullable=False),
        pa.field("gate_threshold", pa.float32(), nullable=False),
        pa.field("checkpoint_sha256", pa.string(), nullable=False),
        pa.field("n_regions", pa.int32(), nullable=False),
        pa.field("problem", pa.string()),  # why the file could not be read; null if it was
    ],
    metadata=_metadata("images"),
)

HUMAN_LABELS_VERSION = 1
"""Version of HUMAN_LABEL_SCHEMA (its files are separate from the shards: SCHEMA_VERSION does not
cover them); stored in each file's metadata."""

HUMAN_LABEL_SCHEMA = pa.schema(
    [
        pa.field("round", pa.int32(), nullable=False),  # the round whose export was reviewed
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("label_id", pa.int32(), nullable=False),  # 0.. within the image and import
        pa.field("class_id", pa.uint16(), nullable=False),
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("image_height", pa.int32(), nullable=False),
        pa.field("image_width", pa.int32(), nullable=False),
        pa.field("area", pa.int64(), nullable=False),  # mask pixels
        pa.field("annotator", pa.string()),  # who, as the tool exported it; null if unknown
        pa.field("annotated_at", pa.string()),  # when, as the tool exported it; null if unknown
        pa.field("tool", pa.string(), nullable=False),  # "cvat" or "label-studio"
        pa.field("source_file", pa.string(), nullable=False),  # the imported file, as named
        pa.field("source_sha256", pa.string(), nullable=False),  # its content hash: the key
        pa.field("imported_at", pa.string(), nullable=False),  # ISO-8601 UTC
        pa.field("rle", pa.string(), nullable=False),  # COCO RLE counts, (H, W) mask
    ],
    metadata={b"ovseg.table": b"human_labels",
              b"ovseg.human_labels_version": str(HUMAN_LABELS_VERSION).encode()},
)
"""`human_labels`: one row per corrected mask of one imported review file (storage.human_labels)."""

STAT_COLUMNS = tuple(n for n in PSEUDO_LABEL_SCHEMA.names if n not in MASK_COLUMNS)
"""Every pseudo-label column except the masks."""


def conform(table: pa.Table, schema: pa.Schema, provenance: dict[str, str]) -> pa.Table:
    """Cast `table` to `schema` (same column names, in order) and attach file provenance.

    Raises ValueError when a column is missing or a value does not fit its type.
    """
    if table.schema.names != schema.names:
        raise ValueError(f"columns {table.schema.names} do not match the schema {schema.names}")
    table = table.cast(schema)
    metadata = dict(schema.metadata or {})
    metadata.update({f"ovseg.{k}".encode(): str(v).encode() for k, v in provenance.items()})
    return table.replace_schema_metadata(metadata)
