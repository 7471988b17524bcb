from __future__ import annotations

import pytest
from sklearn.datasets import load_digits

from jobs.validate import failures, load_suite, run_suite
from retrain.job import RetrainError

DIGITS_DDL = "id long, label int, " + ", ".join(f"p{i} double" for i in range(64))


@pytest.fixture(scope="module")
def digits_rows():
    images, labels = load_digits(return_X_y=True)
    return [(i, int(labels[i]), *map(float, images[i])) for i in range(300)]


def test_digits_suite_passes_real_images(spark, tmp_path, digits_rows):
    frame = spark.createDataFrame(digits_rows, DIGITS_DDL)
    result, docs = run_suite(frame, load_suite("digits", "raw"), tmp_path, "good")
    assert result["success"], failures(result)
    assert result["statistics"]["evaluated_expectations"] == len(
        load_suite("digits", "raw")["expectations"]
    )
    assert docs is not None and docs.endswith(".html")
    assert "digits_raw" in open(docs).read()


def test_digits_suite_fails_a_broken_day(spark, tmp_path, digits_rows):
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


def test_warning_severity_is_recorded_but_not_critical(spark, tmp_path):
    suite = {
        "name": "toy_raw",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
            {
                "type": "expect_column_max_to_be_between",
                "kwargs": {"column": "x", "max_value": 1},
                "meta": {"severity": "warning"},
            },
        ],
    }
    frame = spark.createDataFrame([(1, 5.0), (2, 0.0)], "id long, x double")
    result, _ = run_suite(frame, suite, tmp_path, "warn")
    critical, warning = failures(result)
    assert critical == []
    assert warning == ["expect_column_max_to_be_between(column='x', max_value=1.0)"]


def test_missing_suite_is_a_clear_error():
    with pytest.raises(RetrainError, match="no expectation suite for nowhere"):
        load_suite("nowhere", "raw")
