"""The run record: one JSON per dataset and run date that every stage adds its section to.

`retrain status` reads it; the report renders it. Written atomically (temp file + rename).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from retrain.paths import home

RECORD_NAME = "record.json"
# How a stage's process ends; the DAG does not retry the deterministic failures.
EXIT_FAILED, EXIT_BAD_SPEC, EXIT_DATA_REJECTED = 1, 2, 3
NO_RETRY_EXITS = (EXIT_BAD_SPEC, EXIT_DATA_REJECTED)


def record_path(dataset: str, run_date: date) -> Path:
    return home() / "runs" / dataset / run_date.isoformat() / RECORD_NAME


def read_run(dataset: str, run_date: date) -> dict[str, Any]:
    path = record_path(dataset, run_date)
    return json.loads(path.read_text()) if path.exists() else {}


def update_run(dataset: str, run_date: date, **sections: Any) -> dict[str, Any]:
    """Merge top-level sections into the record and write it atomically, under a lock so that
    two writers (a stage and the notifier, say) never lose each other's sections."""
    path = record_path(dataset, run_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".record.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        record = read_run(dataset, run_date)
        record |= {"dataset": dataset, "run_date": run_date.isoformat()} | sections
        write_json_atomically(path, record)
    return record


def write_json_atomically(path: Path, data: Any) -> None:
    """Write `path` whole or not at all: a temp file beside it, renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def list_runs(dataset: str) -> list[dict[str, Any]]:
    """Every run record of a dataset, newest run date first."""
    folder = home() / "runs" / dataset
    paths = sorted(folder.glob(f"*/{RECORD_NAME}"), reverse=True)
    return [json.loads(p.read_text()) for p in paths]


def data_docs(record: dict[str, Any]) -> dict[str, str]:
    """The run's Data Docs pages: raw suite, drift checks, features suite."""
    validate = record.get("validate") or {}
    pages = {
        "raw": validate.get("data_docs"),
        "drift": (validate.get("drift") or {}).get("data_docs"),
        "features": ((record.get("preprocess") or {}).get("validation") or {}).get("data_docs"),
    }
    return {suite: page for suite, page in pages.items() if page}


def stage_outcome(stage: str, section: dict[str, Any]) -> str:
    """What a finished stage did, in a few words, from its section of the record."""
    history = section.get("history")
    if history:
        failed = history["failed"]
        return (
            f"{_day_outcome(stage, section)}; and {history['days']} earlier day(s) from "
            f"{history['from']}"
            + (f", {len(failed)} failed ({', '.join(failed)})" if failed else "")
        )
    return _day_outcome(stage, section)


def _day_outcome(stage: str, section: dict[str, Any]) -> str:
    get = section.get
    warnings = len(get("failed_warning") or [])
    outcomes = {
        "ingest": lambda: (
            f"{get('rows_valid')} rows valid"
            + (f" ({get('rows_unlabelled')} unlabelled)" if get("rows_unlabelled") else "")
            + f", {get('rows_quarantined')} quarantined"
        ),
        "validate": lambda: "passed" + (f" with {warnings} warning(s)" if warnings else ""),
        "preprocess": lambda: f"{get('rows')} rows from {len(get('window') or [])} day(s)",
        "train": lambda: (
            f"{get('train_rows')} training rows, {get('epochs', get('iterations'))} epochs, "
            f"kept epoch {get('kept_epoch')} ({get('stopped')})"
        ),
        "evaluate": lambda: f"{get('decision')}: {get('reason')}",
        "publish": lambda: (
            f"version {get('version')}, champion "
            + ("moved to it" if get("champion_moved") else "unchanged")
        ),
    }
    return outcomes[stage]() if stage in outcomes else ""
