"""Where every piece of state lives: all of it under one home directory by default.

RETRAIN_HOME holds the lake, the Airflow home, the MLflow store and scratch space (GX's
project folder, the code zip). RETRAIN_LAKE may point the lake elsewhere (any URI Spark and
fsspec can write, e.g. s3a://bucket/lake): the data and every piece of run state that stages
hand each other (run records, reports, validation results) live there.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

# The project checkout (specs, suites, jobs). Jobs get it from the environment: on Spark their
# copy of this package runs from the shipped zip, which is not inside the checkout.
REPO_ROOT = Path(os.environ.get("RETRAIN_PROJECT_DIR") or Path(__file__).resolve().parents[2])
SUCCESS_MARKER = "_SUCCESS"
VALIDATED_MARKER = "_VALIDATED"  # written by validate into a raw partition that passed


def home() -> Path:
    return Path(os.environ.get("RETRAIN_HOME") or REPO_ROOT / ".retrain").resolve()


def cache_dir() -> Path:
    """What can be made again and may be shared by homes on one machine (`RETRAIN_CACHE`):
    the stage drivers' class-data-sharing archive."""
    return Path(os.environ.get("RETRAIN_CACHE") or home() / "cache")


def lake_root() -> str:
    return os.environ.get("RETRAIN_LAKE") or str(home() / "lake")


def local_path(location: str) -> Path:
    """A lake location on this machine's disk (a path or a file:// URI); tools that write the
    lake's landing folders directly (demo feeds, samples) need one."""
    if location.startswith("file:"):
        return Path(urlsplit(location).path)
    if "://" in location:
        raise ValueError(f"{location} is not on this machine's disk; write it with its own tools")
    return Path(location)


def gx_root(dataset: str) -> Path:
    """GX's project folder of a dataset (its config and Data Docs site), in the home."""
    return home() / "gx" / dataset


def parse_date(value: str) -> date:
    """A date written YYYY-MM-DD, and only so (Python alone also takes "20261120"); else
    ValueError."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"{value!r} is not a date in the form YYYY-MM-DD")
    return date.fromisoformat(value)


def window_dates(run_date: date, window_days: int) -> list[date]:
    """The dates of a run's training window, oldest first, ending at the run date."""
    return [run_date - timedelta(days=n) for n in range(window_days - 1, -1, -1)]


def _join(root: str, relative: str) -> str:
    if "://" in relative or relative.startswith("/"):
        return relative.rstrip("/")
    return f"{root.rstrip('/')}/{relative}"


@dataclass(frozen=True)
class DatasetPaths:
    """The locations one dataset reads and writes, each named by its run date."""

    dataset: str
    landing: str  # landing root, from the spec

    @classmethod
    def for_spec(cls, spec) -> DatasetPaths:  # noqa: ANN001 - avoid a cycle with spec.py
        return cls(spec.name, _join(lake_root(), spec.landing_path))

    def _partition(self, zone: str, ds: date) -> str:
        return f"{lake_root()}/{zone}/{self.dataset}/ds={ds.isoformat()}"

    def landing_partition(self, ds: date) -> str:
        return f"{self.landing}/ds={ds.isoformat()}"

    def raw(self, ds: date) -> str:
        return self._partition("raw", ds)

    def quarantine(self, ds: date) -> str:
        return self._partition("quarantine", ds)

    def features(self, ds: date) -> str:
        return self._partition("features", ds)

    def candidate(self, ds: date) -> str:
        return self._partition("candidates", ds)

    def predictions(self, ds: date) -> str:
        return self._partition("predictions", ds)

    def gx_root(self) -> Path:
        return gx_root(self.dataset)
