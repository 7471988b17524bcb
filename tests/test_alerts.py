"""Alerts: which finished runs need a person, and delivery to a real local webhook."""

from __future__ import annotations

import json
import logging

import pytest

from retrain.airflow.alerts import alert_for, send
from retrain.runs import RunRecord
from tests.helpers import start_webhook

RUN = "manual__2026-03-02T00:00:00+00:00"
SITE = "/home/gx/digits/gx/uncommitted/data_docs/local_site"
DOCS = f"{SITE}/validations/digits_raw/2026-03-02/x.html"
RESULTS = "http://airflow.example:8080/retrain"


@pytest.fixture(autouse=True)
def results_url(monkeypatch):
    monkeypatch.setenv("RETRAIN_RESULTS_URL", RESULTS)


def record(**sections):
    return RunRecord({"run_id": RUN, "dataset": "digits", "run_date": "2026-03-02", **sections})


def test_a_published_or_dry_run_needs_no_alert():
    for decision in ("publish", "dry_run"):
        assert (
            alert_for("retrain_digits", RUN, "success", record(evaluate={"decision": decision}))
            is None
        )


def test_a_rejection_names_the_reason_and_the_report():
    evaluation = {"decision": "reject", "reason": "below the floor", "report": "/r/report.html"}
    alert = alert_for("retrain_digits", RUN, "success", record(evaluate=evaluation))
    assert alert["kind"] == "rejected" and "below the floor" in alert["text"]
    assert alert["links"] == [f"{RESULTS}/runs/digits/2026-03-02/report.html"]


def test_a_failed_validation_links_its_data_docs():
    validate = {"data_docs": DOCS, "drift": {"data_docs": f"{SITE}/validations/d r i f t.html"}}
    failed = record(failed_stage="validate", error="drift of p1 (PSI): 7.9", validate=validate)
    alert = alert_for("retrain_digits", RUN, "failed", failed)
    assert alert["kind"] == "validation_failed" and "drift of p1" in alert["text"]
    assert alert["links"] == [
        f"{RESULTS}/docs/digits/validations/digits_raw/2026-03-02/x.html",
        f"{RESULTS}/docs/digits/validations/d%20r%20i%20f%20t.html",  # a URL, quoted
    ]


def test_a_failure_before_the_record_still_alerts():
    stale = RunRecord({"run_id": "an-earlier-run", "failed_stage": "train", "error": "old"})
    alert = alert_for("retrain_digits", RUN, "failed", stale)
    assert alert["kind"] == "failed" and "old" not in alert["text"]
    assert "see the task log" in alert["text"]


@pytest.fixture
def webhook():
    url, received, server = start_webhook()
    yield url, received
    server.shutdown()


def test_an_alert_reaches_the_webhook_of_the_connection(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETRAIN_ALERTS", json.dumps({"conn_type": "http", "host": url})
    )
    send({"kind": "rejected", "text": "rejected", "dag_id": "d", "run_id": RUN, "links": ["/r"]})
    assert received == [{"kind": "rejected", "text": "rejected\n/r", "dag_id": "d",
                         "run_id": RUN, "links": ["/r"]}]  # fmt: skip


def test_without_a_connection_the_alert_goes_to_the_log(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_RETRAIN_ALERTS", raising=False)
    with caplog.at_level(logging.WARNING, logger="retrain.airflow.alerts"):
        send({"kind": "failed", "text": "it broke", "dag_id": "d", "run_id": RUN, "links": []})
    assert "no retrain_alerts connection" in caplog.text and "it broke" in caplog.text


def test_a_run_in_which_no_task_ran_is_reported_not_a_crash(monkeypatch, caplog):
    """Airflow's DAG callback context has no `dag_run` when no task ran."""
    from types import SimpleNamespace

    from retrain.airflow.alerts import RunNotifier

    monkeypatch.delenv("AIRFLOW_CONN_RETRAIN_ALERTS", raising=False)
    context = {"dag": SimpleNamespace(dag_id="retrain_digits"), "run_id": RUN, "reason": "success"}
    with caplog.at_level(logging.WARNING, logger="retrain.airflow.alerts"):
        RunNotifier("digits", "0 0 * * *", failed=False).notify(context)
    assert f"retrain_digits run {RUN} ended (success) without running a task" in caplog.text
