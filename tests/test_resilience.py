"""Stages that fail part-way, through the real RetrainSparkSubmitOperator's spark-submit.

Killed mid-write (as Airflow kills a task on a timeout or "mark failed"): no process of that
submit is left (spark-submit's JVM and the Python driver it started), the previous partition is
intact and readable, and a rerun replaces it whole. Failed on the first try (the day's files not
yet landed, a failure Airflow retries): the retry writes exactly what a clean run writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from retrain.airflow.operators import RetrainSparkSubmitOperator
from retrain.paths import REPO_ROOT
from tests.helpers import GOOD, HEADER, TOY, land

JOB = """
import sys, time
from pyspark.sql import SparkSession
from retrain.lake import write_partition

target, pause = sys.argv[1], float(sys.argv[2])
spark = SparkSession.builder.getOrCreate()
rows = spark.range(100).selectExpr("id", "'new' AS version")
if pause:  # a slow write: each task sleeps inside the JVM while staging (in a filter, which
    # the optimizer cannot prune as it may an unused column: that made the write fast at times)
    rows = rows.repartition(2).where(
        f"reflect('java.lang.Thread', 'sleep', CAST({pause} AS BIGINT)) IS NULL"
    )
write_partition(rows, target)
"""


def processes_with(marker: str) -> list[str]:
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True
    )
    return [
        line for line in listing.stdout.splitlines() if marker in line and "ps -eo" not in line
    ]


def submit(tmp_path: Path, target: Path, pause_ms: int, marker: str) -> RetrainSparkSubmitOperator:
    job = tmp_path / f"slow_write_{marker}.py"
    job.write_text(JOB)
    return RetrainSparkSubmitOperator(
        task_id="ingest", application=str(job), application_args=[str(target), str(pause_ms)],
        conn_id="spark_default", conf={"spark.ui.enabled": "false"}, name=f"kill-{marker}",
    )  # fmt: skip


@pytest.fixture
def spark_env(home, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[2]"}')
    monkeypatch.setenv(
        "PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    )
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    return home


def test_a_task_killed_mid_write_leaves_no_process_and_the_old_partition(
    spark, spark_env, tmp_path
):
    target = spark_env / "lake" / "raw" / "toy" / "ds=2026-01-02"
    spark.range(10).selectExpr("id", "'old' AS version").write.parquet(str(target))
    marker = uuid.uuid4().hex[:12]
    task = submit(tmp_path, target, 120_000, marker)
    failure: list[BaseException] = []

    def execute() -> None:
        try:
            task.submit({})
        except BaseException as err:  # noqa: BLE001 - the kill makes execute fail; keep it
            failure.append(err)

    runner = threading.Thread(target=execute)
    runner.start()
    deadline = time.monotonic() + 180
    while not list(target.parent.glob(".ds=2026-01-02.staging-*")):  # the write has begun
        assert time.monotonic() < deadline and runner.is_alive(), f"no write began: {failure}"
        time.sleep(1)
    assert processes_with(marker)  # the JVM and the Python driver are running
    task.on_kill()
    runner.join(60)
    assert not runner.is_alive() and failure
    time.sleep(2)
    assert processes_with(marker) == []
    old = spark.read.parquet(str(target))
    assert (old.count(), {r.version for r in old.collect()}) == (10, {"old"})

    rerun = submit(tmp_path, target, 0, marker)
    rerun.submit({})
    new = spark.read.parquet(str(target))
    assert (new.count(), {r.version for r in new.collect()}) == (100, {"new"})
    assert processes_with(marker) == []


def ingest_task(day: str) -> RetrainSparkSubmitOperator:
    """The real ingest job, submitted as the stage operator submits it (its arguments given
    whole: `submit` is tested here, not how `execute` builds them)."""
    return RetrainSparkSubmitOperator(
        task_id="ingest", application=str(REPO_ROOT / "jobs" / "ingest.py"),
        application_args=["--dataset", "toy", "--run-date", day], conn_id="spark_default",
        conf={"spark.ui.enabled": "false"}, name="retrain-toy-ingest",
    )  # fmt: skip


def zone_rows(spark, home: Path, zone: str, day: str) -> list:
    """A partition's rows, with the home's own path (in quarantine's source_file) left out."""
    rows = spark.read.parquet(str(home / "lake" / zone / "toy" / f"ds={day}")).collect()
    return sorted(tuple(str(v).replace(str(home), "<home>") for v in row) for row in rows)


def test_a_retry_after_a_failed_first_try_gives_what_a_clean_run_gives(
    spark, spark_env, monkeypatch
):
    day = "2026-01-02"
    (spark_env.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    lines = [HEADER, *GOOD, "7,b", "9,a,11.5,1.0"]  # two rows for quarantine
    # First try: the day's files have not landed yet; a transient failure, so Airflow retries.
    with pytest.raises(AirflowException) as first:
        ingest_task(day).submit({})
    assert not isinstance(first.value, AirflowFailException)
    land(spark_env, lines, day=day)
    ingest_task(day).submit({})  # the retry
    retried = {z: zone_rows(spark, spark_env, z, day) for z in ("raw", "quarantine")}
    # A clean run of the same files in a home of its own.
    clean_home = spark_env.parent / "clean-home"
    monkeypatch.setenv("RETRAIN_HOME", str(clean_home))
    land(clean_home, lines, day=day)
    ingest_task(day).submit({})
    clean = {z: zone_rows(spark, clean_home, z, day) for z in ("raw", "quarantine")}
    assert retried == clean
    assert (len(retried["raw"]), len(retried["quarantine"])) == (4, 2)
