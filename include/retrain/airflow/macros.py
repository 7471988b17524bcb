"""The template macros of a dataset's DAGs: what a run processes, computed once from the run's
context, and its overrides. Rendered on the worker into each stage's arguments; read by the
notifier for the same date. A leaf of the Airflow side: no operator or DAG imported.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from croniter import croniter

from retrain.spec import Spec

RUN_DATE = "{{ run_date_of(params, dag_run) }}"  # see `run_date_of`

# Typed trigger Params and the spec key each overrides for one run.
PARAM_KEYS = {
    "gate_mode": "gate.mode",
    "max_epochs": "model.max_epochs",
    "learning_rate": "model.learning_rate",
    "max_iter": "model.max_iter",
    "hidden_layers": "model.hidden_layers",
    "step_size": "model.step_size",
    "warm_start": "model.warm_start",
    "backfill_moves_champion": "gate.backfill_moves_champion",
    "allow_older_champion": "gate.allow_older_champion",
}


def overrides_of(params: dict[str, Any]) -> str:
    """The run's spec overrides as JSON: the typed Params that are set, then `overrides`."""
    chosen = {
        key: params[name] for name, key in PARAM_KEYS.items() if params.get(name) is not None
    }
    return json.dumps(chosen | dict(params.get("overrides") or {}))


def run_date_of(params: dict[str, Any], dag_run: Any, schedule: str) -> str:
    """The date a run processes, as YYYY-MM-DD: the `run_date` Param, else the start of the
    run's data interval. A scheduled run or a backfill covers the interval that ended; Airflow
    gives a manual trigger the last complete interval before it, and a trigger without a logical
    date none at all, so that one is inferred the same way: the Trigger button processes the day
    that has landed, as the schedule does."""
    if params.get("run_date"):
        return date.fromisoformat(params["run_date"]).isoformat()
    if dag_run.data_interval_start is not None:
        return dag_run.data_interval_start.date().isoformat()
    end = croniter(schedule, dag_run.run_after + timedelta(microseconds=1)).get_prev(datetime)
    return croniter(schedule, end).get_prev(datetime).date().isoformat()


def run_type_of(dag_run: Any) -> str:
    """manual, scheduled, backfill or asset_triggered (the enum's value, not its repr)."""
    return getattr(dag_run.run_type, "value", dag_run.run_type)


def macros(spec: Spec) -> dict[str, Any]:
    """The template functions of a dataset's DAGs."""
    return {
        "run_date_of": partial(run_date_of, schedule=spec.schedule),
        "overrides_of": overrides_of,
        "run_type_of": run_type_of,
    }
