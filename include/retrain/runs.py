"""The run record: one per dataset and run date, in the lake, that every stage adds to.

Each update is its own small object, `<lake>/runs/<dataset>/<date>/record/<time>-<token>.json`,
written once and never changed; the record is their merge, oldest first. So writers on
different hosts (a Spark driver, an Airflow worker's notifier) never lose each other's sections
and need no lock, and an object store needs no rename. `retrain status` reads it; the report
renders it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import date
from functools import cached_property
from typing import Any, Self, TypeVar

from retrain.lake import list_folders, list_objects, read_object, write_object
from retrain.paths import lake_root

RECORD_FOLDER = "record"
# A run's decision, as the record holds it: evaluate's gate (`retrain.spark.gate`), or the landing
# sensor's when nothing landed on a day the feed may skip.
PUBLISH, REJECT, DRY_RUN, NO_DATA = "publish", "reject", "dry_run", "no_data"
# A run's state: stages under way, the last one done, one failed; or a day ingested and
# validated by a history run (`retrain backfill`), with no model of its own.
RUNNING, SUCCESS, FAILED, HISTORY = "running", "success", "failed", "history"


def runs_root(dataset: str) -> str:
    return f"{lake_root()}/runs/{dataset}"


def run_folder(dataset: str, run_date: date) -> str:
    """The lake folder of one run date: its record, report and validation results."""
    return f"{runs_root(dataset)}/{run_date.isoformat()}"


def read_run(dataset: str, run_date: date) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for uri in list_objects(f"{run_folder(dataset, run_date)}/{RECORD_FOLDER}"):
        if uri.endswith(".json"):
            record |= json.loads(read_object(uri) or "{}")
    return record


def update_run(dataset: str, run_date: date, **sections: Any) -> None:
    """Add top-level sections to the record (a later update of a section replaces it whole)."""
    update = {"dataset": dataset, "run_date": run_date.isoformat()} | sections
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"  # the merge order
    write_object(
        f"{run_folder(dataset, run_date)}/{RECORD_FOLDER}/{name}",
        json.dumps(update, indent=1, sort_keys=True, default=str),
    )


def list_runs(dataset: str) -> list[dict[str, Any]]:
    """Every run record of a dataset, newest run date first."""
    days = [name for name in list_folders(runs_root(dataset)) if len(name) == 10]
    records = (read_run(dataset, date.fromisoformat(day)) for day in sorted(days, reverse=True))
    return [record for record in records if record]


@dataclass(frozen=True)
class Section:
    """A stage's section as the stages after it read it. A record keeps what its stage wrote
    (timings, counts, ...): `of` takes the fields named here and leaves the rest."""

    @classmethod
    def of(cls, section: dict[str, Any]) -> Self:
        return cls(**{f.name: section[f.name] for f in fields(cls) if f.name in section})


SectionType = TypeVar("SectionType", bound=Section)


@dataclass(frozen=True)
class Preprocessing(Section):
    window: list[str] = field(default_factory=list)  # the training window's days, oldest first
    content_hash: str = ""  # of the window's features: the same hash, the same data


@dataclass(frozen=True)
class Training(Section):
    params: dict[str, Any] = field(default_factory=dict)  # the spec's model section it used
    # per epoch (or iteration): train_loss, validation_loss, best_epoch, unit
    loss: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation(Section):
    """evaluate's section: the gate's decision and the numbers behind it."""

    metric: str = ""
    mode: str = ""
    decision: str | None = None
    reason: str | None = None
    candidate: dict[str, Any] = field(default_factory=dict)  # headline metrics on test rows
    champion: dict[str, Any] | None = None
    champion_version: int | None = None  # the champion the candidate was compared with
    interval: dict[str, Any] | None = None  # the paired bootstrap of the difference
    report: str | None = None  # the decision report's page in the lake
    figures: dict[str, str] = field(default_factory=dict)  # its figures, by name

    @property
    def gate_value(self) -> float:
        return self.candidate[self.metric]


@dataclass(frozen=True)
class RunRecord:
    """The run record as readers outside the stages see it (the CLI, the notifier, the task
    links): typed answers to the questions they ask, so none of them walks the sections."""

    sections: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, dataset: str, run_date: date) -> RunRecord:
        return cls(read_run(dataset, run_date))

    def section(self, stage: str) -> dict[str, Any]:
        """A stage's section ({} if it has none)."""
        return self.sections.get(stage) or {}

    @property
    def dataset(self) -> str | None:
        return self.sections.get("dataset")

    @property
    def run_date(self) -> str | None:
        return self.sections.get("run_date")

    @property
    def run_id(self) -> str | None:
        return self.sections.get("run_id")

    @property
    def state(self) -> str:
        return self.sections.get("state", "unknown")  # no stage has written yet

    @property
    def failed_stage(self) -> str | None:
        return self.sections.get("failed_stage")

    @property
    def error(self) -> str | None:
        return self.sections.get("error")

    def _typed(self, stage: str, kind: type[SectionType]) -> SectionType | None:
        return kind.of(self.section(stage)) if self.section(stage) else None

    @cached_property
    def preprocessing(self) -> Preprocessing | None:
        return self._typed("preprocess", Preprocessing)

    @cached_property
    def training(self) -> Training | None:
        return self._typed("train", Training)

    @cached_property
    def evaluation(self) -> Evaluation | None:
        return self._typed("evaluate", Evaluation)

    @property
    def decided(self) -> dict[str, Any]:
        """The section holding the run's decision: landing's `no_data` when nothing landed
        (there was no gate to decide), else evaluate's."""
        landing = self.section("landing")
        return landing if landing.get("decision") else self.section("evaluate")

    @property
    def decision(self) -> str | None:
        return self.decided.get("decision")

    @property
    def reason(self) -> str | None:
        return self.error or self.decided.get("reason")

    @property
    def report(self) -> str | None:
        """The decision report's location in the lake."""
        return self.evaluation and self.evaluation.report

    @property
    def data_docs(self) -> dict[str, str]:
        """The run's Data Docs pages: raw suite, drift checks, features suite."""
        validate = self.section("validate")
        pages = {
            "raw": validate.get("data_docs"),
            "drift": (validate.get("drift") or {}).get("data_docs"),
            "features": (self.section("preprocess").get("validation") or {}).get("data_docs"),
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
