"""One alert per finished run that needs a person: a failed stage (a failed validation with its
Data Docs), or a candidate the gate rejected (with its report). A published or dry-run run
sends nothing.

Alerts go to the webhook of the Airflow connection `retrain_alerts` (its host is the URL; the
JSON body has `text` and the details, which Slack, Teams or any HTTP endpoint can take). With
no such connection they are written to the log only. Sending never fails a run.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import date
from typing import Any

from airflow.sdk import BaseNotifier, Connection
from airflow.sdk.exceptions import AirflowNotFoundException

from retrain import results
from retrain.airflow.macros import run_date_of
from retrain.runs import FAILED, REJECT, SUCCESS, RunRecord

log = logging.getLogger(__name__)
CONNECTION_ID = "retrain_alerts"


def alert_for(dag_id: str, run_id: str, state: str, record: RunRecord) -> dict | None:
    """The alert for a finished run, or None when nobody needs to act; its links are URLs of
    the results service (the Data Docs of a failed validation, a rejection's report)."""
    if record.run_id != run_id:
        record = RunRecord()  # the record is another run's: this one failed before writing it
    where = f"{dag_id} for {record.run_date or '?'} (run {run_id})"
    links = results.links(record)
    if state == FAILED:
        stage = record.failed_stage
        kind = "validation_failed" if stage == "validate" else "failed"
        text = (
            f"{where} failed at {stage or 'an early stage'}: {record.error or 'see the task log'}"
        )
        shown = ("raw", "drift") if kind == "validation_failed" else ()
    else:
        if record.section("evaluate").get("decision") != REJECT:
            return None
        kind, shown = "rejected", ("report",)
        text = f"{where}: the gate rejected the candidate: {record.reason}"
    found = [links[k] for k in shown if k in links]
    return {"kind": kind, "text": text, "dag_id": dag_id, "run_id": run_id, "links": found}


def send(alert: dict[str, Any]) -> None:
    try:
        connection = Connection.get(CONNECTION_ID)
    except AirflowNotFoundException:
        log.warning("retrain alert (no %s connection): %s", CONNECTION_ID, alert["text"])
        return
    host = connection.host or ""
    url = host if "://" in host else f"https://{host}"
    body = json.dumps(alert | {"text": "\n".join([alert["text"], *alert["links"]])}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10):
            log.info("retrain alert sent (%s): %s", alert["kind"], alert["text"])
    except OSError as err:
        log.error("retrain alert could not be sent to %s: %s: %s", CONNECTION_ID, err, alert)


class RunNotifier(BaseNotifier):
    """A retrain DAG's `on_failure_callback` (failed=True) or `on_success_callback`."""

    template_fields = ()

    def __init__(self, dataset: str, schedule: str, failed: bool) -> None:
        super().__init__()
        self.dataset, self.schedule, self.failed = dataset, schedule, failed

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (and under `dag.test` Airflow 3.3 has no template env to do it)."""

    def notify(self, context: Any) -> None:
        dag_run = context.get("dag_run")
        if dag_run is None:  # Airflow gives only the DAG and run id when no task ran
            dag_id, run_id = context["dag"].dag_id, context["run_id"]
            send(no_task_ran(dag_id, run_id, context.get("reason")))
            return
        params = context.get("params") or dag_run.conf or {}
        run_date = date.fromisoformat(run_date_of(params, dag_run, self.schedule))
        state = FAILED if self.failed else SUCCESS
        record = RunRecord.read(self.dataset, run_date)
        alert = alert_for(dag_run.dag_id, dag_run.run_id, state, record)
        if alert:
            send(alert)


def no_task_ran(dag_id: str, run_id: str, reason: str | None) -> dict[str, Any]:
    """A run that ended without running a task did nothing a person asked for: say so."""
    text = f"{dag_id} run {run_id} ended ({reason or 'no reason given'}) without running a task"
    return {"kind": "failed", "text": text, "dag_id": dag_id, "run_id": run_id, "links": []}
