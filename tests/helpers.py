"""Tiny inline datasets for the job tests."""

from __future__ import annotations

from datetime import date

from retrain.job import RunContext
from retrain.paths import DatasetPaths
from retrain.spec import Spec, parse_spec

TOY = {
    "name": "toy",
    "registered_model_name": "retrain_toy",
    "source": {"format": "csv", "options": {"header": "true"}},
    "schema": {"id": "long", "label": "string", "x": "double", "y": "double"},
    "id_column": "id",
    "label_column": "label",
    "feature_columns": ["x", "y"],
    "max_bad_fraction": 0.5,
    "model": {"hidden_layers": [4], "max_iter": 100, "seed": 1},
    "gate": {"min_test_rows": 1},
}


def toy_spec(**changes: object) -> Spec:
    return parse_spec(TOY | changes, "toy.yaml")


def context(spec: Spec, day: str) -> RunContext:
    return RunContext(spec, date.fromisoformat(day), "test-run", DatasetPaths.for_spec(spec))
