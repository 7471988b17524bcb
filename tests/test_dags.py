"""DAG integrity: every DAG file parses cleanly, cheaply, and wires the stages as designed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
import yaml
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred

from retrain.airflow.dag_factory import STAGES, build_dag, model_asset
from retrain.airflow.local_airflow import SPARK_POOL
from retrain.airflow.macros import PARAM_KEYS, overrides_of, run_date_of, run_type_of
from retrain.airflow.operators import LandingSensor
from retrain.airflow.submission import code_zip
from retrain.paths import REPO_ROOT
from retrain.runs import read_run, update_run
from retrain.spec import SpecError, load_spec
from retrain.tools.local_runs import run_summary


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO_ROOT / "dags"))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "retrain_digits" in dagbag.dags


def test_dags_have_retries_tags_and_one_run_at_a_time(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.max_active_runs == 1
        assert dag.catchup is False
        for task in dag.tasks:
            assert task.execution_timeout is not None
            if task.task_id in STAGES:
                assert task.retries >= 1, task.task_id
                assert task.pool == SPARK_POOL


def test_stages_are_spark_submits_in_pipeline_order_after_the_claim(dagbag):
    dag = dagbag.dags["retrain_digits"]
    claim, landing, *stages = dag.topological_sort()
    assert claim.task_id == "claim" and claim.pool != SPARK_POOL  # waits without a Spark slot
    assert claim.mode == "poke" and claim.timeout == 7200
    assert landing.task_id == "landing" and landing.pool != SPARK_POOL
    assert [t.task_id for t in stages] == list(STAGES)
    history = {t.task_id for t in stages if t.history_from is not None}
    assert history == {"ingest", "validate"}
    for task in stages:
        assert task.claimed == task.dataset == "digits"
        assert isinstance(task, SparkSubmitOperator)
        assert task.application == str(REPO_ROOT / "jobs" / f"{task.task_id}.py")
        assert task.run_date == "{{ run_date_of(params, dag_run) }}"
        assert task.run_type == "{{ run_type_of(dag_run) }}"
        assert {"run_date", "run_type", "overrides", "history_from"} <= set(task.template_fields)
        assert (REPO_ROOT / "jobs" / f"{task.task_id}.py").exists()


def test_publishing_updates_the_model_asset_that_schedules_scoring(dagbag):
    publish = dagbag.dags["retrain_digits"].get_task("publish")
    score_dag = dagbag.dags["score_digits"]
    asset = model_asset(load_spec("digits"))
    assert publish.outlets == [asset]
    assert score_dag.timetable.asset_condition.objects == (asset,)
    assert score_dag.timetable.timetable.expression == "0 0 * * *"  # and daily
    (score,) = score_dag.tasks
    assert score.application == str(REPO_ROOT / "jobs" / "score.py")


def test_a_broken_spec_costs_only_its_own_dags(tmp_path, monkeypatch):
    """Every problem of the broken spec in one import error naming its file; every other
    dataset (a good spec beside it included) keeps its DAGs, the CLI its commands."""
    from airflow.dag_processing.dagbag import DagBag

    good = (REPO_ROOT / "include" / "datasets" / "digits.yaml").read_text()
    (tmp_path / "digits2.yaml").write_text(good.replace("name: digits", "name: digits2", 1))
    broken = (
        good.replace("name: digits", "name: broken", 1)
        .replace("label_column: label", "label_column: nope")
        .replace('start_date: "2026-01-01"', "start_date: someday")
    )
    (tmp_path / "broken.yaml").write_text(broken)
    monkeypatch.setenv("RETRAIN_DATASETS_PATH", str(tmp_path))
    bag = DagBag(str(REPO_ROOT / "dags"))
    assert {"retrain_digits", "retrain_digits2", "score_digits2"} <= set(bag.dags)
    assert not any("broken" in dag_id for dag_id in bag.dags)
    ((where, error),) = bag.import_errors.items()
    assert where.endswith("retrain_dags.py")
    assert f"{tmp_path / 'broken.yaml'}: key 'label_column' is not a column" in error
    assert "key 'start_date' must be a date" in error  # every problem at once
    assert load_spec("digits2").name == "digits2"
    with pytest.raises(SpecError, match="key 'label_column' is not a column"):
        load_spec("broken")


def test_parsing_starts_no_spark_and_imports_no_mlflow_or_gx():
    code = (
        "import sys, time; t = time.time();"
        "from airflow.dag_processing.dagbag import DagBag;"
        f"bag = DagBag({str(REPO_ROOT / 'dags')!r});"
        "assert bag.dags, bag.import_errors;"
        "heavy = [m for m in ('pyspark.sql', 'mlflow', 'great_expectations') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=os.environ | {"RETRAIN_HOME": "/nonexistent-home"},
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_run_date_is_the_param_else_the_day_of_the_data_interval():
    daily, six_am = "0 0 * * *", "0 6 * * *"
    scheduled = SimpleNamespace(  # the interval that ended at midnight on the 2nd
        data_interval_start=datetime(2026, 3, 1, tzinfo=UTC),
        run_after=datetime(2026, 3, 2, tzinfo=UTC),
    )
    ui_trigger = SimpleNamespace(  # no logical date, so Airflow gives it no data interval
        data_interval_start=None, run_after=datetime(2026, 3, 9, 12, tzinfo=UTC)
    )
    assert run_date_of({"run_date": "2026-02-02"}, scheduled, daily) == "2026-02-02"
    assert run_date_of({"run_date": None}, scheduled, daily) == "2026-03-01"
    assert run_date_of({}, ui_trigger, daily) == "2026-03-08"  # the last complete day
    assert run_date_of({}, ui_trigger, six_am) == "2026-03-08"  # [8th 06:00, 9th 06:00)
    early = SimpleNamespace(
        data_interval_start=None, run_after=datetime(2026, 3, 9, 5, tzinfo=UTC)
    )
    assert run_date_of({}, early, six_am) == "2026-03-07"  # the 8th's interval has not ended
    at_midnight = SimpleNamespace(
        data_interval_start=None, run_after=datetime(2026, 3, 9, tzinfo=UTC)
    )
    assert run_date_of({}, at_midnight, daily) == "2026-03-08"
    with pytest.raises(ValueError):
        run_date_of({"run_date": "../../etc"}, scheduled, daily)


def test_the_manual_data_interval_is_airflows_own(dagbag):
    """What `run_date_of` infers for a trigger without a logical date is what Airflow gives a
    trigger with one: the last complete interval."""
    from airflow.serialization.encoders import coerce_to_core_timetable

    timetable = coerce_to_core_timetable(dagbag.dags["retrain_digits"].timetable)
    for moment in (datetime(2026, 3, 9, 12, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)):
        interval = timetable.infer_manual_data_interval(run_after=moment)
        without = SimpleNamespace(data_interval_start=None, run_after=moment)
        assert run_date_of({}, without, "0 0 * * *") == interval.start.date().isoformat()


def test_run_type_reaches_the_job_as_a_plain_word():
    from airflow.utils.types import DagRunType

    assert run_type_of(SimpleNamespace(run_type=DagRunType.BACKFILL_JOB)) == "backfill"
    assert run_type_of(SimpleNamespace(run_type="manual")) == "manual"


def test_params_are_typed_with_titles():
    dag = build_dag(load_spec("digits"))
    assert set(dag.params) == {"run_date", "history_from", "overrides", *PARAM_KEYS}
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema["title"] and param.description and param.schema["type"], name


def test_optional_choices_read_as_the_specs_default_never_null():
    """The UI labels a choice by `values_display` (else it shows `null`), and draws a boolean
    as a switch that reads "off" when unset: every optional choice is a labelled dropdown."""
    spec = load_spec("digits").with_overrides({"model.warm_start": True})
    params = build_dag(spec).params
    schemas = {name: params.get_param(name).schema for name in params}
    choices = {name for name, schema in schemas.items() if "enum" in schema}
    assert choices == {"gate_mode", "warm_start", "backfill_moves_champion",
                       "allow_older_champion"}  # fmt: skip
    assert not [name for name, schema in schemas.items() if "boolean" in schema["type"]]
    for name in choices:
        labels = schemas[name]["values_display"]
        assert set(labels) == {"null", *filter(None, schemas[name]["enum"])}, name
        assert labels["null"].startswith("the spec's default ("), name
    assert schemas["gate_mode"]["values_display"]["null"] == "the spec's default (enforce)"
    assert schemas["gate_mode"]["enum"] == [None, "enforce", "dry_run", "off"]
    assert schemas["warm_start"]["values_display"]["null"] == "the spec's default (on)"
    assert params.get_param("warm_start").resolve("false") == "false"
    overrides = json.loads(overrides_of({"warm_start": "false", "allow_older_champion": None}))
    assert overrides == {"model.warm_start": "false"}
    assert spec.with_overrides(overrides).model.warm_start is False


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_iter": 0}, "0 is less than the minimum of 1"),
        ({"warm_start": True}, "True is not of type"),
        ({"max_iter": "ten"}, "'ten' is not of type"),
        ({"gate_mode": "yolo"}, "'yolo' is not one of"),
        ({"hidden_layers": [64, -1]}, "-1 is less than the minimum of 1"),
        ({"run_date": "../../etc"}, "is not a 'date'"),
        ({"history_from": "last week"}, "is not a 'date'"),
        ({"overrides": {"../x": 1}}, "does not match"),
    ],
)
def test_bad_trigger_values_are_refused_by_the_params(values, message):
    from airflow.sdk.exceptions import ParamValidationError

    params = build_dag(load_spec("digits")).params
    ((name, value),) = values.items()
    with pytest.raises(ParamValidationError, match=message):
        params.get_param(name).resolve(value)


def test_override_keys_with_digits_pass_the_form_as_they_pass_the_cli():
    params = build_dag(load_spec("digits")).params
    assert params.get_param("overrides").resolve({"gate.min_f1": 0.5}) == {"gate.min_f1": 0.5}
    assert load_spec("digits").with_overrides({"gate.min_f1": 0.5}).gate.min_f1 == 0.5


def test_typed_params_become_overrides_that_the_spec_accepts():
    params = {"max_epochs": 50, "gate_mode": "dry_run", "hidden_layers": [32, 16],
              "warm_start": None, "overrides": {"model.tol": 1e-5}}  # fmt: skip
    overrides = json.loads(overrides_of(params))
    assert overrides == {"model.max_epochs": 50, "gate.mode": "dry_run",
                         "model.hidden_layers": [32, 16], "model.tol": 1e-5}  # fmt: skip
    spec = load_spec("digits").with_overrides(overrides)
    assert (spec.model.max_epochs, spec.gate.mode, spec.model.hidden_layers) == (
        50,
        "dry_run",
        (32, 16),
    )


def test_code_zip_holds_the_package_and_is_content_named(home):
    import zipfile

    first = code_zip()
    assert first == code_zip()
    names = set(zipfile.ZipFile(first).namelist())
    assert {
        "retrain/__init__.py",
        "retrain/spec.py",
        "retrain/lake.py",
        "retrain/runs.py",
    } <= names
    assert {
        "retrain/spark/__init__.py",
        "retrain/spark/job.py",
        "retrain/spark/trainer.py",
    } <= names
    assert not [n for n in names if n.startswith(("retrain/airflow/", "retrain/tools/"))]


@pytest.mark.parametrize(
    ("exit_code", "retried"),
    [(1, True), (2, False), (3, False), (4, False), (5, True)],
    ids=["failed", "usage", "spec", "data", "unavailable"],
)
def test_only_transient_failures_are_retried(tmp_path, monkeypatch, exit_code, retried):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from retrain.airflow.operators import RetrainSparkSubmitOperator

    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[1]"}')
    monkeypatch.setenv(
        "PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    )
    job = tmp_path / "job.py"
    job.write_text(f"import sys\nsys.exit({exit_code})\n")
    task = RetrainSparkSubmitOperator(task_id="stage", application=str(job))
    with pytest.raises(AirflowException) as failure:
        task.submit({})
    assert isinstance(failure.value, AirflowFailException) is not retried


class Run:
    run_id = "manual__landing-test"


def _landing(tmp_path, monkeypatch, day: str, **source) -> LandingSensor:
    spec = yaml.safe_load((REPO_ROOT / "include" / "datasets" / "digits.yaml").read_text())
    spec |= {"name": "late", "registered_model_name": "retrain_late"}
    spec["source"] |= {"landing_path": "landing/late", **source}
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "late.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("RETRAIN_DATASETS_PATH", str(tmp_path / "specs"))
    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path / "home"))
    return LandingSensor(dataset="late", run_date=day, task_id="landing")


def test_a_day_that_has_not_landed_waits_deferred_then_fails_or_is_no_data(tmp_path, monkeypatch):
    today = datetime.now(UTC).date()
    yesterday, long_ago = today - timedelta(days=1), date(2026, 3, 1)
    context = {"dag_run": Run()}
    # Before the deadline (tomorrow 23:59 for today's data): deferred, holding no worker slot.
    sensor = _landing(tmp_path, monkeypatch, today.isoformat(), landed_by="23:59")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)
    moment = deferred.value.trigger.serialize()[1]["moment"]
    assert datetime.now(UTC) < moment <= datetime.now(UTC) + timedelta(minutes=5)
    assert deferred.value.method_name == "execute"
    # Past it: one line saying by when, and the run's record says so too.
    sensor = _landing(tmp_path, monkeypatch, long_ago.isoformat())
    with pytest.raises(AirflowFailException, match=r"had not landed by 2026-03-02 06:00 UTC"):
        sensor.execute(context)
    record = read_run("late", long_ago)
    assert (record["state"], record["failed_stage"]) == ("failed", "landing")
    # A feed with empty days: the run ends as no_data, its later stages skipped.
    sensor = _landing(tmp_path, monkeypatch, long_ago.isoformat(), empty_days="skip")
    with pytest.raises(AirflowSkipException, match="no data landed by 2026-03-02 06:00 UTC"):
        sensor.execute(context)
    record = read_run("late", long_ago)
    assert (record["state"], record["landing"]["decision"]) == ("success", "no_data")
    assert run_summary(record)["decision"] == "no_data"  # what `retrain run` and status say
    # Landed (a data file, not only an empty or hidden one): on at once, the no_data gone.
    folder = tmp_path / "home" / "lake" / "landing" / "late" / f"ds={yesterday}"
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").write_text("")
    (folder / "empty.csv").write_text("")
    sensor = _landing(tmp_path, monkeypatch, yesterday.isoformat(), landed_by="23:59")
    with pytest.raises(TaskDeferred):
        sensor.execute(context)
    (folder / "part-0.csv").write_text("id,label\n")
    sensor.execute(context)
    assert read_run("late", yesterday)["landing"] == {"partition": str(folder)}
    update_run("late", yesterday, evaluate={"decision": "publish", "reason": "first model"})
    assert run_summary(read_run("late", yesterday))["decision"] == "publish"
