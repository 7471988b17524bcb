"""Every stage on a host of its own: each stage's driver gets a fresh home of its own (its
"local disk"), and the stages share only what a cluster deployment shares: the lake, the MLflow
store (standing in for a server) and the key. If any stage read a file another stage left on
its driver's disk, this run would fail; instead it must publish, with every piece of run state
in the lake and none on the drivers' disks.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from retrain.airflow.dag_factory import STAGES
from retrain.paths import REPO_ROOT
from tests.helpers import retrain_cli, run_dates, run_record

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 1)


def test_stages_on_separate_hosts_share_only_the_lake_and_mlflow(tmp_path):
    shared = tmp_path / "shared"
    lake = shared / "lake"
    env = os.environ | {
        "RETRAIN_LAKE": lake.as_uri(),  # a URI, as s3a://... would be
        "MLFLOW_TRACKING_URI": f"sqlite:///{shared / 'mlflow.db'}",
        "RETRAIN_ARTIFACT_ROOT": (shared / "artifacts").as_uri(),
        "RETRAIN_KEY": secrets.token_hex(32),
        "OPENBLAS_NUM_THREADS": "1",
    }
    retrain_cli(env | {"RETRAIN_HOME": str(tmp_path / "laptop")}, "demo-data", "--end",
                DAY.isoformat(), "--days", "1")  # fmt: skip
    for stage in STAGES:
        host = tmp_path / f"host-{stage}"
        done = subprocess.run(
            [sys.executable, str(REPO_ROOT / "jobs" / f"{stage}.py"), "--dataset", "digits",
             "--run-date", DAY.isoformat(), "--run-id", "hosts"],
            env=env | {"RETRAIN_HOME": str(host)}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{stage}: {done.stderr[-3000:]}"
        assert not (host / "runs").exists() and not (host / "lake").exists(), stage
    record = run_record(lake, "digits", DAY)
    assert record["state"] == "success" and record["run_id"] == "hosts"
    assert record["evaluate"]["decision"] == "publish"
    assert record["publish"]["version"] == "1" and record["publish"]["champion_moved"]
    assert len(record["train"]["loss"]["train_loss"]) == record["train"]["epochs"]
    assert record["evaluate"]["report"] == f"{lake.as_uri()}/runs/digits/{DAY}/report.html"
    assert (lake / "runs" / "digits" / f"{DAY}" / "report.html").read_text().count("<img") == 4
    assert run_dates(lake, "digits") == [DAY.isoformat()]
    assert not Path(tmp_path / "laptop" / "lake").exists()  # demo-data wrote to the lake too
