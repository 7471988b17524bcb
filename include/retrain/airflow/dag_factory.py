"""Turns a dataset spec into its Airflow DAGs, one SparkSubmitOperator per stage: `retrain_<ds>`
(ingest to publish, with its trigger Params and alerts) and `score_<ds>` (on the model Asset).

Parse-time wiring only: the operators are in `retrain.airflow.operators`, the template macros
(the run date, computed in one place: `run_date_of`) in `retrain.airflow.macros`. Nothing here
touches Spark, MLflow or a database at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
    chain,
)

from retrain.airflow import dag_ids
from retrain.airflow.alerts import RunNotifier
from retrain.airflow.local_airflow import SPARK_POOL
from retrain.airflow.macros import RUN_DATE, macros
from retrain.airflow.operators import ClaimSensor, LandingSensor, RetrainSparkSubmitOperator
from retrain.airflow.submission import SPARK_CONF, job_env
from retrain.paths import REPO_ROOT
from retrain.spec import GATE_MODES, Spec, SpecError

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "publish")
HISTORY = ("ingest", "validate")  # the stages a `history_from` run takes over many days


def trigger_params(spec: Spec) -> dict[str, Param]:
    """The form of the UI's Trigger button: every field optional, typed, checked on trigger."""

    def optional(kind: str, title: str, description: str, **schema: Any) -> Param:
        return Param(None, type=["null", kind], title=title, description=description, **schema)

    def choice(title: str, description: str, labels: dict[str, str], default: str) -> Param:
        """A dropdown whose empty choice reads as the spec's value (the UI shows `null` else).
        Booleans too: the UI draws a boolean as a switch, which reads "off" when unset."""
        return Param(
            None, type=["null", "string"], enum=[None, *labels], title=title,
            description=description,
            values_display={"null": f"the spec's default ({default})", **labels},
        )  # fmt: skip

    def on_off(title: str, description: str, default: bool) -> Param:
        labels = {"true": "on", "false": "off"}
        return choice(title, description, labels, labels[str(default).lower()])

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
        "gate_mode": choice(
            "Gate mode", "What the gate does with its decision.",
            {mode: f"{mode}: {what}" for mode, what in GATE_MODES.items()}, gate.mode,
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
        "warm_start": on_off(
            "Warm start", "Start from the champion's weights.", model.warm_start
        ),
        "backfill_moves_champion": on_off(
            "Backfill may move the champion", "A backfill registers its models but leaves the "
            "champion, unless this is on.", gate.backfill_moves_champion,
        ),
        "allow_older_champion": on_off(
            "An older model may replace the champion", "A model trained on data ending before "
            "the champion's never replaces it, unless this is on (a deliberate rollback).",
            gate.allow_older_champion,
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


def _stage(
    spec: Spec, stage: str, env: dict[str, str], **kwargs: Any
) -> RetrainSparkSubmitOperator:
    return RetrainSparkSubmitOperator(
        task_id=stage,
        application=str(REPO_ROOT / "jobs" / f"{stage}.py"),
        dataset=spec.name,
        run_date=RUN_DATE,
        run_type="{{ run_type_of(dag_run) }}",
        overrides="{{ overrides_of(params) }}",
        history_from="{{ params.history_from or '' }}" if stage in HISTORY else None,
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


def build_dag(spec: Spec) -> DAG:
    """The `retrain_<dataset>` DAG for one spec."""
    with DAG(
        dag_id=dag_ids(spec.name)[0],
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
        env = job_env()
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
        dag_id=dag_ids(spec.name)[1],
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
        _stage(spec, "score", job_env())
    return dag
