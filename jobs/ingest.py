"""Ingest: split the run date's landing partition into the raw and the quarantine partitions.

Rows that cannot be used go to quarantine with a reason, the column and the value at fault
(see `retrain.spark.landing`); the rest to the raw partition, rows with no label among them
(counted as unlabelled, with their own limit). Sensitive columns are protected before
anything else sees them (`retrain.spark.pii`). Every row read lands in exactly one of
the two, both are replaced whole (never half-written), and too many bad rows fail the run
without touching the raw partition.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.errors import DataRejected, RetrainError
from retrain.lake import exists, list_landing, write_partition
from retrain.spark.job import RunContext, main, run_history
from retrain.spark.landing import (
    PROBLEM,
    check_rows,
    explain,
    first_error_line,
    quarantine_rows,
    read_landing,
)
from retrain.spark.validation import load_suite
from retrain.spec import quote

log = logging.getLogger(__name__)
# Days of a history ingested at once: each is a few small jobs that leave cores idle alone.
INGEST_WORKERS = 3


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    """The run date's partition, after the history's days that landed (if it has one)."""
    history = run_history(spark, ctx, "ingest", ingest_day, landed, workers=INGEST_WORKERS)
    return ingest_day(spark, ctx) | history


def landed(spark: SparkSession, ctx: RunContext) -> bool:
    return exists(spark, ctx.paths.landing_partition(ctx.run_date))


def ingest_day(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, source = ctx.spec, ctx.paths.landing_partition(ctx.run_date)
    if not exists(spark, source):
        raise RetrainError(f"no landing partition for {spec.name} on {ctx.run_date}: {source}")
    landing = list_landing(spark, source)
    files = landing.files
    for name, why in landing.skipped.items():
        log.warning("%s: %s %s", source, name, why)
    if not files:
        raise DataRejected(
            f"landing partition {source} of {spec.name} is empty (no data files"
            + "".join(f"; {name}: {why}" for name, why in landing.skipped.items())
            + ")"
        )
    suite = load_suite(spec.name, "raw")
    try:
        checked = check_rows(read_landing(spark, spec, source, files), spec, suite).cache()
        rows_read = checked.count()
    except RetrainError:
        raise
    except Exception as err:  # a damaged file surfaces as a Spark error on the first read
        raise DataRejected(f"cannot read {source}: {first_error_line(err)}") from None
    try:
        return _split_and_write(ctx, checked, rows_read, len(files)) | {
            "skipped_files": landing.skipped
        }
    finally:
        checked.unpersist()  # a later read of the same path must not be served from this cache


def _split_and_write(ctx: RunContext, checked: DataFrame, rows_read: int, files: int) -> dict:
    spec, source = ctx.spec, ctx.paths.landing_partition(ctx.run_date)
    if rows_read == 0:
        raise DataRejected(f"landing partition {source} of {spec.name} is empty (no rows)")
    quarantined = quarantine_rows(checked, spec)
    reasons = [
        # With sensitive columns the example values are ciphertext: no use in a message.
        {**row.asDict(), "file": row["file"].rsplit("/", 1)[-1]}
        | ({"value": None} if spec.sensitive else {})
        for row in quarantined.groupBy("reason")
        .agg(
            F.count("*").alias("count"),
            F.first("value").alias("value"),
            F.first("source_file").alias("file"),
        )
        .orderBy(F.desc("count"), "reason")
        .collect()
    ]
    rows_quarantined = sum(r["count"] for r in reasons)
    write_partition(quarantined, ctx.paths.quarantine(ctx.run_date), files=1)
    bad_fraction = rows_quarantined / rows_read
    if bad_fraction > spec.max_bad_fraction:
        raise DataRejected(
            f"{rows_quarantined} of {rows_read} rows in {source} cannot be used "
            f"({bad_fraction:.1%} > max_bad_fraction {spec.max_bad_fraction:.1%}): "
            f"{explain(reasons)}; all of them are in {ctx.paths.quarantine(ctx.run_date)}"
        )
    valid = checked.where(F.col(PROBLEM).isNull()).select(*[quote(c) for c in spec.stored_columns])
    rows_valid = rows_read - rows_quarantined
    rows_unlabelled = valid.where(F.col(quote(spec.label_column)).isNull()).count()
    if rows_valid and rows_unlabelled / rows_valid > spec.max_unlabelled_fraction:
        raise DataRejected(
            f"{rows_unlabelled} of {rows_valid} usable rows in {source} have no "
            f"{spec.label_column} ({rows_unlabelled / rows_valid:.1%} > max_unlabelled_fraction "
            f"{spec.max_unlabelled_fraction:.1%}): is the label column filled on this day?"
        )
    write_partition(valid, ctx.paths.raw(ctx.run_date))
    return {
        "source": source,
        "files": files,
        "rows_read": rows_read,
        "rows_valid": rows_valid,
        "rows_unlabelled": rows_unlabelled,
        "rows_quarantined": rows_quarantined,
        "quarantine_reasons": {r["reason"]: r["count"] for r in reasons},
    }


if __name__ == "__main__":
    main("ingest", run)
