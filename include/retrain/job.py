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
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from retrain.paths import SUCCESS_MARKER, VALIDATED_MARKER, DatasetPaths, parse_date, window_dates
from retrain.runs import EXIT_BAD_SPEC, EXIT_DATA_REJECTED, EXIT_FAILED, read_run, update_run
from retrain.spec import Spec, SpecError, load_spec

log = logging.getLogger(__name__)
FINAL_STAGE = "publish"
SCORE_STAGE = "score"
# Seconds this process spent in `write_partition`; Spark is lazy, so this includes computing
# whatever plan feeds the write that was not already materialised (cached) before it.
_write_seconds: list[float] = []


class RetrainError(RuntimeError):
    """An expected failure of a stage, explained for a person (no stack trace needed)."""


class DataRejected(RetrainError):
    """The day's data cannot be used as it is: a retry would only fail the same way."""


@dataclass(frozen=True)
class RunContext:
    """The one dataset, date and run a job works on."""

    spec: Spec
    run_date: date
    run_id: str
    paths: DatasetPaths
    run_type: str = "manual"  # Airflow's: manual, scheduled, backfill, asset_triggered
    # Ingest and validate: first every earlier day from this one (a history, `run_history`).
    history_from: date | None = None


def parse_run_date(value: str) -> date:
    try:
        return parse_date(value)
    except ValueError:
        raise SpecError(f"run date {value!r} is not a date in the form YYYY-MM-DD") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one retrain stage for one date.")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--run-date", required=True, type=str)
    parser.add_argument("--run-id", default="manual")
    parser.add_argument("--run-type", default="manual")
    parser.add_argument("--overrides", default="{}", help="JSON object of dotted spec keys")
    parser.add_argument("--history-from", default="", help="first day of a history (YYYY-MM-DD)")
    return parser.parse_args(argv)


def make_context(args: argparse.Namespace) -> RunContext:
    try:
        overrides = json.loads(args.overrides)
    except json.JSONDecodeError as err:
        raise SpecError(f"--overrides is not a JSON object: {err}") from None
    if not isinstance(overrides, dict):
        raise SpecError("--overrides must be a JSON object of dotted spec keys")
    spec = load_spec(args.dataset).with_overrides(overrides)
    paths = DatasetPaths.for_spec(spec)
    run_date = parse_run_date(args.run_date)
    history_from = parse_run_date(args.history_from) if args.history_from else None
    if history_from is not None and history_from > run_date:
        raise SpecError(f"the history starts ({history_from}) after the run date ({run_date})")
    return RunContext(spec, run_date, args.run_id, paths, args.run_type, history_from=history_from)


def spark_session(app_name: str) -> SparkSession:
    """The job's session; master and resources come from spark-submit (the Airflow connection)."""
    return (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.showConsoleProgress", "false")  # no progress bars in task logs
        .config("spark.log.level", "WARN")
        .getOrCreate()
    )


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """(Hadoop FileSystem, Path) for a path: local, HDFS and s3a alike."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _fs(spark, path)
    return bool(fs.exists(hadoop_path))


def is_complete(spark: SparkSession, partition: str) -> bool:
    """Readers trust only partitions whose writer finished (Spark's success marker)."""
    recover_partition(spark, partition)
    return exists(spark, f"{partition}/{SUCCESS_MARKER}")


def is_validated(spark: SparkSession, partition: str) -> bool:
    """A raw partition that passed its critical expectations (the only kind training reads)."""
    recover_partition(spark, partition)
    return exists(spark, f"{partition}/{VALIDATED_MARKER}")


def set_validated(spark: SparkSession, partition: str, validated: bool) -> None:
    fs, marker = _fs(spark, f"{partition}/{VALIDATED_MARKER}")
    if validated:
        fs.create(marker, True).close()
    else:
        fs.delete(marker, False)


@dataclass(frozen=True)
class Landing:
    """A landing partition's data files, and every other entry with why it is not read."""

    files: list[str]
    skipped: dict[str, str]


def list_landing(spark: SparkSession, partition: str) -> Landing:
    """The files Spark will read from a partition, and every entry it will not, by name.

    A symbolic link (the partition folder or a file in it) is refused (DataRejected), wherever
    it points: it could make ingest copy any file the job can read, the generated key say, into
    the lake. Object stores have no links; a local lake is checked on the driver's disk, where
    Hadoop's local file system would follow the link without a word.
    """
    fs, folder = _fs(spark, partition)
    plain = "landing files must be plain files inside the lake"
    if _local_link(folder):
        raise DataRejected(f"landing folder {partition} is a symbolic link: {plain}")
    files, skipped = [], {}
    for status in fs.listStatus(folder):
        path = status.getPath()
        name = path.getName()
        if _local_link(path):
            raise DataRejected(f"landing file {name} in {partition} is a symbolic link: {plain}")
        if name in (SUCCESS_MARKER, VALIDATED_MARKER):
            continue
        if name.startswith(("_", ".")):
            skipped[name] = "not read: Spark skips names that start with _ or ."
        elif status.isDirectory():
            skipped[name] = "not read: a sub-folder (put the day's files in the ds= folder)"
        elif status.getLen() == 0:
            skipped[name] = "empty (0 bytes)"
        else:
            files.append(path.toString())
    return Landing(sorted(files), dict(sorted(skipped.items())))


def landed_days(spark: SparkSession, root: str) -> dict[date, str]:
    """The `ds=YYYY-MM-DD` partition folders under a landing root, by day, oldest first."""
    fs, folder = _fs(spark, root)
    if not fs.exists(folder):
        return {}
    found = {}
    for status in fs.listStatus(folder):
        name = status.getPath().getName()
        if status.isDirectory() and name.startswith("ds="):
            try:
                found[parse_date(name.removeprefix("ds="))] = status.getPath().toString()
            except ValueError:
                continue  # not a partition of ours
    return dict(sorted(found.items()))


def data_files(spark: SparkSession, partition: str) -> list[str]:
    """The data files of a partition (see `list_landing`)."""
    return list_landing(spark, partition).files


def _local_link(path: Any) -> bool:
    """A Hadoop path on the local disk that is a symbolic link."""
    uri = path.toUri()
    return uri.getScheme() in (None, "file") and Path(uri.getPath()).is_symlink()


def first_line(spark: SparkSession, file: str) -> str:
    """The first line of a text file, read on the driver (a CSV header): decompressed as Spark
    decompresses it (by the file's ending: .gz, .bz2, ...), without a byte-order mark."""
    jvm = spark.sparkContext._jvm
    fs, path = _fs(spark, file)
    stream = fs.open(path)
    codecs = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration()
    )
    codec = codecs.getCodec(path)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
    try:
        return (reader.readLine() or "").removeprefix("\ufeff")
    finally:
        reader.close()


def _hidden(partition: str, kind: str, token: str = "*") -> str:
    """A hidden sibling of a partition: `.ds=D.staging-TOKEN` (being written) or
    `.ds=D.old-TOKEN` (the previous content, moved aside during the swap)."""
    parent, name = partition.rstrip("/").rsplit("/", 1)
    return f"{parent}/.{name}.{kind}-{token}"


def recover_partition(spark: SparkSession, partition: str) -> None:
    """Finish or undo a swap that a crash interrupted, so the partition is whole, old or new.

    A missing partition with a complete staging folder (its writer got as far as the success
    marker) takes that; else it takes its moved-aside previous content. Leftovers are removed
    once the partition is in place. Call before reading or replacing a partition.
    """
    fs, target = _fs(spark, partition)
    jvm_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path

    def hidden(kind: str) -> list[Any]:
        found = fs.globStatus(jvm_path(_hidden(partition, kind))) or []
        return sorted((s.getPath() for s in found), key=lambda p: p.toString())

    if not fs.exists(target):
        complete = [p for p in hidden("staging") if fs.exists(jvm_path(p, SUCCESS_MARKER))]
        for candidate in [*complete[-1:], *hidden("old")[-1:]]:
            if fs.rename(candidate, target):
                log.warning("recovered %s from %s after an interrupted swap", partition,
                            candidate.getName())  # fmt: skip
                break
    if fs.exists(target):
        for leftover in hidden("old"):
            fs.delete(leftover, True)


def _swap_in(spark: SparkSession, staging: str, partition: str, token: str) -> None:
    """Replace `partition` by the complete folder `staging`: old aside, new in, old gone."""
    fs, target = _fs(spark, partition)
    jvm_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path
    trash = jvm_path(_hidden(partition, "old", token))
    had_old = fs.exists(target)
    if had_old and not fs.rename(target, trash):
        raise RetrainError(f"could not move the old {partition} aside")
    if not fs.rename(jvm_path(staging), target):
        raise RetrainError(f"could not move the new {partition} into place")
    if had_old:
        fs.delete(trash, True)


def write_partition(frame: DataFrame, partition: str, files: int | None = None) -> None:
    """Replace a partition as a whole: write beside it, then swap by renames.

    A crash mid-write leaves the old partition in place and only a hidden staging folder; a
    crash mid-swap is finished or undone by `recover_partition` at the next start. Readers never
    see a half-written partition (they also require the success marker).
    """
    spark = frame.sparkSession
    started = time.monotonic()
    recover_partition(spark, partition)
    token = uuid.uuid4().hex[:8]
    staging = _hidden(partition, "staging", token)
    (frame.coalesce(files) if files else frame).write.parquet(staging)
    _swap_in(spark, staging, partition, token)
    _write_seconds.append(time.monotonic() - started)


def save_model(spark: SparkSession, model: Any, path: str) -> None:
    """Save a Spark ML model beside `path`, then swap it in: never half a model in place."""
    recover_partition(spark, path)
    token = uuid.uuid4().hex[:8]
    staging = _hidden(path, "staging", token)
    model.write().save(staging)
    fs, _ = _fs(spark, staging)
    fs.create(spark.sparkContext._jvm.org.apache.hadoop.fs.Path(staging, SUCCESS_MARKER)).close()
    _swap_in(spark, staging, path, token)


@contextmanager
def counting_spark_jobs(spark: SparkSession, group: str) -> Iterator[list[int]]:
    """Tag the Spark jobs run inside the block; the yielded list gets their count at the end."""
    context = spark.sparkContext
    context.setJobGroup(group, group)
    count: list[int] = []
    try:
        yield count
    finally:
        count.append(len(context.statusTracker().getJobIdsForGroup(group)))
        context.setLocalProperty("spark.jobGroup.id", None)


HISTORY_STATE = "history"  # a day ingested and validated by a history run, no model of its own


def run_history(
    spark: SparkSession,
    ctx: RunContext,
    stage: str,
    run_day: Callable[[SparkSession, RunContext], dict[str, Any]],
    applies: Callable[[SparkSession, RunContext], bool],
    *,
    workers: int = 1,
) -> dict[str, Any]:
    """Run a stage for every day of `ctx`'s history before the run date, oldest first, in this
    Spark session (`workers` days at once where days do not depend on each other): each day's
    outcome goes to its own run record, as a daily run's would. A day that fails is recorded
    and skipped (daily runs would have failed it too); days to which the stage does not apply
    (nothing landed; an earlier stage failed) are passed over. Returns the summary for the run
    date's record ({} without a history)."""
    if ctx.history_from is None:
        return {}
    days = window_dates(ctx.run_date, (ctx.run_date - ctx.history_from).days + 1)[:-1]
    todo = [replace(ctx, run_date=d, history_from=None) for d in days]
    todo = [day for day in todo if applies(spark, day)]
    failed: dict[str, str] = {}

    def attempt(day: RunContext) -> None:
        try:
            section = run_day(spark, day)
        except RetrainError as err:
            log.warning("%s of %s for %s failed: %s", stage, ctx.spec.name, day.run_date, err)
            _record_failure(day, stage, str(err))
            failed[day.run_date.isoformat()] = str(err)
            return
        update_run(ctx.spec.name, day.run_date, **{stage: section}, state=HISTORY_STATE,
                   failed_stage=None, error=None, run_id=ctx.run_id)  # fmt: skip

    with ThreadPoolExecutor(workers) as pool:  # Spark takes jobs from several threads
        for done, _ in enumerate(pool.map(attempt, todo), 1):
            if done % 10 == 0:
                log.info("%s history of %s: %d of %d days", stage, ctx.spec.name, done, len(todo))
    return {
        "history": {"from": ctx.history_from.isoformat(), "days": len(todo) - len(failed),
                    "failed": dict(sorted(failed.items())), "passed_over": len(days) - len(todo)}
    }  # fmt: skip


def in_history(ctx: RunContext) -> bool:
    """Whether the day's earlier stages ran in this history run and did not fail."""
    record = read_run(ctx.spec.name, ctx.run_date)
    return record.get("run_id") == ctx.run_id and record.get("state") == HISTORY_STATE


def _record_failure(ctx: RunContext, stage: str, error: str) -> None:
    if stage == SCORE_STAGE:
        update_run(ctx.spec.name, ctx.run_date, score={"error": error})
    else:
        update_run(ctx.spec.name, ctx.run_date, state="failed", failed_stage=stage,
                   error=error, run_id=ctx.run_id)  # fmt: skip


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
        sys.exit(EXIT_BAD_SPEC)
    where = f"{stage} of {ctx.spec.name} for {ctx.run_date}"
    starting = time.monotonic()
    spark = spark_session(f"retrain-{ctx.spec.name}-{stage}")
    started = time.monotonic()
    try:
        section = run(spark, ctx)
    except (RetrainError, SpecError) as err:
        log.error("%s failed: %s", where, err)
        _record_failure(ctx, stage, str(err))
        if isinstance(err, SpecError):
            sys.exit(EXIT_BAD_SPEC)
        sys.exit(EXIT_DATA_REJECTED if isinstance(err, DataRejected) else EXIT_FAILED)
    except Exception as err:
        log.exception("%s failed unexpectedly", where)
        first = str(err).splitlines()[0] if str(err) else ""
        _record_failure(ctx, stage, f"{type(err).__name__}: {first}")
        raise
    finally:
        stopping = time.monotonic()
        try:
            spark.stop()
        except Exception:  # e.g. a JVM already gone: keep the exit code that was decided
            log.warning("%s: stopping Spark failed", where, exc_info=True)
        stopped = time.monotonic()
    section["seconds"] = round(stopping - started, 2)
    # Where the stage's time went; the bench sets these against the Airflow task's duration.
    section["timings"] = {
        "session_start": round(started - starting, 2),  # JVM and SparkSession
        "compute": round(stopping - started - sum(_write_seconds), 2),  # reads included
        "write": round(sum(_write_seconds), 2),
        "session_stop": round(stopped - stopping, 2),
    }
    if stage == SCORE_STAGE:  # scoring reports into the day's record, not its retrain state
        update_run(ctx.spec.name, ctx.run_date, **{stage: section})
    else:
        state = "success" if stage == FINAL_STAGE else "running"
        update_run(ctx.spec.name, ctx.run_date, **{stage: section}, state=state,
                   failed_stage=None, error=None, run_id=ctx.run_id)  # fmt: skip
    log.info("%s done: %s", where, json.dumps(section, default=str)[:2000])
