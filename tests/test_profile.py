"""`retrain suggest-suite`: suites profiled from a real landing partition, checked by real GX."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F

from retrain.errors import RetrainError
from retrain.spark.features import build_features
from retrain.spark.validation import failures, run_suite
from retrain.tools.cli_common import CliError
from retrain.tools.cli_datasets import write_suggested_suites
from retrain.tools.profile import suggest_suites
from tests.helpers import toy_spec

DAY = date(2026, 1, 2)
LINES = [
    "id,label,x,y",
    *[f"{i},{'ab'[i % 2]},{i % 7}.5,{'' if i % 10 == 0 else i}" for i in range(1, 41)],
]


@pytest.fixture
def landed(home):
    folder = home / "lake" / "landing" / "toy" / f"ds={DAY}"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text("\n".join([*LINES, "41,a,not-a-number,1"]) + "\n")
    return folder


def by_type(suite: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for item in suite["expectations"]:
        found.setdefault(item["type"], []).append(item)
    return found


def test_suggested_raw_suite_describes_the_day(spark, landed):
    suites = suggest_suites(spark, toy_spec(), DAY)
    raw = by_type(suites["raw"])
    assert suites["raw"]["meta"]["rows"] == 40  # the unparseable row is not profiled
    (band,) = raw["expect_table_row_count_to_be_between"]
    assert (band["kwargs"]["min_value"], band["kwargs"]["max_value"]) == (20, 80)
    assert band["severity"] == "warning"  # one day's count
    (columns,) = raw["expect_table_columns_to_match_set"]
    assert columns["kwargs"]["column_set"] == ["id", "label", "x", "y"]
    nulls = {e["kwargs"]["column"]: e for e in raw["expect_column_values_to_not_be_null"]}
    assert nulls["id"]["severity"] == "critical"
    assert nulls["y"]["severity"] == "warning"  # 4 of 40 are empty
    assert nulls["y"]["kwargs"]["mostly"] == 0.81  # 90% of the observed 0.9, rounded down
    assert "label" not in nulls  # unlabelled rows have their own limit in the spec
    (label_set,) = [
        e for e in raw["expect_column_values_to_be_in_set"] if e["kwargs"]["column"] == "label"
    ]
    assert label_set["kwargs"]["value_set"] == ["a", "b"]
    assert label_set["severity"] == "critical"
    (x_range,) = [
        e for e in raw["expect_column_values_to_be_between"] if e["kwargs"]["column"] == "x"
    ]
    assert (x_range["kwargs"]["min_value"], x_range["kwargs"]["max_value"]) == (0.5, 6.5)
    assert x_range["severity"] == "warning"
    assert [e["kwargs"]["column"] for e in raw["expect_column_values_to_be_unique"]] == ["id"]
    types = {
        e["kwargs"]["column"]: e["kwargs"]["type_"]
        for e in raw["expect_column_values_to_be_of_type"]
    }
    assert types == {"id": "LongType", "label": "StringType", "x": "DoubleType", "y": "DoubleType"}


def test_suggested_suites_pass_their_own_day_and_catch_a_broken_one(spark, landed, tmp_path):
    spec = toy_spec()
    suites = suggest_suites(spark, spec, DAY)
    day = spark.createDataFrame(
        [
            (int(r[0]), r[1], float(r[2]), float(r[3]) if r[3] else None)
            for r in (line.split(",") for line in LINES[1:])
        ],
        "id long, label string, x double, y double",
    )
    good, _ = run_suite(day, suites["raw"], tmp_path, "good")
    assert failures(good) == ([], [])
    broken = day.withColumn("label", F.when(F.col("id") == 1, "c").otherwise(F.col("label")))
    bad, _ = run_suite(broken, suites["raw"], tmp_path, "bad")
    critical, _ = failures(bad)
    assert [c.split("(")[0] for c in critical] == ["expect_column_values_to_be_in_set"]
    features = build_features(spark, day.withColumn("ds", F.lit(DAY.isoformat())), spec)
    checked, _ = run_suite(features, suites["features"], tmp_path, "features")
    assert failures(checked) == ([], [])


def toy_day(spark, ids: range, shift: float = 0.0):
    """A day of toy rows as ingest stores them: labels a/b, x within the profiled range."""
    rows = [(i, "ab"[i % 2], (i % 7) + 0.5 + shift, float(i)) for i in ids]
    return spark.createDataFrame(rows, "id long, label string, x double, y double")


def test_suites_profiled_on_a_small_day_hold_on_other_ordinary_days(spark, home, tmp_path):
    """Profiled on 6 rows (no validation id among them), checked on days of 40 and 300 rows:
    only warnings, never a critical failure."""
    spec = toy_spec()
    small = date(2026, 1, 3)
    folder = home / "lake" / "landing" / "toy" / f"ds={small}"
    folder.mkdir(parents=True)
    lines = ["id,label,x,y", *[f"{i},{'ab'[i % 2]},{(i % 7) + 0.5},{i}" for i in range(1, 7)]]
    (folder / "part-0.csv").write_text("\n".join(lines) + "\n")
    suites = suggest_suites(spark, spec, small)
    profiled = build_features(
        spark, toy_day(spark, range(1, 7)).withColumn("ds", F.lit("d")), spec
    )
    assert "validation" not in {r.split for r in profiled.select("split").collect()}
    (split_set,) = [e for e in by_type(suites["features"])["expect_column_values_to_be_in_set"]
                    if e["kwargs"]["column"] == "split"]  # fmt: skip
    assert split_set["kwargs"]["value_set"] == ["train", "validation", "test"]
    for size, other in ((40, date(2026, 1, 4)), (300, date(2026, 1, 5))):
        day = toy_day(spark, range(100, 100 + size))
        raw, _ = run_suite(day, suites["raw"], tmp_path, f"raw-{size}")
        features = build_features(spark, day.withColumn("ds", F.lit(str(other))), spec)
        checked, _ = run_suite(features, suites["features"], tmp_path, f"features-{size}")
        for result in (raw, checked):
            critical, _ = failures(result)
            assert critical == [], (size, critical)
        assert any("row_count" in w for w in failures(raw)[1])  # outside 6 rows' band: warned


def test_suggest_suite_refuses_to_overwrite_and_needs_data(spark, home, tmp_path, monkeypatch):
    monkeypatch.setattr("retrain.tools.cli_datasets.load_spec", lambda name: toy_spec())
    (tmp_path / "expectations" / "toy").mkdir(parents=True)
    (tmp_path / "expectations" / "toy" / "raw.json").write_text("{}")
    with pytest.raises(CliError, match=r"toy/raw.json already exist; pass --force"):
        write_suggested_suites("toy", DAY, tmp_path, force=False)
    with pytest.raises(RetrainError, match="no landing data for toy on 2026-01-05"):
        suggest_suites(spark, toy_spec(), date(2026, 1, 5))
