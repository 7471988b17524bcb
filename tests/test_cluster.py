"""The real retrain_digits DAG on a real Spark standalone cluster, on loopback.

A master and one worker start from the installed pyspark (`spark-class`), with the settings the
compose deployment uses: RPC authentication with a shared secret and AES-GCM network
encryption, read from a `spark-defaults.conf` (never from a command line). Only the
`spark_default` connection and `SPARK_CONF_DIR` change; no code does. Each stage must run as an
application on that master, with its tasks on the worker's executors (read from the event logs).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyspark
import pytest

from retrain.airflow.dag_factory import STAGES
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 1)
SPARK_CLASS = str(Path(sys.executable).parent / "spark-class")


def master_status(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        return json.load(response)


def cluster_conf(folder: Path, events: Path) -> Path:
    """The cluster's shared settings; the secret lives in this file only (mode 600)."""
    folder.mkdir(parents=True)
    conf = folder / "spark-defaults.conf"
    conf.touch(mode=0o600)
    conf.write_text(
        "\n".join(
            [
                "spark.authenticate true",
                f"spark.authenticate.secret {secrets.token_hex(32)}",
                "spark.network.crypto.enabled true",
                "spark.network.crypto.cipher AES/GCM/NoPadding",
                "spark.eventLog.enabled true",
                "spark.eventLog.rolling.enabled false",  # one plain JSON-lines file per app
                "spark.eventLog.compress false",
                f"spark.eventLog.dir file://{events}",
                "",
            ]
        )
    )
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("cluster")
    events = root / "events"
    events.mkdir()
    conf_dir = cluster_conf(root / "conf", events)
    port, ui, worker_ui = free_port(), free_port(), free_port()
    env = os.environ | {
        "SPARK_HOME": str(Path(pyspark.__file__).parent),  # spark-class may not find the venv's
        "SPARK_CONF_DIR": str(conf_dir),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    logs = [open(root / name, "w") for name in ("master.log", "worker.log")]  # noqa: SIM115
    master = subprocess.Popen(
        [SPARK_CLASS, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(ui)],
        env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    processes = [master]
    try:
        wait_for(lambda: master_status(ui)["status"] == "ALIVE", "the Spark master", 90)
        worker = subprocess.Popen(
            [SPARK_CLASS, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
             "--cores", "2", "--memory", "4g", "--webui-port", str(worker_ui),
             "--work-dir", str(root / "work"), f"spark://127.0.0.1:{port}"],
            env=env, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        processes.append(worker)
        wait_for(
            lambda: [w["state"] for w in master_status(ui)["workers"]] == ["ALIVE"],
            "the worker to register",
            90,
        )
        yield {"url": f"spark://127.0.0.1:{port}", "port": port, "ui": ui,
               "conf_dir": conf_dir, "events": events, "root": root}  # fmt: skip
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def cluster_run(cluster, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("cluster-home") / "home"
    env = os.environ | {
        "RETRAIN_HOME": str(home),
        "SPARK_CONF_DIR": str(cluster["conf_dir"]),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
            {"conn_type": "spark", "host": "spark://127.0.0.1", "port": cluster["port"]}
        ),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    cli = [sys.executable, "-m", "retrain.tools.cli"]
    for args in (["demo-data", "--end", DAY.isoformat(), "--days", "1"],
                 ["run", "digits", "--date", DAY.isoformat()]):  # fmt: skip
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    status = subprocess.run(
        [*cli, "status", "digits", "--json"], env=env, capture_output=True, text=True, check=True
    )
    return {"status": json.loads(status.stdout), "master": master_status(cluster["ui"])}


def executor_tasks(events: Path) -> dict[str, int]:
    """Tasks that ran on executors (not the driver), by application name, from the event logs."""
    tasks: dict[str, int] = {}
    for log in events.iterdir():
        name, count = None, 0
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event["Event"] == "SparkListenerApplicationStart":
                name = event["App Name"]
            elif event["Event"] == "SparkListenerTaskEnd":
                count += event["Task Info"]["Executor ID"] != "driver"
        tasks[name] = tasks.get(name, 0) + count
    return tasks


def test_every_stage_ran_on_the_cluster_and_published(cluster, cluster_run):
    champion = cluster_run["status"]["champion"]
    assert champion["version"] == 1 and champion["f1"] >= 0.93
    apps = cluster_run["master"]["completedapps"]
    assert sorted(a["name"] for a in apps) == sorted(f"retrain-digits-{s}" for s in STAGES)
    assert all(a["state"] == "FINISHED" for a in apps)
    tasks = executor_tasks(cluster["events"])
    assert set(tasks) == {f"retrain-digits-{s}" for s in STAGES}
    assert all(count > 0 for count in tasks.values()), tasks


def test_the_cluster_ran_with_authentication_and_encryption(cluster, cluster_run):
    conf = (cluster["conf_dir"] / "spark-defaults.conf").stat()
    assert oct(conf.st_mode & 0o777) == "0o600"
    environments = [
        json.loads(line)
        for log in cluster["events"].iterdir()
        for line in log.read_text().splitlines()
        if '"SparkListenerEnvironmentUpdate"' in line
    ]
    assert len(environments) == len(STAGES)
    for environment in environments:
        spark = dict(environment["Spark Properties"])
        assert spark["spark.authenticate"] == "true"
        assert spark["spark.network.crypto.cipher"] == "AES/GCM/NoPadding"
        assert spark["spark.authenticate.secret"] == "*********(redacted)"
