"""What every stage job shares: arguments, the run context, the Spark session, failure records.

A job module is `run(spark, ctx) -> dict` over pure functions; `main` does the rest, so a
failure always ends in one readable line in the task log and in the run record.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from pyspark.sql import SparkSession

from retrain.paths import SUCCESS_MARKER, DatasetPaths
from retrain.runs import update_run
from retrain.spec import Spec, SpecError, load_spec

log = logging.getLogger(__name__)
FINAL_STAGE = "publish"


class RetrainError(RuntimeError):
    """An expected failure of a stage, explained for a person (no stack trace needed)."""


@dataclass(frozen=True)
class RunContext:
    """The one dataset, date and run a job works on."""

    spec: Spec
    run_date: date
    run_id: str
    paths: DatasetPaths


def parse_run_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SpecError(f"run date {value!r} is not a date in the form YYYY-MM-DD") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one retrain stage for one date.")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--run-date", required=True, type=str)
    parser.add_argument("--run-id", default="manual")
    parser.add_argument("--overrides", default="{}", help="JSON object of dotted spec keys")
    return parser.parse_args(argv)


def make_context(args: argparse.Namespace) -> RunContext:
    try:
        overrides = json.loads(args.overrides)
    except json.JSONDecodeError as err:
        raise SpecError(f"--overrides is not a JSON object: {err}") from None
    if not isinstance(overrides, dict):
        raise SpecError("--overrides must be a JSON object of dotted spec keys")
    spec = load_spec(args.dataset).with_overrides(overrides)
    return RunContext(
        spec, parse_run_date(args.run_date), args.run_id, DatasetPaths.for_spec(spec)
    )


def spark_session(app_name: str) -> SparkSession:
    """The job's session; master and resources come from spark-submit (the Airflow connection)."""
    return (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.showConsoleProgress", "false")  # no progress bars in task logs
        .config("spark.log.level", "WARN")
        .getOrCreate()
    )


def exists(spark: SparkSession, path: str) -> bool:
    """Whether a path exists, through Hadoop's file system (local, HDFS, s3a alike)."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return bool(fs.exists(hadoop_path))


def is_complete(spark: SparkSession, partition: str) -> bool:
    """Readers trust only partitions whose writer finished (Spark's success marker)."""
    return exists(spark, f"{partition}/{SUCCESS_MARKER}")


def main(
    stage: str,
    run: Callable[[SparkSession, RunContext], dict[str, Any]],
    argv: list[str] | None = None,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        ctx = make_context(args)
    except SpecError as err:
        log.error("%s: %s", stage, err)
        sys.exit(2)
    where = f"{stage} of {ctx.spec.name} for {ctx.run_date}"
    spark = spark_session(f"retrain-{ctx.spec.name}-{stage}")
    started = time.monotonic()
    try:
        section = run(spark, ctx)
    except (RetrainError, SpecError) as err:
        log.error("%s failed: %s", where, err)
        update_run(
            ctx.spec.name,
            ctx.run_date,
            state="failed",
            failed_stage=stage,
            error=str(err),
            run_id=ctx.run_id,
        )
        sys.exit(1)
    except Exception as err:
        log.exception("%s failed unexpectedly", where)
        update_run(
            ctx.spec.name,
            ctx.run_date,
            state="failed",
            failed_stage=stage,
            error=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
            run_id=ctx.run_id,
        )
        raise
    finally:
        spark.stop()
    section["seconds"] = round(time.monotonic() - started, 2)
    state = "success" if stage == FINAL_STAGE else "running"
    update_run(
        ctx.spec.name,
        ctx.run_date,
        **{stage: section},
        state=state,
        failed_stage=None,
        error=None,
        run_id=ctx.run_id,
    )
    log.info("%s done: %s", where, json.dumps(section, default=str)[:2000])
