"""One run of a dataset at a time, wherever it comes from: the scheduler, the UI, a backfill or
`retrain run`.

A run claims its dataset before its first stage, and every stage checks the claim is still its
own. The claim holds while Airflow says the holder is queued or running (and, for a `retrain
run`, while that process lives); a finished, failed or vanished holder's claim is taken over.
Airflow's `max_active_runs` alone cannot do this: it counts each backfill apart from the other
runs, and `dag.test` (behind `retrain run`) is gated by nothing. Serial runs also keep one day's
training window from taking a neighbour day that another run validates meanwhile.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrain.errors import RetrainError
from retrain.lake import write_object
from retrain.paths import home

ACTIVE_STATES = ("queued", "running")
CLI_PID_ENV = "RETRAIN_CLI_PID"  # set by `retrain run`, whose `dag.test` runs tasks in-process
_TEXT_FIELDS = ("dag_id", "run_id", "run_date", "host", "claimed_at")  # in every claim
_MAX_PID = 1 << 22  # Linux's largest pid_max
_SHOWN_CHARS = 200  # of a broken claim, in its error


class ClaimError(RetrainError):
    """A claim file that retrain did not write (empty, not JSON, fields missing or mistyped):
    nobody can say whose run holds the dataset, so a person must look."""


def claim_path(dataset: str) -> Path:
    return home() / "locks" / f"{dataset}.claim.json"


def read_claim(dataset: str) -> dict[str, Any] | None:
    """The dataset's claim, None if there is none; ClaimError if the file is not a claim."""
    path = claim_path(dataset)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as err:  # a folder where the claim should be, unreadable, ...
        text, problem = "", f"cannot be read ({err.strerror})"
    else:
        problem = _claim_problem(text)
    if problem:
        shown = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
        raise ClaimError(
            f"the claim file {path} {problem} (it holds {shown!r}), so no run can tell whether "
            f"{dataset} is free. If no run of {dataset} is queued or running, remove it: "
            f"rm '{path}'"
        )
    return json.loads(text)


def _claim_problem(text: str) -> str | None:
    """What makes `text` something other than a claim `take` wrote, or None."""
    try:
        claim = json.loads(text)
    except ValueError:
        return "is empty" if not text.strip() else "is not JSON"
    if not isinstance(claim, dict):
        return "is not a JSON object"
    missing = [name for name in _TEXT_FIELDS if not isinstance(claim.get(name), str)]
    if missing:
        return f"lacks {', '.join(missing)} as text"
    pid = claim.get("cli_pid")
    if pid is not None and (type(pid) is not int or not 0 < pid <= _MAX_PID):
        return "has a cli_pid that is not a process id"
    return None


def cli_process_gone(holder: dict[str, Any]) -> bool:
    """A `retrain run` killed mid-run leaves its Airflow run 'running' forever: its process is
    the truth. Only provable on the host that ran it."""
    pid = holder.get("cli_pid")
    if not pid or holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take(
    dataset: str, run: dict[str, str], state_of: Callable[[str, str], str | None]
) -> dict[str, Any] | None:
    """Claim `dataset` for `run` ({dag_id, run_id, run_date}). Returns None once the claim is
    the run's, or the other run's claim while that run is active (then nothing changes).
    `state_of(dag_id, run_id)` is Airflow's state of a run (None if there is no such run)."""
    path = claim_path(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # check and set as one step, across processes
        holder = read_claim(dataset)
        if holder and (holder["dag_id"], holder["run_id"]) == (run["dag_id"], run["run_id"]):
            return None
        if (
            holder
            and not cli_process_gone(holder)
            and state_of(holder["dag_id"], holder["run_id"]) in ACTIVE_STATES
        ):
            return holder
        mine = run | {"host": socket.gethostname(), "claimed_at": datetime.now(UTC).isoformat()}
        if os.environ.get(CLI_PID_ENV):
            mine["cli_pid"] = int(os.environ[CLI_PID_ENV])
        write_object(str(path), json.dumps(mine, indent=2, sort_keys=True))
        return None


def describe(dataset: str, holder: dict[str, Any]) -> str:
    return (
        f"{dataset} is being processed by {holder['dag_id']} run {holder['run_id']} "
        f"(date {holder['run_date']}, since {holder['claimed_at']})"
    )
