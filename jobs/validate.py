"""Validate: the raw suite, then volume and drift against the training window, inside Spark.

Both run on one cached frame; the raw suite is a single GX run with BOOLEAN_ONLY results, rerun
with SUMMARY only when something failed, to say what. A partition that passes gets a
`_VALIDATED` marker: training windows and drift references read only such partitions, so a day
that failed never reaches a model. Results and the GX Data Docs of every run are kept under the
retrain home.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from functools import partial, reduce
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.errors import DataRejected, RetrainError
from retrain.lake import (
    is_complete,
    is_validated,
    read_partition,
    set_validated,
    write_object,
)
from retrain.paths import window_dates
from retrain.results import publish_docs
from retrain.runs import run_folder, update_run
from retrain.spark.drift import drift_stats, drift_suite
from retrain.spark.job import RunContext, counting_spark_jobs, in_history, main, run_history
from retrain.spark.validation import build_docs, load_suite, validate

log = logging.getLogger(__name__)


def reference_days(spark: SparkSession, ctx: RunContext) -> list[date]:
    """Earlier days of the run's window whose raw partitions passed validation."""
    earlier = window_dates(ctx.run_date, ctx.spec.window_days)[:-1]
    return [d for d in earlier if is_validated(spark, ctx.paths.raw(d))]


def check_drift(
    spark: SparkSession, ctx: RunContext, frame: DataFrame, deferred_docs: list[Any] | None
) -> dict[str, Any]:
    days = reference_days(spark, ctx)
    if not days:
        return {"reference_days": [], "skipped": "no earlier validated day in the window"}
    parts = [read_partition(spark, ctx.paths.raw(d)).withColumn("ds", F.lit(str(d))) for d in days]
    reference = reduce(DataFrame.unionByName, parts).cache()  # read by four jobs
    try:
        reference_rows = [r["count"] for r in reference.groupBy("ds").count().collect()]
        stats = drift_stats(frame, reference, ctx.spec, reference_rows)
    finally:
        reference.unpersist()
    suite, row = drift_suite(ctx.spec, stats, len(days))
    section = validate(
        pd.DataFrame([row]), suite, ctx.paths.gx_root(), ctx.run_date.isoformat(), deferred_docs
    )
    return {"reference_days": [d.isoformat() for d in days], **stats, **section}


def _save(ctx: RunContext, name: str, section: dict[str, Any]) -> dict[str, Any]:
    """Keep the full GX result beside the run record in the lake; the record keeps the
    summary."""
    result = section.pop("result", None)
    if result is not None:
        write_object(
            f"{run_folder(ctx.spec.name, ctx.run_date)}/validation_{name}.json",
            json.dumps(result, indent=2, default=str),
        )
    return section


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    """The run date's raw partition, after the history's days that ingest kept (if any); the
    history's Data Docs pages are built together at its end."""
    pages: list[Any] = []
    history = run_history(
        spark, ctx, "validate", partial(validate_day, deferred_docs=pages),
        lambda _, day: in_history(day),
    )  # fmt: skip
    build_docs(ctx.paths.gx_root(), pages)
    try:
        return validate_day(spark, ctx) | history
    finally:  # a failed day's pages too: they say why
        publish_docs(ctx.spec.name)


def validate_day(
    spark: SparkSession, ctx: RunContext, deferred_docs: list[Any] | None = None
) -> dict[str, Any]:
    spec, raw = ctx.spec, ctx.paths.raw(ctx.run_date)
    if not is_complete(spark, raw):
        raise RetrainError(f"raw partition {raw} is missing or incomplete; run ingest first")
    set_validated(spark, raw, False)  # a rerun must earn the marker again
    frame = read_partition(spark, raw).cache()  # one scan serves the suite and the drift pass
    try:
        with counting_spark_jobs(spark, f"validate-{spec.name}") as spark_jobs:
            raw_section = _save(
                ctx,
                "raw",
                validate(
                    frame,
                    load_suite(spec.name, "raw"),
                    ctx.paths.gx_root(),
                    ctx.run_date.isoformat(),
                    deferred_docs,
                ),
            )
            drift = _save(ctx, "drift", check_drift(spark, ctx, frame, deferred_docs))
    finally:
        frame.unpersist()
    critical = raw_section["failed_critical"] + drift.get("failed_critical", [])
    section = {
        **raw_section,
        "success": not critical,
        "failed_critical": critical,
        "failed_warning": raw_section["failed_warning"] + drift.get("failed_warning", []),
        "drift": drift,
        "spark_jobs": spark_jobs[0],
    }
    for page in (raw_section["data_docs"], drift.get("data_docs")):
        if page:
            log.info("Data Docs: %s", page)
    if critical:
        failed = raw_section if raw_section["failed_critical"] else drift
        docs = failed.get("data_docs")
        update_run(spec.name, ctx.run_date, validate=section)
        raise DataRejected(
            f"validation of {raw} failed: {'; '.join(critical[:5])}"
            + (f" (and {len(critical) - 5} more)" if len(critical) > 5 else "")
            + f"; Data Docs: {docs}"
        )
    set_validated(spark, raw, True)
    return section


if __name__ == "__main__":
    main("validate", run)
