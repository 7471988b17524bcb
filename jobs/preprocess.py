"""Preprocess: build the run's feature partition from the training window, in Spark SQL.

The window is the last `window_days` validated raw partitions up to the run date (never later
ones, never a day that failed validation); `retrain.spark.features` builds the table. The features
suite checks it before it is written; a critical failure leaves the previous partition in place.
"""

from __future__ import annotations

import logging
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.errors import DataRejected, RetrainError
from retrain.lake import is_validated, read_partition, write_partition
from retrain.paths import window_dates
from retrain.results import publish_docs
from retrain.spark.features import build_features
from retrain.spark.job import RunContext, main
from retrain.spark.validation import load_suite, validate
from retrain.spec import quote

log = logging.getLogger(__name__)


def summarize(features: DataFrame) -> dict[str, Any]:
    """Rows per split and an order-independent content hash, in one pass."""
    row_hash = F.xxhash64(*[F.col(quote(c)) for c in features.columns])
    row = features.agg(
        F.count("*").alias("rows"),
        *[
            F.sum((F.col("split") == s).cast("long")).alias(s)
            for s in ("train", "validation", "test")
        ],
        # Summing row hashes folded to 31 bits cannot overflow and ignores row order.
        F.sum(F.pmod(row_hash, F.lit(2**31 - 1))).alias("content_hash"),
    ).first()
    return {
        "rows": row["rows"],
        "rows_by_split": {s: row[s] or 0 for s in ("train", "validation", "test")},
        "content_hash": str(row["content_hash"]),
    }


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, paths = ctx.spec, ctx.paths
    if not is_validated(spark, paths.raw(ctx.run_date)):
        raise RetrainError(f"raw partition {paths.raw(ctx.run_date)} has not passed validation")
    suite = load_suite(spec.name, "features")
    days = [
        d
        for d in window_dates(ctx.run_date, spec.window_days)
        if is_validated(spark, paths.raw(d))
    ]
    parts = [read_partition(spark, paths.raw(d)).withColumn("ds", F.lit(str(d))) for d in days]
    features = build_features(spark, reduce(DataFrame.unionByName, parts), spec).cache()
    try:
        checked = validate(features, suite, paths.gx_root(), ctx.run_date.isoformat())
        checked.pop("result")
        publish_docs(spec.name)
        log.info("Data Docs (features): %s", checked["data_docs"])
        if not checked["success"]:
            raise DataRejected(
                f"the features of {spec.name} for {ctx.run_date} failed their suite: "
                f"{'; '.join(checked['failed_critical'][:5])}; Data Docs: {checked['data_docs']}"
            )
        write_partition(features, paths.features(ctx.run_date))
    finally:
        features.unpersist()
    written = read_partition(spark, paths.features(ctx.run_date))
    return {"window": [d.isoformat() for d in days], **summarize(written), "validation": checked}


if __name__ == "__main__":
    main("preprocess", run)
