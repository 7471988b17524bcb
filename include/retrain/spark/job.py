"""The stage runner: arguments, the run context, the Spark session, histories, failure records.

A job module is `run(spark, ctx) -> dict` over pure functions; `main` does the rest, so a
failure always ends in one readable line in the task log and in the run record.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from pyspark.sql import SparkSession

from retrain.errors import EXIT_BAD_SPEC, RetrainError, SpecError, exit_code_of
from retrain.lake import write_seconds
from retrain.paths import DatasetPaths, parse_date, window_dates
from retrain.runs import FAILED, HISTORY, RUNNING, SUCCESS, read_run, update_run
from retrain.spec import Spec, load_spec

log = logging.getLogger(__name__)
FINAL_STAGE = "publish"
SCORE_STAGE = "score"


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


CONSTRAINT_PROPAGATION = "spark.sql.constraintPropagation.enabled"


def spark_session(app_name: str) -> SparkSession:
    """The job's session; master and resources come from spark-submit (the Airflow connection)."""
    return (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.showConsoleProgress", "false")  # no progress bars in task logs
        .config("spark.log.level", "WARN")
        # Catalyst infers constraints from every filter over every column: with a wide feed's
        # row rules (hundreds of predicates) that inference grew past the driver's heap while
        # planning (new-dataset on 31 columns x 4 days of scikit-learn's breast cancer set).
        .config(CONSTRAINT_PROPAGATION, "false")
        .getOrCreate()
    )


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
        update_run(ctx.spec.name, day.run_date, **{stage: section}, state=HISTORY,
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
    return record.get("run_id") == ctx.run_id and record.get("state") == HISTORY


def _record_failure(ctx: RunContext, stage: str, error: str) -> None:
    if stage == SCORE_STAGE:
        update_run(ctx.spec.name, ctx.run_date, score={"error": error})
    else:
        update_run(ctx.spec.name, ctx.run_date, state=FAILED, failed_stage=stage,
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
        sys.exit(exit_code_of(err))
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
        "compute": round(stopping - started - sum(write_seconds), 2),  # reads included
        "write": round(sum(write_seconds), 2),
        "session_stop": round(stopped - stopping, 2),
    }
    if stage == SCORE_STAGE:  # scoring reports into the day's record, not its retrain state
        update_run(ctx.spec.name, ctx.run_date, **{stage: section})
    else:
        state = SUCCESS if stage == FINAL_STAGE else RUNNING
        update_run(ctx.spec.name, ctx.run_date, **{stage: section}, state=state,
                   failed_stage=None, error=None, run_id=ctx.run_id)  # fmt: skip
    log.info("%s done: %s", where, json.dumps(section, default=str)[:2000])
