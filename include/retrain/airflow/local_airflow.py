"""A local Airflow 3 on the retrain home: API server and UI on 127.0.0.1, scheduler, DAG processor
and triggerer, started and stopped together.

Only the API server listens, on loopback. The scheduler and triggerer skip their log servers:
with the LocalExecutor every task log is a local file the API server reads directly. Logins use
the simple auth manager with a password Airflow generates into the home on first start (never a
fixed default); `stop()` ends every process group it started, so no scheduler, task or
spark-submit outlives it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from retrain import results
from retrain.paths import REPO_ROOT, home

USER = "admin"
SPARK_POOL = "retrain_spark"  # every stage takes a slot: RETRAIN_SPARK_SLOTS at once (1)
COMPONENTS = ("scheduler", "dag_processor", "triggerer")


def airflow_env() -> dict[str, str]:
    """Airflow settings for the embedded default; anything already set in the environment wins."""
    airflow_home = home() / "airflow"
    defaults = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "True",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[*]"}),
        "RETRAIN_HOME": str(home()),
    }
    env = {k: os.environ.get(k, v) for k, v in defaults.items()}
    # spark-submit and the job's Python come from this environment (.venv/bin).
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    env["PATH"] = path if path.split(os.pathsep)[0] == bin_dir else f"{bin_dir}{os.pathsep}{path}"
    return env


def ensure_airflow_db(env: dict[str, str]) -> None:
    """Create or upgrade the Airflow database and its Spark pool, once per Airflow version."""
    import airflow

    marker = Path(env["AIRFLOW_HOME"]) / f".ready-{airflow.__version__}"
    if marker.exists():
        return
    sys.stderr.write("Preparing the Airflow metadata database (first run only)...\n")
    slots = env.get("RETRAIN_SPARK_SLOTS", "1")
    for command in (
        ["db", "migrate"],
        ["pools", "set", SPARK_POOL, slots, "Spark applications retrain runs at once"],
    ):
        subprocess.run(
            [sys.executable, "-m", "airflow", *command],
            check=True, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    marker.touch()


def fail_runs(
    dag_id: str, *, run_id: str | None = None, logical_date: datetime | None = None
) -> int:
    """Mark a DAG's queued or running run (by run id or logical date) failed, as the UI's "mark
    failed" does: its running tasks failed, the ones that never started skipped. How many runs."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, State, TaskInstanceState
    from sqlalchemy import select

    query = select(DagRun).where(
        DagRun.dag_id == dag_id, DagRun.state.in_((DagRunState.RUNNING, DagRunState.QUEUED))
    )
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    if logical_date is not None:
        query = query.where(DagRun.logical_date == logical_date)
    with create_session() as session:
        runs = session.scalars(query).all()
        for run in runs:
            for ti in run.get_task_instances(session=session):
                if ti.state not in State.finished:
                    running = ti.state == TaskInstanceState.RUNNING
                    ti.state = TaskInstanceState.FAILED if running else TaskInstanceState.SKIPPED
            run.set_state(DagRunState.FAILED)
    return len(runs)


class LocalAirflow:
    """Airflow's services on 127.0.0.1; its API server also serves the results the task links
    point at (`retrain.airflow.results_app`)."""

    def __init__(self, port: int = 8080, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.results_url = f"{self.url}{results.PATH}"
        self.env = os.environ | airflow_env() | (env or {})
        self.env |= {
            "RETRAIN_RESULTS_URL": self.results_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        }
        self.logs = Path(self.env["AIRFLOW_HOME"]) / "services"
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def commands(self) -> dict[str, list[str]]:
        return {
            "api-server": ["airflow", "api-server", "-H", "127.0.0.1", "-p", str(self.port)],
            "scheduler": ["airflow", "scheduler", "--skip-serve-logs"],
            "dag-processor": ["airflow", "dag-processor"],
            "triggerer": ["airflow", "triggerer", "--skip-serve-logs"],
        }

    def start(self, timeout: float = 180) -> None:
        ensure_airflow_db(self.env)
        self.logs.mkdir(parents=True, exist_ok=True)
        for name, command in self.commands.items():
            with open(self.logs / f"{name}.log", "ab") as log:
                self.processes[name] = subprocess.Popen(
                    command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() ends its children
                )  # fmt: skip
        self.wait_until_healthy(timeout)

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as answer:
            return json.load(answer)

    def wait_until_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
            if exited:
                raise RuntimeError(f"Airflow {exited} exited early; see {self.logs}")
            try:
                states = self.health()
                if all(states.get(c, {}).get("status") == "healthy" for c in COMPONENTS):
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(2)
        raise TimeoutError(f"Airflow was not healthy within {timeout:.0f} s; see {self.logs}")

    def password(self) -> str:
        generated = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        return json.loads(generated.read_text())[USER]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every group, then SIGKILL what is left after `timeout` seconds."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # children that outlived their leader
            process.wait()
        self.processes.clear()

    def __enter__(self) -> LocalAirflow:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
