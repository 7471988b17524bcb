"""A stage killed mid-write, as Airflow kills it on a timeout or a user's "mark failed": the real
RetrainSparkSubmitOperator running a real spark-submit that is replacing a partition.

Afterwards no process of that submit is left (spark-submit's JVM and the Python driver it
started), the previous partition is intact and readable, and a rerun replaces it whole.
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

from retrain.dag_factory import RetrainSparkSubmitOperator

JOB = """
import sys, time
from pyspark.sql import SparkSession
from retrain.job import write_partition

target, pause = sys.argv[1], float(sys.argv[2])
spark = SparkSession.builder.getOrCreate()
rows = spark.range(100).selectExpr("id", "'new' AS version")
if pause:  # a slow write: each task sleeps inside the JVM while staging
    rows = rows.repartition(2).selectExpr(
        "id", "version", f"reflect('java.lang.Thread', 'sleep', CAST({pause} AS BIGINT)) AS s"
    ).drop("s")
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
            task.execute({})
        except BaseException as err:  # noqa: BLE001 - the kill makes execute fail; keep it
            failure.append(err)

    runner = threading.Thread(target=execute)
    runner.start()
    deadline = time.monotonic() + 180
    while not list(target.parent.glob(".ds=2026-01-02.staging-*")):  # the write has begun
        assert time.monotonic() < deadline and runner.is_alive(), "the write never started"
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
    rerun.execute({})
    new = spark.read.parquet(str(target))
    assert (new.count(), {r.version for r in new.collect()}) == (100, {"new"})
    assert processes_with(marker) == []
