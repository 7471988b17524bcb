"""The shipped suites, severity rules, and the validate job with drift, on real Spark and GX."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F
from sklearn.datasets import load_digits

from jobs import validate as validate_job
from retrain import results
from retrain.errors import RetrainError
from retrain.lake import is_validated, read_bytes, read_object, set_validated
from retrain.runs import read_run, run_folder
from retrain.spark.drift import psi
from retrain.spark.features import build_features
from retrain.spark.job import counting_spark_jobs
from retrain.spark.validation import failures, load_suite, run_suite
from retrain.spec import SpecError
from tests.helpers import context, toy_spec

DIGITS_DDL = "id long, label int, " + ", ".join(f"p{i} double" for i in range(64))


@pytest.fixture(scope="module")
def digits_rows():
    images, labels = load_digits(return_X_y=True)
    return [(i, int(labels[i]), *map(float, images[i])) for i in range(900)]


def test_digits_raw_suite_passes_real_images(spark, tmp_path, digits_rows):
    frame = spark.createDataFrame(digits_rows, DIGITS_DDL)
    result, docs = run_suite(frame, load_suite("digits", "raw"), tmp_path, "good")
    assert result["success"], failures(result)
    assert result["statistics"]["evaluated_expectations"] == len(
        load_suite("digits", "raw")["expectations"]
    )
    assert docs is not None and docs.endswith(".html")
    assert "digits_raw" in Path(docs).read_text()


def test_a_whole_suite_costs_a_few_spark_jobs_not_one_per_expectation(
    spark, tmp_path, digits_rows
):
    frame = spark.createDataFrame(digits_rows, DIGITS_DDL).cache()
    frame.count()
    suite = load_suite("digits", "raw")
    with counting_spark_jobs(spark, "suite-cost") as jobs:
        run_suite(frame, suite, tmp_path, "cost")
    assert len(suite["expectations"]) > 60
    assert jobs[0] <= 15
    frame.unpersist()


def test_digits_raw_suite_fails_a_broken_day(spark, tmp_path, digits_rows):
    broken = list(digits_rows)
    broken[0] = (broken[0][0], 11, *broken[0][2:])  # a label that is not a digit
    broken[1] = (broken[1][0], broken[1][1], 40.0, *broken[1][3:])  # pixel out of 0..16
    broken[2] = (broken[3][0], *broken[2][1:])  # duplicate id
    frame = spark.createDataFrame(broken, DIGITS_DDL)
    result, _ = run_suite(frame, load_suite("digits", "raw"), tmp_path, "bad")
    critical, warning = failures(result)
    assert not result["success"]
    assert sorted(c.split(", ")[0] for c in critical) == [
        "expect_column_values_to_be_between(column='p0'",
        "expect_column_values_to_be_in_set(column='label'",
        "expect_column_values_to_be_unique(column='id')",
    ]
    assert warning == []


def test_digits_features_suite_passes_a_window_and_fails_a_missing_class(
    spark, tmp_path, digits_rows
):
    window = spark.createDataFrame(digits_rows, DIGITS_DDL).withColumn("ds", F.lit("2026-03-01"))
    spec = toy_spec(
        name="digits",
        schema={"id": "long", "label": "int", **{f"p{i}": "double" for i in range(64)}},
        feature_columns=[f"p{i}" for i in range(64)],
    )
    suite = load_suite("digits", "features")
    good, _ = run_suite(build_features(spark, window, spec), suite, tmp_path, "good")
    assert failures(good) == ([], [])
    no_sevens = build_features(spark, window.where("label <> 7"), spec)
    bad, _ = run_suite(no_sevens, suite, tmp_path, "bad", "SUMMARY")
    critical, _ = failures(bad)
    assert len(critical) == 1
    assert critical[0].startswith("expect_column_distinct_values_to_equal_set(column='label'")


@pytest.mark.parametrize(
    "how", [{"severity": "warning"}, {"meta": {"severity": "warning"}}, {"severity": "info"}]
)
def test_a_non_critical_severity_is_recorded_but_not_critical(spark, tmp_path, how):
    """GX's own `severity` field, or the older `meta.severity`: GX's result carries it."""
    suite = {
        "name": "toy_raw",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "x", "max_value": 1}}
            | how,
        ],
    }
    frame = spark.createDataFrame([(1, 5.0), (2, 0.0)], "id long, x double")
    result, _ = run_suite(frame, suite, tmp_path, "warn", "SUMMARY")
    critical, warning = failures(result)
    assert critical == []
    assert warning == ["expect_column_max_to_be_between(column='x', max_value=1.0): observed 5.0"]
    assert result["results"][1]["expectation_config"]["severity"] == how.get("severity", "warning")


def test_missing_or_broken_suites_are_clear_errors(home):
    with pytest.raises(SpecError, match="no 'raw' expectation suite for nowhere"):
        load_suite("nowhere", "raw")
    path = home.parent / "specs" / "expectations" / "toy" / "raw.json"
    path.write_text(
        json.dumps({"name": "t", "expectations": [{"type": "x", "meta": {"severity": "fatal"}}]})
    )
    with pytest.raises(SpecError, match="has severity 'fatal'; use one of 'critical', 'warn"):
        load_suite("toy", "raw")
    both = {"type": "x", "severity": "critical", "meta": {"severity": "warning"}}
    path.write_text(json.dumps({"name": "t", "expectations": [both]}))
    with pytest.raises(SpecError, match="severity 'critical' and meta.severity 'warning'"):
        load_suite("toy", "raw")


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    same = psi({"0": 50, "1": 50}, {"0": 500, "1": 500})
    moved = psi({"0": 20, "1": 80}, {"0": 500, "1": 500})
    gone = psi({"0": 0, "1": 100}, {"0": 500, "1": 500})
    assert same == pytest.approx(0.0, abs=1e-3)
    assert 0.1 < moved < gone


COLUMNS = "id long, label string, x double, y double"
REFERENCE_DAYS = ("2025-12-30", "2025-12-31", "2026-01-01")


def _day(spark, ctx, day: str, rows: int, low: float, *, seed: int, validated=False, labels="ab"):
    """A raw partition of uniform x in [low, 10), labels taken in turn from `labels`."""
    rng = np.random.default_rng(seed)
    data = [
        (i, labels[i % len(labels)], float(rng.uniform(low, 10)), float(rng.normal()))
        for i in range(rows)
    ]
    partition = ctx.paths.raw(date.fromisoformat(day))
    spark.createDataFrame(data, COLUMNS).write.mode("overwrite").parquet(partition)
    set_validated(spark, partition, validated)
    return partition


def test_validate_job_passes_marks_the_partition_and_records_docs(spark, home):
    ctx = context(toy_spec(), "2026-01-02")
    _day(spark, ctx, "2026-01-01", 400, 0.0, seed=1, validated=True)
    partition = _day(spark, ctx, "2026-01-02", 420, 0.0, seed=2)
    section = validate_job.run(spark, ctx)
    assert section["success"] and is_validated(spark, partition)
    assert section["failed_warning"] == []
    drift = section["drift"]
    assert drift["reference_days"] == ["2026-01-01"]
    assert drift["rows_vs_window"] == pytest.approx(420 / 400)
    assert set(drift["psi"]) == {"label", "x", "y"}
    assert max(drift["psi"].values()) < 0.1  # same distribution: only sampling noise
    assert Path(section["data_docs"]).exists() and Path(drift["data_docs"]).exists()
    for page in (section["data_docs"], drift["data_docs"]):  # copied into the lake's site
        relative = page.split("/data_docs/local_site/", 1)[1]
        assert read_bytes(f"{results.docs_folder('toy')}/{relative}") == Path(page).read_bytes()
    assert section["spark_jobs"] > 0
    saved = json.loads(read_object(f"{run_folder('toy', ctx.run_date)}/validation_raw.json"))
    assert saved["success"] and saved["statistics"]["evaluated_expectations"] > 0


@pytest.mark.parametrize(
    ("rows", "low", "message"),
    [
        (400, 5.0, r"drift of feature x \(PSI\): [0-9.]+, allowed at most 0.25"),
        (150, 0.0, r"rows of the day \(150\) vs the window's daily median \(400\): 0.375"),
    ],
    ids=["drifted feature", "half the rows"],
)
def test_drift_or_volume_beyond_the_critical_threshold_fails(spark, home, rows, low, message):
    ctx = context(toy_spec(), "2026-01-02")
    for seed, day in enumerate(REFERENCE_DAYS):  # drift.min_reference_days (3) days
        _day(spark, ctx, day, 400, 0.0, seed=seed, validated=True)
    partition = _day(spark, ctx, "2026-01-02", rows, low, seed=2)
    with pytest.raises(RetrainError, match=message) as failure:
        validate_job.run(spark, ctx)
    assert "Data Docs: " in str(failure.value)
    assert not is_validated(spark, partition)
    record = read_run("toy", ctx.run_date)["validate"]
    assert record["success"] is False
    assert Path(record["drift"]["data_docs"]).exists()


def _failed(section) -> str:
    return " | ".join(section["failed_warning"])


def test_drift_against_too_few_days_and_label_drift_are_warnings_unless_the_spec_says(spark, home):
    ctx = context(toy_spec(), "2026-01-02")
    _day(spark, ctx, "2026-01-01", 400, 0.0, seed=1, validated=True)
    # x moved and half the rows: critical against 3 days, but there is one reference day.
    partition = _day(spark, ctx, "2026-01-02", 150, 5.0, seed=2)
    section = validate_job.run(spark, ctx)
    assert section["success"] and is_validated(spark, partition)
    assert "drift of feature x (PSI)" in _failed(section)
    assert "1 reference day(s), fewer than drift.min_reference_days=3" in _failed(section)
    assert "rows of the day (150)" in _failed(section)
    # With three reference days, a label that swung (a:b from 1:1 to 3:1) is still a warning...
    three = context(toy_spec(), "2026-01-02")
    for seed, day in enumerate(REFERENCE_DAYS):
        _day(spark, three, day, 400, 0.0, seed=seed, validated=True)
    _day(spark, three, "2026-01-02", 400, 0.0, seed=9, labels="aaab")
    section = validate_job.run(spark, three)
    assert section["success"] and section["drift"]["psi"]["label"] > 0.1
    assert "drift of label label (PSI)" in _failed(section)
    # ...a failure where the spec makes label drift critical, and not even a warning where
    # a calibrated band for the label allows such swings.
    strict = context(toy_spec(drift={"label": "critical"}), "2026-01-02")
    with pytest.raises(RetrainError, match=r"drift of label label \(PSI\)"):
        validate_job.run(spark, strict)
    calibrated = context(toy_spec(drift={"psi_by_column": {"label": [1.0, 2.0]}}), "2026-01-02")
    assert "drift of label" not in _failed(validate_job.run(spark, calibrated))


def test_a_day_that_failed_is_not_a_drift_reference(spark, home):
    ctx = context(toy_spec(), "2026-01-03")
    _day(spark, ctx, "2026-01-02", 400, 5.0, seed=1, validated=False)  # failed earlier
    _day(spark, ctx, "2026-01-03", 400, 0.0, seed=2)
    section = validate_job.run(spark, ctx)
    assert section["drift"] == {
        "reference_days": [],
        "skipped": "no earlier validated day in the window",
    }
