"""Per-class statistics over 1M pseudo-label rows: the full table vs statistics columns only.

Builds a workspace of `--rows` rows in `--shards` committed shards (real COCO RLEs of
elliptical blobs of `--mask-size`^2 pixels, drawn from a pool of `--pool` masks large enough
that Parquet's dictionary overflows, as with unique masks), and a second copy of the same
rows holding only the non-mask columns. Times the `class_stats` view (counts, areas,
confidence quantiles per round and class) on each; the ratio shows whether the mask columns
are read. Target: ratio <= 1.5. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_storage_query.py [--rows 1000000] [--shards 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ovseg_core.progress import track
from storage.query import connect
from storage.results import figure, record
from storage.rle import encode_masks
from storage.schema import IMAGES_SCHEMA, PSEUDO_LABEL_SCHEMA, STAT_COLUMNS
from storage.views import QUALITY_VIEWS
from storage.workspace import Workspace


def rle_pool(n: int, size: int, rng) -> list[str]:
    yy, xx = np.mgrid[:size, :size]
    masks = []
    for _ in track(range(n), "mask pool"):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(size / 16, size / 3, 2)
        masks.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1)
    return encode_masks(masks, size, size)


def shard_table(shard: int, n: int, pool: pa.Array, size: int, rng) -> pa.Table:
    images_per_shard = max(n // 8, 1)
    image = rng.integers(0, images_per_shard, n)
    refined = rng.random(n) < 0.6
    conf = rng.beta(5, 1.5, n).astype(np.float32)
    cols = {
        "round": np.full(n, 1 + shard % 3, np.int32), "shard": np.full(n, shard, np.int32),
        "image_id": pa.array([f"s{shard}/{i:06d}.jpg" for i in image]),
        "region_id": np.arange(n, dtype=np.int32) % 8,
        "class_id": rng.integers(0, 150, n).astype(np.uint16),
        "class_name": pa.array(["thing"] * n), "confidence": conf,
        "gate_threshold": np.full(n, 0.9, np.float32), "gated": conf > 0.9,
        "sam_iou": pa.array(rng.uniform(0.5, 1, n).astype(np.float32), mask=~refined),
        "agreement_iou": pa.array(rng.uniform(0.3, 1, n).astype(np.float32), mask=~refined),
        "accepted": (conf > 0.9) & refined,
        "paints": pa.array(np.where((conf > 0.9) & refined, "refined", "none")),
        "area": rng.integers(10, size * size // 4, n),
        "refined_area": pa.array(rng.integers(10, size * size // 4, n), mask=~refined),
        "bbox_x0": np.zeros(n, np.int32), "bbox_y0": np.zeros(n, np.int32),
        "bbox_x1": np.full(n, size, np.int32), "bbox_y1": np.full(n, size, np.int32),
        "image_height": np.full(n, size, np.int32), "image_width": np.full(n, size, np.int32),
        "checkpoint_sha256": pa.array(["c" * 64] * n),
        "coarse_rle": pool.take(rng.integers(0, len(pool), n)),
        "refined_rle": pa.array(pool.take(rng.integers(0, len(pool), n)).to_numpy(
            zero_copy_only=False), mask=~refined, type=pa.string()),
    }
    return pa.table(cols, schema=PSEUDO_LABEL_SCHEMA)


def images_table(regions: pa.Table) -> pa.Table:
    ids = regions.group_by(["round", "shard", "image_id"]).aggregate([("region_id", "count")])
    n = ids.num_rows
    return pa.table({
        "round": ids["round"], "shard": ids["shard"], "image_id": ids["image_id"],
        "image_height": np.full(n, 128, np.int32), "image_width": np.full(n, 128, np.int32),
        "gate_threshold": np.full(n, 0.9, np.float32), "checkpoint_sha256": ["c" * 64] * n,
        "n_regions": ids["region_id_count"].cast(pa.int32()),
        "problem": pa.nulls(n, pa.string()),
    }, schema=IMAGES_SCHEMA)


def timed(con, sql: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        con.sql(sql).fetchall()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--mask-size", type=int, default=256)
    parser.add_argument("--pool", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pool = pa.array(rle_pool(args.pool, args.mask_size, rng))
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(f"{tmp}/ws")
        os.makedirs(f"{tmp}/stats")
        per_shard = args.rows // args.shards
        for shard in track(range(args.shards), "writing shards"):
            table = shard_table(shard, per_shard, pool, args.mask_size, rng)
            ws.write_shard_tables(1 + shard % 3, shard, f"k{shard}", table, images_table(table))
            pq.write_table(table.select(list(STAT_COLUMNS)), f"{tmp}/stats/{shard:05d}.parquet")
        full_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(f"{tmp}/ws")
                      for f in fs) / 2**20
        stats_mb = sum(os.path.getsize(f"{tmp}/stats/{f}") for f in os.listdir(f"{tmp}/stats"))
        start = time.perf_counter()
        con = connect(ws)
        connect_s = time.perf_counter() - start
        sql = "SELECT * FROM class_stats"
        full = timed(con, sql, args.repeats)
        stats_con = duckdb.connect()
        stats_con.sql(f"CREATE VIEW pseudo_labels AS SELECT * FROM "
                      f"read_parquet('{tmp}/stats/*.parquet')")
        stats_con.sql(f"CREATE VIEW class_stats AS {QUALITY_VIEWS['class_stats']}")
        stats = timed(stats_con, sql, args.repeats)
        con.close()
        stats_con.close()
    rows = per_shard * args.shards
    print(f"{rows} rows in {args.shards} shards; workspace {full_mb:.0f} MiB "
          f"(masks {args.mask_size}x{args.mask_size}, mean coarse RLE "
          f"{np.mean([len(s) for s in pool.to_pylist()]):.0f} chars), stats-only "
          f"{stats_mb / 2**20:.0f} MiB; median of {args.repeats}")
    print(f"connect(workspace) (manifests + views): {connect_s * 1e3:7.1f} ms")
    print(f"class_stats, full table     : {full * 1e3:7.1f} ms")
    print(f"class_stats, stats columns  : {stats * 1e3:7.1f} ms")
    print(f"ratio full/stats-only: {full / stats:.3f} (target <= 1.5)")
    record("storage_query", [
        figure("class_stats over the full table / over statistics columns only",
               round(full / stats, 3), "x", "<= 1.5"),
        figure("class_stats, full table", round(full * 1e3, 1), "ms"),
        figure("rows", f"{rows} in {args.shards} shards")],
        title="Per-class statistics over many rows")


if __name__ == "__main__":
    main()
