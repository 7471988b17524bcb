"""DAG integrity: every DAG file parses cleanly, cheaply, and wires the stages as designed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from retrain.dag_factory import STAGES, build_dag, code_zip, run_date_of
from retrain.paths import REPO_ROOT
from retrain.spec import load_spec


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
            assert task.retries >= 1, task.task_id
            assert task.execution_timeout is not None


def test_stages_are_spark_submits_in_pipeline_order(dagbag):
    dag = dagbag.dags["retrain_digits"]
    assert [t.task_id for t in dag.topological_sort()] == list(STAGES)
    for task in dag.tasks:
        assert isinstance(task, SparkSubmitOperator)
        assert task.application == str(REPO_ROOT / "jobs" / f"{task.task_id}.py")
        assert "{{ run_date_of(params, dag_run) }}" in task.application_args
        assert (REPO_ROOT / "jobs" / f"{task.task_id}.py").exists()


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


def test_run_date_comes_from_param_then_logical_date_then_run_after():
    logical = SimpleNamespace(
        logical_date=datetime(2026, 3, 1, tzinfo=UTC),
        run_after=datetime(2026, 3, 9, 12, tzinfo=UTC),
    )
    ui_trigger = SimpleNamespace(logical_date=None, run_after=datetime(2026, 3, 9, 12, tzinfo=UTC))
    assert run_date_of({"run_date": "2026-02-02"}, logical) == "2026-02-02"
    assert run_date_of({"run_date": None}, logical) == "2026-03-01"
    assert run_date_of({}, ui_trigger) == "2026-03-09"
    with pytest.raises(ValueError):
        run_date_of({"run_date": "../../etc"}, logical)


def test_params_are_typed_with_titles():
    dag = build_dag(load_spec("digits"))
    for name in ("run_date", "overrides"):
        param = dag.params.get_param(name)
        assert param.schema["title"]
        assert param.description
        assert param.schema["type"]


def test_code_zip_holds_the_package_and_is_content_named(home):
    import zipfile

    first = code_zip()
    assert first == code_zip()
    names = zipfile.ZipFile(first).namelist()
    assert "retrain/spec.py" in names
    assert "retrain/job.py" in names


@pytest.mark.parametrize(
    ("exit_code", "retried"), [(1, True), (2, False), (3, False)], ids=["failed", "spec", "data"]
)
def test_only_transient_failures_are_retried(tmp_path, monkeypatch, exit_code, retried):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from retrain.dag_factory import RetrainSparkSubmitOperator

    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[1]"}')
    monkeypatch.setenv(
        "PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    )
    job = tmp_path / "job.py"
    job.write_text(f"import sys\nsys.exit({exit_code})\n")
    task = RetrainSparkSubmitOperator(task_id="stage", application=str(job))
    with pytest.raises(AirflowException) as failure:
        task.execute({})
    assert isinstance(failure.value, AirflowFailException) is not retried
