"""Runs of a dataset's DAG from the command line, and what `retrain status` reports of them.

`dag.test` per date, one at a time, in one of the machine's Spark slots, with Airflow's and
Spark's output in a log file and the stages' progress on the terminal; each run summarised from
its record. The CLI parses the arguments and prints what these return or say.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from retrain import results
from retrain.airflow import claims
from retrain.airflow.local_airflow import airflow_env, ensure_airflow_db, fail_runs
from retrain.paths import home, lake_root
from retrain.runs import FAILED, RunRecord, run_folder
from retrain.spec import Spec, load_spec


def fail_abandoned_run(dataset: str, say: Callable[[str], None]) -> None:
    """A `retrain run` killed mid-run (kill -9, a closed terminal) left its Airflow run
    'running': its claim names the dead process. Fail that run, as Airflow would a zombie."""
    holder = claims.read_claim(dataset)
    if (
        holder
        and claims.cli_process_gone(holder)
        and fail_runs(holder["dag_id"], run_id=holder["run_id"])
    ):
        say(
            f"marked {holder['dag_id']} run {holder['run_id']} (date {holder['run_date']}) "
            f"failed: the `retrain run` process {holder['cli_pid']} running it is gone"
        )


@contextmanager
def spark_slot(say: Callable[[str], None]) -> Iterator[None]:
    """One of RETRAIN_SPARK_SLOTS slots for a `retrain run`: `dag.test` ignores Airflow's pool,
    so concurrent CLI runs take turns here (waiting, and saying so) instead."""
    slots = max(1, int(os.environ.get("RETRAIN_SPARK_SLOTS", "1")))
    folder = home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        for slot in range(slots):
            with open(folder / f"spark-slot-{slot}.lock", "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                yield
                return
        if not said:
            say(f"waiting for one of {slots} Spark slot(s) held by other runs ...")
            said = True
        time.sleep(2)


def run_dates(
    spec: Spec,
    dates: list[date],
    overrides: dict[str, Any],
    *,
    verbose: bool,
    say: Callable[[str], None],
    history_from: date | None = None,
    progress_fd: int = 1,
) -> list[dict[str, Any]]:
    """Run the dataset's DAG with `dag.test` for each date, one at a time, each in a Spark slot;
    `say` and `progress_fd` get the progress. Each run's summary, in date order."""
    os.environ.update(airflow_env())
    ensure_airflow_db(dict(os.environ))
    from retrain.airflow.dag_factory import build_dag
    from retrain.runs import read_run

    dag = build_dag(spec)
    os.environ[claims.CLI_PID_ENV] = str(os.getpid())  # `dag.test` runs the tasks in-process
    log_path = None
    if not verbose:
        log_path = home() / "logs" / f"run-{spec.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
        say(f"Airflow and Spark logs: {log_path} (--verbose prints them here)")
    summaries = []
    for run_date in dates:
        say(f"Running {dag.dag_id} for {run_date} (Airflow dag.test, Spark via spark_default)")
        fail_abandoned_run(spec.name, say)
        # The date travels in the conf; the run's own logical date is now, so `dag.test` (which
        # clears and replaces runs of its logical date) never touches another run of the date.
        logical_date = datetime.now(UTC)
        with spark_slot(say), output_to(log_path, progress_fd):
            try:
                dag_run = dag.test(
                    logical_date=logical_date,
                    run_conf={
                        "run_date": run_date.isoformat(),
                        "overrides": overrides,
                        "history_from": history_from and history_from.isoformat(),
                    },
                )
            except BaseException:  # Ctrl-C: leave no run 'running' to block the scheduler
                fail_runs(dag.dag_id, logical_date=logical_date)
                raise
        state = str(getattr(dag_run, "state", FAILED))  # Airflow's word, the same as ours
        record = read_run(spec.name, run_date)
        if record.get("run_id") != getattr(dag_run, "run_id", None):
            record = no_stage_ran(spec.name, run_date, dag_run)  # never an older run's record
        summaries.append(run_summary(record) | {"dag_run_state": state})
    return summaries


@contextmanager
def output_to(log_path: Path | None, progress_fd: int = 1) -> Iterator[None]:
    """Send this process's output (Airflow's task logs, spark-submit's lines) to `log_path`,
    keeping the terminal's `progress_fd` (stdout, or stderr when stdout carries JSON) for the
    stages' progress lines. None: everything to the terminal, on `progress_fd`."""
    from retrain.airflow.operators import PROGRESS_FD_ENV

    if log_path is None and progress_fd == 1:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.dup(1), os.dup(2)
    log = None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - closed below, after the fds are restored
    target = log.fileno() if log else terminal[1]  # no log file: all of it on stderr
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.environ[PROGRESS_FD_ENV] = str(terminal[progress_fd - 1])
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(terminal[0], 1)
        os.dup2(terminal[1], 2)
        os.environ.pop(PROGRESS_FD_ENV)
        for fd in terminal:
            os.close(fd)
        if log:
            log.close()


def no_stage_ran(dataset: str, run_date: date, dag_run: Any) -> dict[str, Any]:
    """The record of a run that wrote none: it never got past its claim (or ran nothing)."""
    holder = claims.read_claim(dataset)
    waited = holder and holder["run_id"] != getattr(dag_run, "run_id", None)
    return {
        "dataset": dataset,
        "run_date": run_date.isoformat(),
        "state": FAILED,
        "error": (
            f"no stage ran: {claims.describe(dataset, holder)}"
            if waited
            else "no stage ran; see the log above"
        ),
    }


def run_summary(sections: dict[str, Any]) -> dict[str, Any]:
    record = RunRecord(sections)
    links = results.links(record)
    return {
        "run_date": record.run_date,
        "state": record.state,
        "decision": record.decision,
        "reason": record.reason,
        "failed_stage": record.failed_stage,
        "rows_quarantined": record.section("ingest").get("rows_quarantined"),
        "f1": (record.section("evaluate").get("candidate") or {}).get("weighted_f1"),
        "version": _number(record.section("publish").get("version")),
        "data_docs": record.data_docs,
        "report": record.report,
        "links": links,
        "run_folder": run_folder(record.dataset or "", date.fromisoformat(record.run_date or "")),
    }


def _number(version: str | None) -> int | None:
    """MLflow names versions "1", "2": a number here, as the champion's is."""
    return None if version is None else int(version)


def status(dataset: str) -> dict[str, Any]:
    """The champion and every recorded run of a dataset."""
    from retrain.runs import list_runs
    from retrain.spark import registry

    spec = load_spec(dataset)
    registry.configure()
    champion, unknown = None, None
    try:
        version = registry.champion_version(spec.registered_model_name)
    except registry.RegistryUnavailable as err:  # say so; never "no champion yet"
        version, unknown = None, str(err)
    if version is not None:
        champion = {
            "version": int(version.version),
            "model": spec.registered_model_name,
            "f1": float(version.tags.get("gate_value", "nan")),
            "metric": version.tags.get("gate_metric"),
            "run_date": version.tags.get("run_date"),
        }
    return {
        "dataset": dataset,
        "home": str(home()),
        "lake": lake_root(),
        "champion": champion,
        **({"champion_unknown": unknown} if unknown else {}),
        "runs": [run_summary(r) for r in list_runs(dataset)],
    }
