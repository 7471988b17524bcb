"""Preprocess: build the run's feature partition from the training window, in Spark SQL.

The window is the last `window_days` complete raw partitions up to the run date (never later
ones). Rows are deduplicated by id (latest day wins), features cast to double (nulls are left
for the model pipeline's imputer), and each id is assigned to train, validation or test by a
salted hash of the id, so an id keeps its split on every day.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.job import RetrainError, RunContext, is_complete, main
from retrain.spec import Spec, quote

HASH_BUCKETS = 10_000


def window_dates(run_date: date, window_days: int) -> list[date]:
    """The dates of the training window, oldest first, ending at the run date."""
    return [run_date - timedelta(days=n) for n in range(window_days - 1, -1, -1)]


def build_features(spark: SparkSession, window: DataFrame, spec: Spec) -> DataFrame:
    """Dedupe by id, cast features and assign the split. `window` has the raw columns plus `ds`."""
    split = spec.split
    features = ", ".join(f"CAST({quote(c)} AS DOUBLE) AS {quote(c)}" for c in spec.feature_columns)
    bucket = f"pmod(xxhash64({split.seed}, {quote(spec.id_column)}), {HASH_BUCKETS})"
    train_cut = round(split.train * HASH_BUCKETS)
    validation_cut = round((split.train + split.validation) * HASH_BUCKETS)
    return spark.sql(
        f"""
        WITH ranked AS (
          SELECT *, row_number() OVER (PARTITION BY {quote(spec.id_column)}
                                       ORDER BY ds DESC) AS copy
          FROM {{window}}
          WHERE {quote(spec.label_column)} IS NOT NULL
        )
        SELECT {quote(spec.id_column)}, {quote(spec.label_column)}, {features}, ds AS source_ds,
               CASE WHEN {bucket} < {train_cut} THEN 'train'
                    WHEN {bucket} < {validation_cut} THEN 'validation'
                    ELSE 'test' END AS split
        FROM ranked WHERE copy = 1
        """,
        window=window,
    )


def summarize(features: DataFrame) -> dict[str, Any]:
    """Rows per split and an order-independent content hash, in one pass."""
    row = features.agg(
        F.count("*").alias("rows"),
        *[
            F.sum((F.col("split") == s).cast("long")).alias(s)
            for s in ("train", "validation", "test")
        ],
        # Summing row hashes folded to 31 bits cannot overflow and ignores row order.
        F.sum(F.pmod(F.xxhash64(*[F.col(c) for c in features.columns]), F.lit(2**31 - 1))).alias(
            "content_hash"
        ),
    ).first()
    return {
        "rows": row["rows"],
        "rows_by_split": {s: row[s] or 0 for s in ("train", "validation", "test")},
        "content_hash": str(row["content_hash"]),
    }


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, paths = ctx.spec, ctx.paths
    if not is_complete(spark, paths.raw(ctx.run_date)):
        raise RetrainError(f"raw partition {paths.raw(ctx.run_date)} is missing or incomplete")
    days = [
        d for d in window_dates(ctx.run_date, spec.window_days) if is_complete(spark, paths.raw(d))
    ]
    parts = [spark.read.parquet(paths.raw(d)).withColumn("ds", F.lit(d.isoformat())) for d in days]
    window = reduce(DataFrame.unionByName, parts)
    features = build_features(spark, window, spec)
    features.write.mode("overwrite").parquet(paths.features(ctx.run_date))
    written = spark.read.parquet(paths.features(ctx.run_date))
    return {"window": [d.isoformat() for d in days], **summarize(written)}


if __name__ == "__main__":
    main("preprocess", run)
