"""The operators of a retrain DAG: the claim, the landing sensor and the Spark stage, with the
links from a finished stage to its results (the decision report, the Data Docs).

The stage operator is Airflow's SparkSubmitOperator plus the retry contract with the job
(`retrain.errors`): bad arguments, a broken spec or a rejected day exit 2, 3 or 4 and are not
retried.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from functools import partial
from typing import Any

import attrs
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, BaseOperatorLink, BaseSensorOperator
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRuntimeError,
    AirflowSkipException,
)

from retrain import results
from retrain.airflow import claims
from retrain.airflow.jvm_archive import driver_archive
from retrain.airflow.submission import code_zip, export_secret
from retrain.errors import NO_RETRY_EXITS
from retrain.lake import data_objects
from retrain.paths import DatasetPaths
from retrain.runs import (
    FAILED,
    NO_DATA,
    SUCCESS,
    RunRecord,
    read_run,
    stage_outcome,
    update_run,
)
from retrain.spec import Spec, load_spec

PROGRESS_FD_ENV = "RETRAIN_PROGRESS_FD"  # set by `retrain run`: where its terminal is


def _airflow_state(ti: Any) -> Any:
    """`claims.take`'s view of Airflow: a run's state through the Task SDK, None if no such run."""

    def state_of(dag_id: str, run_id: str) -> str | None:
        try:
            state = ti.get_dagrun_state(dag_id, run_id)
        except AirflowRuntimeError as err:
            if (err.error.detail or {}).get("status_code") == 404:
                return None
            raise
        return getattr(state, "value", state)  # the enum's str() is 'DagRunState.RUNNING'

    return state_of


def _this_run(context: Any, run_date: str) -> dict[str, str]:
    dag_run = context["dag_run"]
    return {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "run_date": run_date}


def _take_claim(dataset: str, context: Any, run_date: str) -> dict[str, Any] | None:
    """`claims.take` for this task's run; a claim file retrain did not write fails the task
    without retries (a person must look at it), with the file and what to do."""
    try:
        return claims.take(dataset, _this_run(context, run_date), _airflow_state(context["ti"]))
    except claims.ClaimError as err:
        raise AirflowFailException(str(err)) from None


class ClaimSensor(BaseSensorOperator):
    """The retrain DAG's first task: waits, outside the Spark pool, until no other run of the
    dataset is active, then claims it for this run (see `claims`)."""

    template_fields = ("run_date",)

    def __init__(self, *, dataset: str, run_date: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset, self.run_date = dataset, run_date
        self._waiting_for: str | None = None  # say so once per run waited for

    def poke(self, context: Any) -> bool:
        holder = _take_claim(self.dataset, context, self.run_date)
        if holder and holder["run_id"] != self._waiting_for:
            self._waiting_for = holder["run_id"]
            waiting = f"waiting: {claims.describe(self.dataset, holder)}"
            progress(self.log, f"{'claim':<10} {self.run_date}", waiting)
        return holder is None


def landing_deadline(spec: Spec, run_date: date) -> datetime:
    """Until when a day's partition may land: `source.landed_by` (UTC) on the next day."""
    hour, minute = map(int, spec.source.landed_by.split(":"))
    return datetime.combine(run_date + timedelta(days=1), dt_time(hour, minute), tzinfo=UTC)


class LandingSensor(BaseOperator):
    """Waits for the run date's landing partition, deferred between looks (no worker slot
    held), until the spec's `source.landed_by` on the next day; then fails, or, where the spec
    says a feed has empty days (`source.empty_days: skip`), ends the run as `no_data`."""

    template_fields = ("run_date",)

    def __init__(
        self, *, dataset: str, run_date: str, look_every: timedelta = timedelta(minutes=5),
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.dataset, self.run_date, self.look_every = dataset, run_date, look_every

    def execute(self, context: Any, event: Any = None) -> None:
        spec, run_date = load_spec(self.dataset), date.fromisoformat(self.run_date)
        partition = DatasetPaths.for_spec(spec).landing_partition(run_date)
        report = partial(progress, self.log, f"{'landing':<10} {self.run_date}")
        if data_objects(partition):  # a data file landed (not empty, not hidden)
            update_run(spec.name, run_date, landing={"partition": partition})
            return
        deadline, now = landing_deadline(spec, run_date), datetime.now(UTC)
        if now < deadline:
            if event is None:  # say it once, not at every look
                report(f"waiting for {partition} until {deadline:%Y-%m-%d %H:%M} UTC")
            self.defer(
                trigger=DateTimeTrigger(moment=min(now + self.look_every, deadline)),
                method_name="execute",
            )
        run_id = context["dag_run"].run_id
        if spec.source.empty_days == "skip":
            why = f"no data landed by {deadline:%Y-%m-%d %H:%M} UTC (source.empty_days: skip)"
            update_run(spec.name, run_date, run_id=run_id, state=SUCCESS, failed_stage=None,
                       error=None, landing={"decision": NO_DATA, "reason": why})  # fmt: skip
            report(f"no_data: {why}")
            raise AirflowSkipException(why)
        error = (
            f"the landing partition of {spec.name} for {run_date} had not landed by "
            f"{deadline:%Y-%m-%d %H:%M} UTC (source.landed_by): {partition}"
        )
        update_run(spec.name, run_date, run_id=run_id, state=FAILED, failed_stage="landing",
                   error=error, landing={"partition": partition})  # fmt: skip
        report(f"failed: {error}")
        raise AirflowFailException(error)


def progress(log: Any, prefix: str, message: str) -> None:
    """A task's start, wait or end: in its task log, and on the terminal of a `retrain run`
    (which sends Airflow's and Spark's own output to a log file)."""
    line = f"{prefix}  {message}"
    log.info(line)
    if fd := os.environ.get(PROGRESS_FD_ENV):
        os.write(int(fd), f"{datetime.now():%H:%M:%S}  {line}\n".encode())


@attrs.define
class ResultLink(BaseOperatorLink):
    """A button on a finished stage's task: one of its results (`RunRecord.links`), served by
    the results service (`retrain.results`). Its URL is worked out on the worker when the task
    ends and kept in XCom, so the API server needs no access to the lake."""

    title: str
    kind: str  # a key of `RunRecord.links`

    @property
    def name(self) -> str:
        return self.title

    @property
    def xcom_key(self) -> str:
        return f"_link_retrain_{self.kind}"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        record = RunRecord.read(operator.dataset, date.fromisoformat(operator.run_date))
        return results.links(record).get(self.kind, "") if record.run_id == ti_key.run_id else ""


# The results each stage links to, as (button title, kind).
STAGE_LINKS = {
    "validate": (("Data Docs: raw suite", "raw"), ("Data Docs: drift", "drift")),
    "preprocess": (("Data Docs: features suite", "features"),),
    "evaluate": (("Decision report", "report"),),
}


class RetrainSparkSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator that runs one stage of a dataset's run and ships the current shared
    package, and knows which failures to retry: a rejected day or a broken spec fails the same
    way every time, so it fails at once. A stage of a retrain run (`claimed`) runs only while
    its run holds the dataset's claim.

    The stage's inputs are templated fields (`run_date`, `run_type`, `overrides`, and
    `history_from` for the stages that take a history); the job's arguments are built from them
    when it runs. Without a `dataset` it runs `application` with `application_args` as they are
    (a Spark job of ours that is not a stage)."""

    template_fields = (
        *SparkSubmitOperator.template_fields, "run_date", "run_type", "overrides", "history_from"
    )  # fmt: skip

    def __init__(
        self,
        *,
        dataset: str | None = None,
        run_date: str | None = None,
        run_type: str = "manual",
        overrides: str = "{}",
        history_from: str | None = None,
        claimed: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset, self.run_date, self.run_type = dataset, run_date, run_type
        self.overrides, self.history_from, self.claimed = overrides, history_from, claimed
        self.operator_extra_links = tuple(
            ResultLink(title, kind) for title, kind in STAGE_LINKS.get(self.task_id, ())
        )

    def job_args(self, run_id: str) -> list[str]:
        """The stage job's arguments (`retrain.spark.job.parse_args`)."""
        history = [] if self.history_from is None else ["--history-from", self.history_from]
        return [
            "--dataset", self.dataset, "--run-date", self.run_date, "--run-id", run_id,
            "--run-type", self.run_type, "--overrides", self.overrides, *history,
        ]  # fmt: skip

    def execute(self, context: Any) -> None:
        if self.dataset is None or self.run_date is None:
            self.submit(context)
            return
        dataset, run_date = self.dataset, self.run_date
        self.application_args = self.job_args(context["run_id"])
        if self.claimed:  # a stage cleared alone, without its claim task, must not overlap
            holder = _take_claim(self.claimed, context, run_date)
            if holder:
                raise AirflowException(claims.describe(self.claimed, holder))
        started = time.monotonic()
        report = partial(progress, self.log, f"{self.task_id:<10} {run_date}")
        report("started")
        try:
            self.submit(context)
        except BaseException:
            record = read_run(dataset, date.fromisoformat(run_date))
            mine = record.get("run_id") == context["run_id"] and record.get("error")
            why = record["error"] if mine else "see the task log"
            report(f"failed after {time.monotonic() - started:.1f} s: {why}")
            raise
        section = read_run(dataset, date.fromisoformat(run_date)).get(self.task_id) or {}
        report(
            f"done in {time.monotonic() - started:.1f} s: {stage_outcome(self.task_id, section)}"
        )

    def submit(self, context: Any) -> None:
        """spark-submit the job with the current shared package and the key; a deterministic
        rejection (`NO_RETRY_EXITS`) is not retried."""
        self.py_files = code_zip()
        export_secret()
        try:
            with driver_archive() as classes:
                self.log.info("the driver JVM's classes: %s", classes)
                super().execute(context)
        except AirflowException as err:
            exit_code = re.search(r"Error code is: (\d+)", str(err))
            if exit_code and int(exit_code.group(1)) in NO_RETRY_EXITS:
                raise AirflowFailException(
                    f"{self.task_id} rejected the run (exit {exit_code.group(1)}); retrying "
                    "cannot help: see the error above and the run record"
                ) from None
            raise
