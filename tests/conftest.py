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
from tests.helpers import EARLIER, LATER, TOY, land_candidate, toy_spec, write_toy_suites

# py4j logs its shutdown after pytest has closed the captured streams.
logging.getLogger("py4j").setLevel(logging.WARNING)


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
