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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from retrain.airflow.dag_factory import STAGES
from retrain.airflow.local_airflow import USER, LocalAirflow
from tests.helpers import Browser, free_port, run_record, wait_for

pytestmark = pytest.mark.integration

DAG, SCORE_DAG = "retrain_digits", "score_digits"


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


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow") / "home"
    today = datetime.now(UTC).date()
    landed = today - timedelta(days=1)  # a trigger without run_date: the last complete day
    backfill = [today - timedelta(days=n) for n in (2, 1)]
    env = {"RETRAIN_HOME": str(home), "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    previous = os.environ.get("RETRAIN_HOME")
    os.environ["RETRAIN_HOME"] = str(home)
    try:
        for end in (today, backfill[0]):  # two days per call: ~900 images each
            subprocess.run(
                [sys.executable, "-m", "retrain.tools.cli", "demo-data", "--end", end.isoformat(),
                 "--days", "2"],
                env=os.environ | env, check=True, capture_output=True,
            )  # fmt: skip
        local = LocalAirflow(free_port(), env=env)
        local.start()
    finally:
        os.environ.pop("RETRAIN_HOME") if previous is None else os.environ.update(
            RETRAIN_HOME=previous
        )
    api = Api(local)
    wait_for(
        lambda: all(api.call("GET", f"/api/v2/dags/{d}")[0] == 200 for d in (DAG, SCORE_DAG)),
        "the DAGs to parse",
        120,
    )
    for dag_id in (DAG, SCORE_DAG):
        assert api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})[0] == 200
    yield {"airflow": local, "api": api, "home": home, "landed": landed, "backfill": backfill}
    local.stop()


def dag_runs(api: Api, dag_id: str = DAG) -> list[dict]:
    return api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns")[1]["dag_runs"]


def trigger_and_wait(api: Api, dag_id: str, conf: dict, seconds: float) -> tuple[dict, list]:
    """Trigger as the UI does (no logical date), wait for the end; the run and its tasks."""
    status, run = api.call(
        "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf}
    )
    assert status == 200 and run["logical_date"] is None, run
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
    finished = wait_for(
        lambda: (r := api.call("GET", path)[1])["state"] in ("success", "failed") and r,
        f"the {dag_id} run",
        seconds,
    )
    return finished, api.call("GET", f"{path}/taskInstances")[1]["task_instances"]


def create_backfill(api: Api, body: dict) -> tuple[int, Any]:
    """On SQLite the API answers 503 while the scheduler holds the write lock: ask again."""
    return wait_for(
        lambda: (answer := api.call("POST", "/api/v2/backfills", body))[0] != 503 and answer,
        "the database lock",
        120,
    )


def test_bad_params_are_refused_before_a_run_exists(airflow):
    api = airflow["api"]
    for conf, message in (({"max_epochs": 0}, "minimum"), ({"gate_mode": "yolo"}, "yolo")):
        status, body = api.call(
            "POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": conf}
        )
        assert status == 400 and message in json.dumps(body), (status, body)
    assert dag_runs(api) == []


def test_a_ui_style_trigger_runs_every_stage_and_publishes(airflow):
    api, home, landed = airflow["api"], airflow["home"], airflow["landed"]
    started = time.monotonic()
    finished, tasks = trigger_and_wait(api, DAG, {"max_epochs": 150, "gate_mode": "enforce"}, 900)
    elapsed = time.monotonic() - started
    states = {t["task_id"]: t["state"] for t in tasks}
    assert finished["state"] == "success", states
    assert states == dict.fromkeys(("claim", "landing", *STAGES), "success")
    assert all(t["try_number"] == 1 for t in tasks)
    record = run_record(home / "lake", "digits", landed)
    assert record["run_date"] == str(landed) and record["state"] == "success"
    assert record["train"]["params"]["max_epochs"] == 150  # the Param reached the job
    assert record["publish"]["champion_version"] == "1" and record["publish"]["champion_moved"]
    durations = {t["task_id"]: round(t["duration"], 1) for t in tasks}
    (home / "trigger_timings.json").write_text(json.dumps({"total": elapsed, **durations}))
    airflow["run_id"] = finished["dag_run_id"]


def test_the_task_links_open_the_results_in_a_browser_only_after_logging_in(airflow, tmp_path):
    """The buttons of the validate, preprocess and evaluate tasks, as the UI gets them from the
    API, open the run's results from Airflow's own API server in a real Chromium, once a person
    has logged in; without the login the same URLs show Airflow's login page instead."""
    api, landed, local = airflow["api"], airflow["landed"], airflow["airflow"]
    run = f"/api/v2/dags/{DAG}/dagRuns/{airflow['run_id']}/taskInstances"
    links = {}
    for task in ("validate", "preprocess", "evaluate"):
        status, answer = api.call("GET", f"{run}/{task}/links")
        assert status == 200, answer
        links |= answer["extra_links"]
    assert set(links) == {
        "Data Docs: raw suite", "Data Docs: drift", "Data Docs: features suite", "Decision report"
    }  # fmt: skip
    assert links.pop("Data Docs: drift") is None  # the first validated day: nothing to drift from
    assert all(url.startswith(f"{local.url}/retrain/") for url in links.values()), links
    report = links["Decision report"]
    with pytest.raises(urllib.error.HTTPError) as refused:  # a client without a login
        urllib.request.urlopen(report, timeout=30)
    assert refused.value.code == 401
    logged_in = urllib.request.Request(report, headers={"Authorization": f"Bearer {api.token}"})
    with urllib.request.urlopen(logged_in, timeout=30) as answer:  # one with a token
        assert answer.status == 200 and f"<title>retrain digits {landed}".encode() in answer.read()
    stranger = Browser(tmp_path / "stranger")
    try:
        assert "Sign into Airflow" in stranger.open(report, "Sign")
        assert stranger.url.startswith(f"{local.url}/auth/login?next=")
    finally:
        stranger.close()
    browser = Browser(tmp_path / "person")
    try:
        browser.open(report, "Sign")
        browser.type_into("input[name=username]", USER)
        browser.type_into("input[name=password]", local.password())
        browser.click("button[type=submit]")
        pages = {"Decision report": browser.text("first model")}  # back at the report
        assert browser.url == report
        for name in ("Data Docs: raw suite", "Data Docs: features suite"):
            pages[name] = browser.open(links[name], "Expectation")  # GX's own page, styled
        # The UI's "Retrain results" view (Browse menu) lists the run in its frame.
        browser.open(f"{local.url}/plugin/retrain-results")
        frame = "document.querySelector('iframe')?.contentDocument?.body?.innerText || ''"
        listed = wait_for(lambda: landed.isoformat() in browser.evaluate(frame) and
                          browser.evaluate(frame), "the results view", 60, 0.5)  # fmt: skip
    finally:
        browser.close()
    assert (
        f"run {landed}" in pages["Decision report"] and "first model" in pages["Decision report"]
    )
    assert "digits_raw" in pages["Data Docs: raw suite"]
    assert "digits_features" in pages["Data Docs: features suite"]
    assert f"digits\t{landed}\tpublish" in listed


@pytest.mark.parametrize(
    "path",
    [
        "/retrain/docs/digits/..%2F..%2F..%2Fsecrets%2Fretrain.key",
        "/retrain/docs/digits/%2e%2e%2F%2e%2e%2F%2e%2e%2Fsecrets%2Fretrain.key",
        "/retrain/docs/digits/%2E%2E/%2E%2E/%2E%2E/secrets/retrain.key",
        "/retrain/runs/digits/2026-03-02/..%2F..%2F..%2F..%2Fsecrets%2Fretrain.key",
        "/retrain/docs/digits/%252e%252e%252F%252e%252e%252Fsecrets%252Fretrain.key",
        "/retrain/docs/digits//etc/passwd",
        "/retrain/docs/digits/%2Fetc%2Fpasswd",
        "/retrain//etc/passwd",
        "/retrain/docs/digits/..%5C..%5C..%5Csecrets%5Cretrain.key",
        "/retrain/runs/Digits/2026-03-02/report.html",
        "/retrain/docs/digits/../../proc/self/environ",
    ],
)
def test_results_need_a_login_and_nothing_else_of_the_machine_is_served(airflow, path):
    """Against the real API server: without a login every path is refused (401, or 404 where
    no route matches); with one, nothing outside the lake's results is found."""
    api, local = airflow["api"], airflow["airflow"]
    key = Path(local.env["RETRAIN_HOME"]) / "secrets" / "retrain.key"
    secret = key.read_bytes()  # made when the first model was signed: what a traversal reads
    for headers in ({}, {"Authorization": f"Bearer {api.token}"}):
        request = urllib.request.Request(local.url + path, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code in ((404,) if headers else (401, 404)), (path, headers.keys())
        assert secret not in refused.value.read()


def test_publishing_emits_the_model_asset_and_scoring_uses_the_new_champion(airflow, spark):
    api, home, landed = airflow["api"], airflow["home"], airflow["landed"]
    events = api.call("GET", "/api/v2/assets/events")[1]["asset_events"]
    assert [(e["source_dag_id"], e["source_task_id"]) for e in events] == [(DAG, "publish")]
    finished, tasks = trigger_and_wait(api, SCORE_DAG, {}, 600)
    assert finished["state"] == "success", tasks
    predictions = spark.read.parquet(
        str(home / "lake" / "predictions" / "digits" / f"ds={landed}")
    )
    raw = spark.read.parquet(str(home / "lake" / "raw" / "digits" / f"ds={landed}"))
    assert predictions.count() == raw.count() > 0
    assert {r.model_version for r in predictions.select("model_version").distinct().collect()} == {
        "1"
    }
    assert predictions.where("confidence < 0 OR confidence > 1").count() == 0
    assert predictions.select("predicted_label").distinct().count() == 10


def test_a_backfill_makes_one_run_per_date_and_leaves_the_champion(airflow):
    api, home, days = airflow["api"], airflow["home"], airflow["backfill"]
    body = {"dag_id": DAG, "from_date": f"{days[0]}T00:00:00Z",
            "to_date": f"{days[-1]}T00:00:00Z", "max_active_runs": 2,
            "dag_run_conf": {"gate_mode": "off"}}  # every candidate passes  # fmt: skip
    status, backfill = create_backfill(api, body)
    assert status == 200, backfill
    overlapping = create_backfill(api, body | {"from_date": body["to_date"]})
    assert overlapping[0] == 409, overlapping  # one backfill of a DAG at a time

    def finished() -> list[dict] | None:
        runs = [r for r in dag_runs(api) if r["run_type"] == "backfill"]
        done = len(runs) == len(days) and all(r["state"] in ("success", "failed") for r in runs)
        return runs if done else None

    runs = wait_for(finished, "the backfill", 1500)
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in days]
    assert {r["state"] for r in runs} == {"success"}
    # Both runs were active at once; the claim let one run's stages start only after the other
    # run's stages ended (a window never sees a day another run is validating).
    spans = []
    for run in runs:
        path = f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}/taskInstances"
        tasks = [t for t in api.call("GET", path)[1]["task_instances"] if t["task_id"] in STAGES]
        assert len(tasks) == len(STAGES)
        spans.append((min(t["start_date"] for t in tasks), max(t["end_date"] for t in tasks)))
    (first_start, first_end), (second_start, second_end) = sorted(spans)
    assert first_end <= second_start, spans
    for day in days:
        record = run_record(home / "lake", "digits", day)
        assert record["preprocess"]["window"][-1] == day.isoformat()  # nothing after its date
        assert record["evaluate"]["decision"] == "publish"
        assert record["publish"]["held_back"] and not record["publish"]["champion_moved"]
        assert (home / "lake" / "raw" / "digits" / f"ds={day}" / "_SUCCESS").exists()
    status = subprocess.run(
        [sys.executable, "-m", "retrain.tools.cli", "status", "digits", "--json"],
        env=os.environ | {"RETRAIN_HOME": str(home)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(status.stdout)["champion"]["version"] == 1  # registered 2-3, not moved


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
