"""Turns a dataset spec into its Airflow DAGs, one SparkSubmitOperator per stage: `retrain_<ds>`
(ingest to publish, with its trigger Params and alerts) and `score_<ds>` (on the model Asset).

Nothing here touches Spark, MLflow or a database at parse time. The run date is computed in
one place (`run_date_of`): the `run_date` Param, else the day of the run's data interval.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from functools import partial
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    BaseOperator,
    BaseSensorOperator,
    Connection,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    ObjectStoragePath,
    Param,
    chain,
)
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowRuntimeError,
    AirflowSkipException,
)
from airflow.sdk.log import mask_secret
from croniter import croniter

from retrain import claims, keys
from retrain.alerts import RunNotifier
from retrain.errors import NO_RETRY_EXITS
from retrain.local_airflow import SPARK_POOL
from retrain.paths import REPO_ROOT, DatasetPaths, home
from retrain.runs import read_run, stage_outcome, update_run
from retrain.spec import GATE_MODES, Spec, SpecError, load_spec

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "publish")
HISTORY = ("ingest", "validate")  # the stages a `history_from` run takes over many days
RUN_DATE = "{{ run_date_of(params, dag_run) }}"  # see `run_date_of`
PROGRESS_FD_ENV = "RETRAIN_PROGRESS_FD"  # set by `retrain run`: where its terminal is
SPARK_CONF = {
    # Each stage is a short application: no UI, few shuffle partitions for daily-sized data.
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    # Native BLAS (OpenBLAS through dev.ludovic.netlib) runs one thread per task: Spark already
    # runs a task per core. Without a system libblas, netlib falls back to Java's vector API.
    "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
}
PACKAGE_DIR = Path(__file__).resolve().parent


# Typed trigger Params and the spec key each overrides for one run.
PARAM_KEYS = {
    "gate_mode": "gate.mode",
    "max_epochs": "model.max_epochs",
    "learning_rate": "model.learning_rate",
    "max_iter": "model.max_iter",
    "hidden_layers": "model.hidden_layers",
    "step_size": "model.step_size",
    "warm_start": "model.warm_start",
    "backfill_moves_champion": "gate.backfill_moves_champion",
    "allow_older_champion": "gate.allow_older_champion",
}


def overrides_of(params: dict[str, Any]) -> str:
    """The run's spec overrides as JSON: the typed Params that are set, then `overrides`."""
    chosen = {
        key: params[name] for name, key in PARAM_KEYS.items() if params.get(name) is not None
    }
    return json.dumps(chosen | dict(params.get("overrides") or {}))


def run_date_of(params: dict[str, Any], dag_run: Any, schedule: str) -> str:
    """The date a run processes, as YYYY-MM-DD: the `run_date` Param, else the start of the
    run's data interval. A scheduled run or a backfill covers the interval that ended; Airflow
    gives a manual trigger the last complete interval before it, and a trigger without a logical
    date none at all, so that one is inferred the same way: the Trigger button processes the day
    that has landed, as the schedule does."""
    if params.get("run_date"):
        return date.fromisoformat(params["run_date"]).isoformat()
    if dag_run.data_interval_start is not None:
        return dag_run.data_interval_start.date().isoformat()
    end = croniter(schedule, dag_run.run_after + timedelta(microseconds=1)).get_prev(datetime)
    return croniter(schedule, end).get_prev(datetime).date().isoformat()


def code_zip() -> str:
    """The shared package as a zip for `--py-files`, named by its content so it is never stale."""
    sources = sorted(PACKAGE_DIR.glob("*.py"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    target = home() / "code" / f"retrain-{digest}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for path in sources:
                archive.write(path, f"retrain/{path.name}")
        partial.replace(target)
    return str(target)


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


class ClaimSensor(BaseSensorOperator):
    """The retrain DAG's first task: waits, outside the Spark pool, until no other run of the
    dataset is active, then claims it for this run (see `claims`)."""

    template_fields = ("run_date",)

    def __init__(self, *, dataset: str, run_date: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset, self.run_date = dataset, run_date
        self._waiting_for: str | None = None  # say so once per run waited for

    def poke(self, context: Any) -> bool:
        run = _this_run(context, self.run_date)
        holder = claims.take(self.dataset, run, _airflow_state(context["ti"]))
        if holder and holder["run_id"] != self._waiting_for:
            self._waiting_for = holder["run_id"]
            waiting = f"waiting: {claims.describe(self.dataset, holder)}"
            progress(self.log, f"{'claim':<10} {self.run_date}", waiting)
        return holder is None


def landing_deadline(spec: Spec, run_date: date) -> datetime:
    """Until when a day's partition may land: `source.landed_by` (UTC) on the next day."""
    hour, minute = map(int, spec.source.landed_by.split(":"))
    return datetime.combine(run_date + timedelta(days=1), dt_time(hour, minute), tzinfo=UTC)


def has_landed(partition: str) -> bool:
    """Whether a landing partition holds a data file (a name Spark reads, not empty)."""
    local = "://" not in partition or partition.startswith("file:")
    folder = Path(partition.removeprefix("file:")) if local else ObjectStoragePath(partition)
    try:
        return any(
            f.is_file() and not f.name.startswith(("_", ".")) and f.stat().st_size > 0
            for f in folder.iterdir()
        )
    except FileNotFoundError:
        return False


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
        if has_landed(partition):  # (and no earlier run's no_data decision stays)
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
            update_run(spec.name, run_date, run_id=run_id, state="success", failed_stage=None,
                       error=None, landing={"decision": "no_data", "reason": why})  # fmt: skip
            report(f"no_data: {why}")
            raise AirflowSkipException(why)
        error = (
            f"the landing partition of {spec.name} for {run_date} had not landed by "
            f"{deadline:%Y-%m-%d %H:%M} UTC (source.landed_by): {partition}"
        )
        update_run(spec.name, run_date, run_id=run_id, state="failed", failed_stage="landing",
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


class RetrainSparkSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator that ships the current shared package and knows which failures to
    retry: a rejected day or a broken spec fails the same way every time, so it fails at once.
    A stage of a retrain run (`claimed`) runs only while its run holds the dataset's claim."""

    def __init__(self, *, claimed: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claimed = claimed

    def execute(self, context: Any) -> None:
        args = self.application_args
        dataset, run_date = args[args.index("--dataset") + 1], args[args.index("--run-date") + 1]
        if self.claimed:  # a stage cleared alone, without its claim task, must not overlap
            run = _this_run(context, run_date)
            holder = claims.take(self.claimed, run, _airflow_state(context["ti"]))
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
        rejection (exit 2 or 3) is not retried."""
        self.py_files = code_zip()
        export_secret()
        try:
            super().execute(context)
        except AirflowException as err:
            exit_code = re.search(r"Error code is: (\d+)", str(err))
            if exit_code and int(exit_code.group(1)) in NO_RETRY_EXITS:
                raise AirflowFailException(
                    f"{self.task_id} rejected the run (exit {exit_code.group(1)}); retrying "
                    "cannot help: see the error above and the run record"
                ) from None
            raise


def export_secret() -> None:
    """Put the `retrain_key` connection's password, if there is one, in this task's environment.

    spark-submit inherits it from there: never on its command line (which `ps` shows, and which
    `env_vars` would become on YARN and Kubernetes). Either way it is masked in task logs.
    """
    try:
        password = Connection.get(keys.CONNECTION_ID).password
    except AirflowNotFoundException:
        password = None
    if password:
        os.environ[keys.ENV] = password
    if os.environ.get(keys.ENV):
        mask_secret(os.environ[keys.ENV], keys.ENV)


def _job_env() -> dict[str, str]:
    """What a stage's driver needs beyond the worker's own environment."""
    return {
        "RETRAIN_PROJECT_DIR": str(REPO_ROOT),
        "RETRAIN_HOME": str(home()),
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "OPENBLAS_NUM_THREADS": "1",  # the driver's tasks in local mode (see SPARK_CONF)
    }


def trigger_params(spec: Spec) -> dict[str, Param]:
    """The form of the UI's Trigger button: every field optional, typed, checked on trigger."""

    def optional(kind: str, title: str, description: str, **schema: Any) -> Param:
        return Param(None, type=["null", kind], title=title, description=description, **schema)

    model, gate = spec.model, spec.gate
    return {
        "run_date": optional(
            "string", "Run date", "Date to process (YYYY-MM-DD). Empty: the run's data "
            "interval, i.e. the last complete day, as a scheduled run would.", format="date",
        ),
        "history_from": optional(
            "string", "History from", "Ingest and validate every day that landed from this date "
            "up to the run date first, in one Spark application per stage, each day as its "
            "daily run would; then train, evaluate and publish once, for the run date. Empty: "
            "the run date alone.", format="date",
        ),
        "gate_mode": Param(
            None, type=["null", "string"], enum=[None, *GATE_MODES], title="Gate mode",
            description=f"enforce: publish only a better model; dry_run: decide, never publish; "
            f"off: always publish. Empty: the spec's ({gate.mode}).",
        ),
        "max_epochs": optional(
            "integer", "Epochs at most", f"Passes over the training rows (adam solver); "
            f"training stops earlier when the validation loss stops falling. Empty: the "
            f"spec's ({model.max_epochs}).", minimum=1, maximum=100_000,
        ),
        "learning_rate": optional(
            "number", "Learning rate", f"Adam's step size (adam solver). Empty: the spec's "
            f"({model.learning_rate}).", exclusiveMinimum=0, maximum=1,
        ),
        "max_iter": optional(
            "integer", "Training iterations", f"l-bfgs and gd solvers. Empty: the spec's "
            f"({model.max_iter}).", minimum=1, maximum=100_000,
        ),
        "hidden_layers": optional(
            "array", "Hidden layers", f"Sizes of the hidden layers. Empty: the spec's "
            f"({list(model.hidden_layers)}).", items={"type": "integer", "minimum": 1},
            minItems=1, maxItems=8,
        ),
        "step_size": optional(
            "number", "Step size", f"Learning rate (gd solver). Empty: the spec's "
            f"({model.step_size}).", exclusiveMinimum=0, maximum=10,
        ),
        "warm_start": optional(
            "boolean", "Warm start", f"Start from the champion's weights. Empty: the spec's "
            f"({model.warm_start}).",
        ),
        "backfill_moves_champion": optional(
            "boolean", "Backfill may move the champion", "A backfill registers its models but "
            f"leaves the champion, unless this is on. Empty: the spec's "
            f"({gate.backfill_moves_champion}).",
        ),
        "allow_older_champion": optional(
            "boolean", "An older model may replace the champion", "A model trained on data "
            "ending before the champion's never replaces it, unless this is on (a deliberate "
            f"rollback). Empty: the spec's ({gate.allow_older_champion}).",
        ),
        "overrides": Param(
            {}, type="object", title="Other spec overrides",
            description='Dotted spec keys for this run only, e.g. {"model.tol": 1e-5}. '
            "Unknown keys and wrong types fail the run before Spark starts.",
            propertyNames={"pattern": r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$"},
        ),
    }  # fmt: skip


def model_asset(spec: Spec) -> Asset:
    """The dataset's published model: updated by every successful publish."""
    return Asset(name=spec.registered_model_name, uri=f"retrain://{spec.name}/model")


def _stage(spec: Spec, stage: str, env: dict[str, str], **kwargs: Any) -> SparkSubmitOperator:
    return RetrainSparkSubmitOperator(
        task_id=stage,
        application=str(REPO_ROOT / "jobs" / f"{stage}.py"),
        application_args=[
            "--dataset",
            spec.name,
            "--run-date",
            RUN_DATE,
            "--run-id",
            "{{ run_id }}",
            "--run-type",
            "{{ run_type_of(dag_run) }}",
            "--overrides",
            "{{ overrides_of(params) }}",
            *(["--history-from", "{{ params.history_from or '' }}"] if stage in HISTORY else []),
        ],  # fmt: skip
        conn_id="spark_default",
        name=f"retrain-{spec.name}-{stage}",
        conf=SPARK_CONF,
        env_vars=env,
        pool=SPARK_POOL,
        **kwargs,
    )


DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=2),
}


def run_type_of(dag_run: Any) -> str:
    """manual, scheduled, backfill or asset_triggered (the enum's value, not its repr)."""
    return getattr(dag_run.run_type, "value", dag_run.run_type)


def macros(spec: Spec) -> dict[str, Any]:
    """The template functions of a dataset's DAGs."""
    return {
        "run_date_of": partial(run_date_of, schedule=spec.schedule),
        "overrides_of": overrides_of,
        "run_type_of": run_type_of,
    }


def build_dag(spec: Spec) -> DAG:
    """The `retrain_<dataset>` DAG for one spec."""
    with DAG(
        dag_id=f"retrain_{spec.name}",
        description=f"Retrain the {spec.name} model daily: ingest, validate, preprocess, "
        "train, evaluate, publish.",
        doc_md=spec.description or None,
        schedule=CronDataIntervalTimetable(spec.schedule, timezone="UTC"),
        start_date=datetime.fromisoformat(spec.start_date),
        catchup=False,
        max_active_runs=1,
        tags=["retrain", spec.name],
        user_defined_macros=macros(spec),
        default_args=DEFAULT_ARGS,
        params=trigger_params(spec),
        on_failure_callback=RunNotifier(spec.name, spec.schedule, failed=True),
        on_success_callback=RunNotifier(spec.name, spec.schedule, failed=False),  # rejections
    ) as dag:
        env = _job_env()
        claim = ClaimSensor(
            dataset=spec.name,
            run_date=RUN_DATE,
            task_id="claim",
            poke_interval=15,
            timeout=float(os.environ.get("RETRAIN_CLAIM_WAIT_SECONDS", "7200")),
            retries=0,  # timing out means the other run is still at work
        )
        stages = [
            _stage(
                spec,
                stage,
                env,
                claimed=spec.name,
                outlets=[model_asset(spec)] if stage == "publish" else [],
            )
            for stage in STAGES
        ]
        landing = LandingSensor(dataset=spec.name, run_date=RUN_DATE, task_id="landing")
        chain(claim, landing, *stages)  # claim >> landing >> ingest >> ... >> publish
    return dag


class BrokenSpecs(DAG):
    """Stands for the specs that do not load. Airflow validates each DAG of a file before it
    takes it: this one fails, so the UI shows the errors as an import error of the DAG file,
    and the file's other DAGs (the datasets whose specs load) are kept."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(dag_id="retrain_broken_specs", schedule=None)
        self.errors = errors

    def validate(self) -> None:
        lines = [f"{len(self.errors)} dataset spec(s) do not load; their DAGs are missing:"]
        raise SpecError("\n".join([*lines, *self.errors.values()]))


def build_score_dag(spec: Spec) -> DAG:
    """`score_<dataset>`: the champion's predictions for a day, after every publish and daily."""
    with DAG(
        dag_id=f"score_{spec.name}",
        description=f"Score the day's validated {spec.name} rows with the champion.",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(spec.schedule, timezone="UTC"),
            assets=[model_asset(spec)],
        ),
        start_date=datetime.fromisoformat(spec.start_date),
        catchup=False,
        max_active_runs=1,
        tags=["retrain", "score", spec.name],
        user_defined_macros=macros(spec),
        default_args=DEFAULT_ARGS,
        params={"run_date": trigger_params(spec)["run_date"]},
    ) as dag:
        _stage(spec, "score", _job_env())
    return dag
