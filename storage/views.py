"""SQL of the quality views built on `pseudo_labels` and `images`.

None of them names a mask column, so DuckDB reads only the small Parquet columns.
Confidence bins are 0.05 wide on [0, 1]. `accepted`: SAM's mask is trusted; `paints`: what
paints the label map (refined / coarse / none). Coverage is the painting rows' pixels (SAM
mask area or coarse area, as painted) over all pixels of the round's images; overlapping
regions count twice, so it is an upper bound of the painted share.
"""

PAINTED_AREA = ("CASE paints WHEN 'refined' THEN refined_area WHEN 'coarse' THEN area "
                "ELSE 0 END")
"""Pixels a row paints (before overlaps are resolved)."""

_VIEWS = {
    "class_stats": """
        SELECT round, class_id, any_value(class_name) AS class_name,
               count(*) AS n_regions,
               count(*) FILTER (WHERE gated) AS n_gated,
               count(*) FILTER (WHERE accepted) AS n_accepted,
               count(*) FILTER (WHERE paints = 'refined') AS n_refined,
               count(*) FILTER (WHERE paints = 'coarse') AS n_coarse,
               count(*) FILTER (WHERE clip_class_id <> class_id) AS n_clip_rejected,
               count(DISTINCT image_id) AS n_images,
               sum(area)::BIGINT AS area_sum, avg(area) AS area_mean,
               sum(PAINTED_AREA)::BIGINT AS painted_area_sum,
               min(confidence) AS confidence_min,
               quantile_cont(confidence, 0.1) AS confidence_p10,
               quantile_cont(confidence, 0.5) AS confidence_p50,
               quantile_cont(confidence, 0.9) AS confidence_p90,
               max(confidence) AS confidence_max,
               avg(sam_iou) AS sam_iou_mean, avg(agreement_iou) AS agreement_iou_mean
        FROM pseudo_labels GROUP BY round, class_id ORDER BY round, class_id""",
    "confidence_histogram": """
        SELECT round, class_id, any_value(class_name) AS class_name, bin,
               bin / 20.0 AS bin_lo, (bin + 1) / 20.0 AS bin_hi,
               count(*) AS n_regions, count(*) FILTER (WHERE gated) AS n_gated
        FROM (SELECT *, least(greatest(floor(confidence * 20), 0), 19)::INTEGER AS bin
              FROM pseudo_labels)
        GROUP BY round, class_id, bin ORDER BY round, class_id, bin""",
    "sam_vs_agreement": """
        SELECT round, class_id, any_value(class_name) AS class_name,
               count(*) AS n_refined, count(*) FILTER (WHERE accepted) AS n_accepted,
               avg(sam_iou) AS sam_iou_mean, avg(agreement_iou) AS agreement_iou_mean,
               avg(sam_iou - agreement_iou) AS mean_gap,
               corr(sam_iou, agreement_iou) AS correlation
        FROM pseudo_labels WHERE sam_iou IS NOT NULL AND agreement_iou IS NOT NULL
        GROUP BY round, class_id ORDER BY round, class_id""",
    "class_coverage_drift": """
        WITH px AS (SELECT round, sum(image_height::BIGINT * image_width) AS total_px,
                           count(*) AS n_images FROM images GROUP BY round),
             cls AS (SELECT class_id, any_value(class_name) AS class_name
                     FROM pseudo_labels GROUP BY class_id),
             acc AS (SELECT round, class_id,
                            count(*) FILTER (WHERE paints <> 'none') AS n_painted,
                            sum(PAINTED_AREA) AS px,
                            count(DISTINCT image_id) FILTER (WHERE paints <> 'none') AS n_img
                     FROM pseudo_labels GROUP BY round, class_id),
             cov AS (SELECT px.round, cls.class_id, cls.class_name,
                            coalesce(acc.n_painted, 0) AS n_painted,
                            coalesce(acc.px, 0)::BIGINT AS painted_px,
                            coalesce(acc.px, 0) / px.total_px AS coverage,
                            coalesce(acc.n_img, 0) / px.n_images AS image_fraction
                     FROM px CROSS JOIN cls
                     LEFT JOIN acc ON acc.round = px.round AND acc.class_id = cls.class_id)
        SELECT *, lag(coverage) OVER w AS prev_coverage,
               coverage - lag(coverage) OVER w AS coverage_delta
        FROM cov WINDOW w AS (PARTITION BY class_id ORDER BY round)
        ORDER BY round, class_id""",
    "quarantine": """
        SELECT round, shard, image_id, problem FROM images WHERE problem IS NOT NULL
        ORDER BY round, image_id""",
    "images_without_accepted": """
        SELECT i.round, i.shard, i.image_id, i.n_regions, coalesce(s.n_gated, 0) AS n_gated,
               coalesce(s.n_painted, 0) AS n_painted
        FROM images i LEFT JOIN (
            SELECT round, image_id, count(*) FILTER (WHERE gated) AS n_gated,
                   count(*) FILTER (WHERE paints <> 'none') AS n_painted,
                   bool_or(accepted) AS any_accepted
            FROM pseudo_labels GROUP BY round, image_id) s
          ON s.round = i.round AND s.image_id = i.image_id
        WHERE NOT coalesce(s.any_accepted, false) AND i.problem IS NULL
        ORDER BY i.round, i.image_id""",
}

QUALITY_VIEWS = {name: sql.replace("PAINTED_AREA", PAINTED_AREA) for name, sql in _VIEWS.items()}

BASE_VIEWS = {
    "pseudo_labels": "one row per (round, image, region); clip_class_name names clip_class_id",
    "images": "one row per (round, image), also images without regions",
    "shards": "the committed shards of each round",
    "rounds": "the lineage records (config, row_counts and metrics are JSON)",
    "human_labels": "masks people corrected and imported (ovseg review import)",
}
"""The views storage.query makes from the store's files, with what one row is."""

VIEW_NAMES = (*BASE_VIEWS, *QUALITY_VIEWS)
"""Every view a query can read."""
