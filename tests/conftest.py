"""Shared fixtures: one local SparkSession for all unit tests, and a private retrain home."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from retrain.spark import registry
from retrain.spark.job import CONSTRAINT_PROPAGATION
from tests.helpers import EARLIER, LATER, TOY, land_candidate, toy_spec, write_toy_suites

# py4j logs its shutdown after pytest has closed the captured streams.
logging.getLogger("py4j").setLevel(logging.WARNING)
# Every driver JVM the tests start (the session's below, each stage's spark-submit) lives for
# seconds on tiny data: C2's compiler threads would cost more CPU than they ever save, on a
# machine whose two cores run two test workers. The product keeps the JVM's defaults.
C1_ONLY = "-XX:TieredStopAtLevel=1"
os.environ["SPARK_SUBMIT_OPTS"] = f"{os.environ.get('SPARK_SUBMIT_OPTS', '')} {C1_ONLY}".strip()


# The longest files, longest first (each builds a world through the real DAG): with workers
# taking whole files, they start at once and the short files fill in around them.
SLOWEST_FIRST = (
    "test_end_to_end.py",
    "test_feed_end_to_end.py",
    "test_airflow_local.py",
    "test_cluster.py",
    "test_demos_end_to_end.py",
    "test_pii_end_to_end.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: every file's tests stay together and in order


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for every home the tests make (and both workers): the stage drivers'
    class-data-sharing archive is written once per session, not once per home."""
    cache = tmp_path_factory.getbasetemp().parent / "cache"
    os.environ["RETRAIN_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    # Python tasks (the trainer's) run this interpreter, which has numpy and retrain.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("retrain-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config(CONSTRAINT_PROPAGATION, "false")  # as every retrain session (job.spark_session)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A retrain home of the test's own, so nothing touches the developer's state."""
    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RETRAIN_LAKE", raising=False)
    # registry.configure() exports the embedded store's URIs (MLflow does, for subprocesses):
    # setting them first makes the test's end remove them, so no later test or subprocess
    # inherits this test's registry.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("RETRAIN_DATASETS_PATH", str(tmp_path / "specs"))
    write_toy_suites(tmp_path / "specs")
    return tmp_path / "home"


@pytest.fixture
def toy_lake(spark, home):
    """Both days landed for the toy dataset; the gate publishes whatever is at least as good."""
    (home.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    spec = toy_spec(gate={"min_test_rows": 1, "min_f1": 0.5, "bootstrap_resamples": 0})
    for day in (EARLIER, LATER):
        land_candidate(spark, spec, day)
    registry.configure()
    return spec
