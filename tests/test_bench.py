"""`make bench` cannot break in silence: every case of bench/cases.py runs here at tiny sizes, in
this process on the tests' Spark session, and its results go through the same summary and table
as `make bench`'s (the DAG part of the bench reads a real run: tests/test_end_to_end.py). The
numbers mean nothing at these sizes; what is checked is that each case measures what it says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import cases, public
from bench.run import SIZES, markdown, measure_cases, summarize

pytestmark = pytest.mark.integration


def in_process(case: str, *args: str, timeout: int = 0) -> dict[str, Any]:
    """What `python -m bench.cases CASE ARGS` prints, computed here."""
    result = cases.CASES[case](cases.parse_args([case, *args]))
    return json.loads(json.dumps(result))  # as the bench reads it back


@pytest.fixture(scope="module")
def bench(spark, tmp_path_factory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("bench")
    measured = measure_cases(SIZES["tiny"], "tiny", run=in_process, data=data)
    return summarize("tiny", SIZES["tiny"], measured, dags=[], history=None)


def test_every_student_trains_and_is_timed(bench):
    target = bench["target_f1"]
    assert 0.3 < target < bench["ceiling_f1"] < 1
    for name, runs in bench["cases"]["students"].items():
        for run in runs:
            assert 0 < run["f1"] <= 1, name
            if run.get("seconds") is not None:  # reached: timed, at or above the target
                assert run["seconds"] > 0 and run["f1"] >= target, (name, run)
    # the adam trainer reports each attempt and its FLOP rate; the students reach the target
    trainer = bench["cases"]["students"]["trainer_cold"][0]
    assert trainer["attempts"][0]["epochs"] == 1 and trainer["epoch_gflops"] > 0
    assert bench["cases"]["students"]["trainer_cold_one_task"][0]["tasks"] == 1
    assert all(v is not None for v in bench["time_to_f1_seconds"].values()), bench[
        "time_to_f1_seconds"
    ]


def test_the_machine_cases_measure_rates(bench):
    assert bench["keys"]["gemm_peak_gflops_fp32"] > 0
    passes = bench["cases"]["mlp_pass"][0]
    assert passes["mlp_pass_gflops"] > 0 and passes["rows"] == 1600  # ids % 5 != 0
    assert bench["cases"]["mlp_pass_1024_blocks"][0]["block_size"] == 1024
    gx = bench["cases"]["gx"]
    assert gx["rows"] == 2000 and gx["expectations"] > 10 and gx["gx_vs_aggregate_ratio"] > 0


def test_quality_compares_with_scikit_learn_on_the_same_split(bench):
    penguins = bench["cases"]["quality"]["datasets"]["penguins"]
    rows = penguins["rows"]
    assert sum(rows.values()) == 344  # every penguin: gaps are imputed, as in scikit-learn
    for model in ("retrain", "logistic_regression", "mlp"):
        assert penguins[model]["weighted_f1"] > 0.9, (model, penguins[model])
    assert bench["keys"]["f1_vs_best_sklearn_min"] == penguins["f1_vs_best_sklearn"]


@pytest.mark.parametrize("name", public.NAMES)
def test_every_public_dataset_loads_with_an_id_and_a_label(name):
    frame = public.load(name)
    assert list(frame.columns[:1]) == ["id"] and "label" in frame.columns
    assert frame["id"].is_unique and frame["label"].nunique() >= 2
    assert len(frame) >= 300


def test_the_table_shows_every_key(bench):
    table = markdown(bench | {"date": "today"})
    for key, value in bench["keys"].items():
        if key == "mllib_lbfgs":
            continue
        if not key.endswith("gflops") and not key.endswith("gflops_fp32"):  # in a row's label
            assert f"| {key}" in table, key
        if value is not None:
            assert f"{value:g}" in table, key
    assert "| penguins |" in table and "rows end to end" not in table
