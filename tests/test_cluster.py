"""The real retrain_digits DAG on a real Spark standalone cluster, on loopback; then each stage
in cluster deploy mode, its driver launched on the worker, as if on a host of its own.

A master and one worker start from the installed pyspark (`spark-class`), with the settings the
compose deployment uses: RPC authentication with a shared secret and AES-GCM network
encryption, read from a `spark-defaults.conf` (never from a command line). Only the
`spark_default` connection and `SPARK_CONF_DIR` change; no code does. Each stage must run as an
application on that master, with its tasks on the worker's executors (read from the event logs).

Day 1 runs through Airflow (client mode, as docs/scale-out.md says to use on a standalone master).
Day 2 runs every stage with `--deploy-mode cluster` on a second cluster without authentication
(`plain_cluster` says why): the master starts the driver inside the worker's folder, with a
fresh `RETRAIN_HOME` of its own per stage (its "local disk"). The
stages share only what a cluster deployment shares: the lake (committed by pointer, as on an
object store), the MLflow store (standing in for a server) and the key. If a stage read a file
another stage left on its driver's disk, day 2 could not publish.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from unittest import mock

import pyspark
import pytest

from retrain.airflow.dag_factory import STAGES
from retrain.airflow.submission import SPARK_CONF, code_zip
from retrain.paths import REPO_ROOT
from tests.helpers import free_port, retrain_cli, run_dates, run_record, wait_for

pytestmark = pytest.mark.integration

DAY, NEXT = date(2026, 3, 1), date(2026, 3, 2)
SPARK_CLASS = str(Path(sys.executable).parent / "spark-class")
SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")


def master_status(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        return json.load(response)


def cluster_conf(folder: Path, events: Path, secured: bool) -> Path:
    """The cluster's shared settings; the secret lives in this file only (mode 600)."""
    folder.mkdir(parents=True)
    conf = folder / "spark-defaults.conf"
    conf.touch(mode=0o600)
    security = [
        "spark.authenticate true",
        f"spark.authenticate.secret {secrets.token_hex(32)}",
        "spark.network.crypto.enabled true",
        "spark.network.crypto.cipher AES/GCM/NoPadding",
    ]
    events_conf = [
        "spark.eventLog.enabled true",
        "spark.eventLog.rolling.enabled false",  # one plain JSON-lines file per app
        "spark.eventLog.compress false",
        f"spark.eventLog.dir file://{events}",
    ]
    conf.write_text("\n".join([*(security if secured else []), *events_conf, ""]))
    return folder


@contextmanager
def standalone_cluster(root: Path, secured: bool) -> Iterator[dict]:
    """A master and one worker on loopback, stopped at the end."""
    events = root / "events"
    events.mkdir()
    conf_dir = cluster_conf(root / "conf", events, secured)
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
def cluster(tmp_path_factory) -> Iterator[dict]:
    """Secured as the compose deployment is: where the DAG runs."""
    with standalone_cluster(tmp_path_factory.mktemp("cluster"), secured=True) as started:
        yield started


@pytest.fixture(scope="module")
def plain_cluster(tmp_path_factory) -> Iterator[dict]:
    """Where the stages run in cluster deploy mode. Not secured: a standalone worker keeps the
    secret off the driver's command line and hands it over in `_SPARK_AUTH_SECRET` only, while
    Spark 4.1's driver insists on `spark.authenticate.secret` in its configuration ("A secret key
    must be specified via the spark.authenticate.secret config"), so no driver launched there
    can start while authentication is on."""
    with standalone_cluster(tmp_path_factory.mktemp("plain-cluster"), secured=False) as started:
        yield started


def submit_in_cluster_mode(cluster: dict, env: dict[str, str], stage: str, host: Path) -> str:
    """spark-submit one stage of NEXT in cluster deploy mode; the driver's id.

    Spark refuses a Python file as the application in standalone cluster mode ("Cluster deploy
    mode is currently not supported for python applications on standalone clusters"), so the
    application is Spark's own `PythonRunner`, the JVM class spark-submit runs for every Python
    driver, given the job and the code zip: the master launches it on the worker like any JVM
    driver, and it starts the stage's Python there.
    """
    jar = next((Path(pyspark.__file__).parent / "jars").glob("spark-core_*.jar"))
    with mock.patch.dict(os.environ, {"RETRAIN_HOME": str(host)}):
        zipped = code_zip()
    settings = SPARK_CONF | {
        "spark.pyspark.python": sys.executable,
        "spark.standalone.submit.waitAppCompletion": "true",  # spark-submit returns at the end
    }
    done = subprocess.run(
        [SPARK_SUBMIT, "--master", cluster["url"], "--deploy-mode", "cluster",
         "--class", "org.apache.spark.deploy.PythonRunner", "--driver-memory", "1g",
         *(arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")),
         str(jar), str(REPO_ROOT / "jobs" / f"{stage}.py"), zipped,
         "--dataset", "digits", "--run-date", NEXT.isoformat(), "--run-id", "cluster-mode"],
        env=env | {"RETRAIN_HOME": str(host)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    driver = re.search(r"driver-\d+-\d+", done.stderr)
    assert done.returncode == 0 and driver, done.stderr[-3000:]
    return driver.group(0)


@pytest.fixture(scope="module")
def cluster_run(cluster, plain_cluster, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cluster-run")
    lake = root / "shared" / "lake"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")} | {
        "RETRAIN_HOME": str(root / "airflow-host"),
        "RETRAIN_LAKE": lake.as_uri(),  # a URI, as s3a://... would be
        "RETRAIN_PARTITION_COMMIT": "pointer",  # as on an object store: no rename commits
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'shared' / 'mlflow.db'}",
        "RETRAIN_ARTIFACT_ROOT": (root / "shared" / "artifacts").as_uri(),
        "RETRAIN_KEY": secrets.token_hex(32),
        "RETRAIN_PROJECT_DIR": str(REPO_ROOT),
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_CONF_DIR": str(cluster["conf_dir"]),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
            {"conn_type": "spark", "host": "spark://127.0.0.1", "port": cluster["port"]}
        ),
    }
    retrain_cli(env, "demo-data", "--end", NEXT.isoformat(), "--days", "2")
    retrain_cli(env, "run", "digits", "--date", DAY.isoformat())
    status = json.loads(retrain_cli(env, "status", "digits", "--json").stdout)
    hosts, drivers = {}, {}
    for stage in STAGES:
        hosts[stage] = root / f"host-{stage}"
        plain = env | {"SPARK_CONF_DIR": str(plain_cluster["conf_dir"])}
        drivers[stage] = submit_in_cluster_mode(plain_cluster, plain, stage, hosts[stage])
    return {"lake": lake, "status": status, "hosts": hosts, "drivers": drivers,
            "master": master_status(cluster["ui"]),
            "plain_master": master_status(plain_cluster["ui"])}  # fmt: skip


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


def spark_properties(events: Path) -> list[dict[str, str]]:
    """Each application's Spark properties, from the event logs."""
    return [
        dict(json.loads(line)["Spark Properties"])
        for log in events.iterdir()
        for line in log.read_text().splitlines()
        if '"SparkListenerEnvironmentUpdate"' in line
    ]


def test_every_stage_ran_on_the_cluster_and_published(cluster, cluster_run):
    champion = cluster_run["status"]["champion"]
    assert champion["version"] == 1 and champion["f1"] >= 0.93
    apps = cluster_run["master"]["completedapps"]
    assert sorted(a["name"] for a in apps) == sorted(f"retrain-digits-{s}" for s in STAGES)
    assert all(a["state"] == "FINISHED" for a in apps)
    tasks = executor_tasks(cluster["events"])
    assert set(tasks) == {f"retrain-digits-{s}" for s in STAGES}
    assert all(count > 0 for count in tasks.values()), tasks


def test_each_stage_ran_in_cluster_mode_with_its_driver_on_the_worker(
    cluster, plain_cluster, cluster_run
):
    master = cluster_run["plain_master"]
    drivers = {d["id"]: d for d in master["completeddrivers"]}
    assert set(drivers) == set(cluster_run["drivers"].values())
    worker = master["workers"][0]["id"]
    for stage, driver in cluster_run["drivers"].items():
        assert (drivers[driver]["state"], drivers[driver]["worker"]) == ("FINISHED", worker), stage
        assert (plain_cluster["root"] / "work" / driver / "stderr").is_file()  # its folder there
    apps = master["completedapps"]
    assert sorted(a["name"] for a in apps) == sorted(f"retrain-digits-{s}" for s in STAGES)
    assert all(a["state"] == "FINISHED" for a in apps)
    tasks = executor_tasks(plain_cluster["events"])
    assert set(tasks) == {f"retrain-digits-{s}" for s in STAGES}
    assert all(count > 0 for count in tasks.values()), tasks
    modes = {p["spark.submit.deployMode"] for p in spark_properties(plain_cluster["events"])}
    assert modes == {"cluster"}
    modes = {p["spark.submit.deployMode"] for p in spark_properties(cluster["events"])}
    assert modes == {"client"}  # the DAG's stages, through the operator


def test_cluster_mode_stages_shared_only_the_lake_and_mlflow_and_published(cluster_run):
    lake = cluster_run["lake"]
    record = run_record(lake, "digits", NEXT)
    assert record["state"] == "success" and record["run_id"] == "cluster-mode"
    assert record["evaluate"]["decision"] in ("publish", "reject")
    assert record["publish"]["version"] == "2"  # registered either way; champion if published
    assert len(record["train"]["loss"]["train_loss"]) == record["train"]["epochs"]
    assert record["evaluate"]["report"] == f"{lake.as_uri()}/runs/digits/{NEXT}/report.html"
    assert (lake / "runs" / "digits" / f"{NEXT}" / "report.html").read_text().count("<img") == 4
    assert run_dates(lake, "digits") == [DAY.isoformat(), NEXT.isoformat()]
    for stage, host in cluster_run["hosts"].items():  # each driver's own disk: scratch only
        assert not (host / "runs").exists() and not (host / "lake").exists(), stage
    # Committed by pointer: each partition names its one version; no staging folder anywhere.
    for zone in ("raw", "features", "candidates"):
        partition = lake / zone / "digits" / f"ds={NEXT}"
        assert [p.name for p in partition.iterdir()] == ["_CURRENT"]
        versions = lake / zone / "digits" / "_versions" / f"ds={NEXT}"
        version = (partition / "_CURRENT").read_text().strip()
        assert [p.name for p in versions.iterdir()] == [version]
        assert (versions / version / "_SUCCESS").is_file()
    assert not list(lake.glob("*/digits/.ds=*"))


def test_the_cluster_ran_with_authentication_and_encryption(cluster, cluster_run):
    conf = (cluster["conf_dir"] / "spark-defaults.conf").stat()
    assert oct(conf.st_mode & 0o777) == "0o600"
    environments = spark_properties(cluster["events"])
    assert len(environments) == len(STAGES)
    for spark in environments:
        assert spark["spark.authenticate"] == "true"
        assert spark["spark.network.crypto.cipher"] == "AES/GCM/NoPadding"
        assert spark["spark.authenticate.secret"] == "*********(redacted)"
