"""A real local Airflow (API server, scheduler, DAG processor, triggerer on 127.0.0.1), driven
through its REST API exactly as the UI's Trigger button does: no logical date, Params in `conf`.

Bad Params are refused by the API before a run exists; a good trigger runs `retrain_digits` to
success under the scheduler and publishes; stopping leaves no Airflow, spark-submit or JVM
process behind and nothing listening.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

from retrain.dag_factory import STAGES
from retrain.local_airflow import USER, LocalAirflow

pytestmark = pytest.mark.integration

DAG = "retrain_digits"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Api:
    """The REST API with a token from the simple auth manager's login, as the UI gets one."""

    def __init__(self, airflow: LocalAirflow) -> None:
        self.url = airflow.url
        login = {"username": USER, "password": airflow.password()}
        self.token = self.call("POST", "/auth/token", login, auth=False)[1]["access_token"]

    def call(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


def wait_for(check, what: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(3)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow") / "home"
    today = datetime.now(UTC).date()  # a trigger without run_date processes the day it runs
    env = {"RETRAIN_HOME": str(home), "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    previous = os.environ.get("RETRAIN_HOME")
    os.environ["RETRAIN_HOME"] = str(home)
    try:
        subprocess.run(
            [sys.executable, "-m", "retrain.cli", "demo-data", "--end", today.isoformat(),
             "--days", "1"],
            env=os.environ | env, check=True, capture_output=True,
        )  # fmt: skip
        local = LocalAirflow(free_port(), env=env)
        local.start()
    finally:
        os.environ.pop("RETRAIN_HOME") if previous is None else os.environ.update(
            RETRAIN_HOME=previous
        )
    api = Api(local)
    wait_for(lambda: api.call("GET", f"/api/v2/dags/{DAG}")[0] == 200, "the DAG to parse", 120)
    assert api.call("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": False})[0] == 200
    yield {"airflow": local, "api": api, "home": home, "today": today}
    local.stop()


def dag_runs(api: Api) -> list[dict]:
    return api.call("GET", f"/api/v2/dags/{DAG}/dagRuns")[1]["dag_runs"]


def test_bad_params_are_refused_before_a_run_exists(airflow):
    api = airflow["api"]
    for conf, message in (({"max_iter": 0}, "minimum"), ({"gate_mode": "yolo"}, "yolo")):
        status, body = api.call(
            "POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": conf}
        )
        assert status == 400 and message in json.dumps(body), (status, body)
    assert dag_runs(api) == []


def test_a_ui_style_trigger_runs_every_stage_and_publishes(airflow):
    api, home, today = airflow["api"], airflow["home"], airflow["today"]
    started = time.monotonic()
    status, run = api.call(
        "POST", f"/api/v2/dags/{DAG}/dagRuns",
        {"logical_date": None, "conf": {"max_iter": 150, "gate_mode": "enforce"}},
    )  # fmt: skip
    assert status == 200 and run["logical_date"] is None, run
    run_path = f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}"
    finished = wait_for(
        lambda: (r := api.call("GET", run_path)[1])["state"] in ("success", "failed") and r,
        "the triggered run",
        900,
    )
    elapsed = time.monotonic() - started
    tasks = api.call("GET", f"{run_path}/taskInstances")[1]["task_instances"]
    states = {t["task_id"]: t["state"] for t in tasks}
    assert finished["state"] == "success", states
    assert states == dict.fromkeys(STAGES, "success")
    assert all(t["try_number"] == 1 for t in tasks)
    record = json.loads((home / "runs" / "digits" / today.isoformat() / "record.json").read_text())
    assert record["run_date"] == today.isoformat() and record["state"] == "success"
    assert record["train"]["params"]["max_iter"] == 150  # the Param reached the job
    assert record["publish"]["champion_version"] == "1" and record["publish"]["champion_moved"]
    durations = {t["task_id"]: round(t["duration"], 1) for t in tasks}
    (home / "trigger_timings.json").write_text(json.dumps({"total": elapsed, **durations}))


def test_stopping_leaves_nothing_running_or_listening(airflow):
    local, home = airflow["airflow"], airflow["home"]
    pids = [p.pid for p in local.processes.values()]
    local.stop()
    leftovers = subprocess.run(
        ["pgrep", "-af", f"{home}|airflow (scheduler|api-server|dag-processor|triggerer)"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    assert not [line for line in leftovers.splitlines() if str(os.getpid()) not in line]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", local.port), timeout=2):
        pass
