from __future__ import annotations

import json
from datetime import date

import pytest
from pyspark.sql import functions as F

from jobs import preprocess
from retrain.errors import RetrainError
from retrain.lake import set_validated
from retrain.paths import window_dates
from retrain.spark.features import build_features
from tests.helpers import context, toy_spec

COLUMNS = "id long, label string, x double, y double"


def write_raw(spark, ctx, day: str, rows: list[tuple], validated: bool = True) -> None:
    partition = ctx.paths.raw(date.fromisoformat(day))
    spark.createDataFrame(rows, COLUMNS).write.mode("overwrite").parquet(partition)
    set_validated(spark, partition, validated)


def test_window_dates_end_at_the_run_date():
    assert window_dates(date(2026, 3, 2), 3) == [
        date(2026, 2, 28),
        date(2026, 3, 1),
        date(2026, 3, 2),
    ]


def test_window_dedupes_latest_day_and_ignores_later_and_unvalidated_days(spark, home):
    spec = toy_spec(window_days=3)
    ctx = context(spec, "2026-01-02")
    write_raw(spark, ctx, "2025-12-31", [(8, "a", 8.0, 8.0)], validated=False)  # failed its suite
    write_raw(spark, ctx, "2025-12-30", [(9, "a", 9.0, 9.0)])  # outside the window
    write_raw(spark, ctx, "2026-01-01", [(1, "a", 1.0, None), (2, "b", 2.0, 2.0)])
    write_raw(  # id 5 has no label yet: scored, never trained on
        spark, ctx, "2026-01-02", [(1, "b", 10.0, 10.0), (3, "a", None, 3.0), (5, None, 5.0, 5.0)]
    )
    write_raw(spark, ctx, "2026-01-03", [(4, "a", 4.0, 4.0)])  # after the run date
    result = preprocess.run(spark, ctx)
    assert result["window"] == ["2026-01-01", "2026-01-02"]
    assert result["rows"] == 3
    rows = {r.id: r for r in spark.read.parquet(ctx.paths.features(ctx.run_date)).collect()}
    assert set(rows) == {1, 2, 3}
    assert (rows[1].label, rows[1].x, rows[1].source_ds) == ("b", 10.0, "2026-01-02")
    assert rows[3].x is None  # nulls are left for the pipeline's imputer
    assert sum(result["rows_by_split"].values()) == 3


def test_split_is_stable_and_close_to_the_fractions(spark):
    spec = toy_spec()
    ids = spark.range(20_000).select(
        F.col("id"), F.lit("a").alias("label"), F.lit(1.0).alias("x"), F.lit(1.0).alias("y")
    )
    day1 = build_features(spark, ids.withColumn("ds", F.lit("2026-01-01")), spec)
    day2 = build_features(
        spark, ids.filter("id % 2 = 0").withColumn("ds", F.lit("2026-01-02")), spec
    )
    shares = {r.split: r["count"] / 20_000 for r in day1.groupBy("split").count().collect()}
    assert shares["train"] == pytest.approx(0.7, abs=0.02)
    assert shares["validation"] == pytest.approx(0.15, abs=0.02)
    assert shares["test"] == pytest.approx(0.15, abs=0.02)
    moved = day1.alias("a").join(day2.alias("b"), "id").filter("a.split <> b.split").count()
    assert moved == 0


def test_content_hash_changes_with_the_data(spark):
    frame = spark.createDataFrame(
        [(1, "a", 1.0, 2.0, "d", "train")],
        "id long, label string, x double, y double, source_ds string, split string",
    )
    same = preprocess.summarize(frame)
    assert same == preprocess.summarize(frame)
    other = preprocess.summarize(frame.withColumn("x", F.lit(1.5)))
    assert other["content_hash"] != same["content_hash"]
    assert same["rows_by_split"] == {"train": 1, "validation": 0, "test": 0}


def test_unvalidated_raw_partition_is_an_error(spark, home):
    with pytest.raises(RetrainError, match="raw partition .* has not passed validation"):
        preprocess.run(spark, context(toy_spec(), "2026-02-01"))


def test_features_failing_their_suite_are_not_written(spark, home):
    ctx = context(toy_spec(), "2026-01-02")
    write_raw(spark, ctx, "2026-01-02", [(1, "a", 1.0, 1.0), (2, "b", 2.0, 2.0)])
    preprocess.run(spark, ctx)  # the toy suite passes
    suite = home.parent / "specs" / "expectations" / "toy" / "features.json"
    suite.write_text(
        json.dumps(
            {
                "name": "toy_features",
                "expectations": [
                    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 50}}
                ],
            }
        )
    )
    write_raw(spark, ctx, "2026-01-02", [(3, "a", 1.0, 1.0)])
    with pytest.raises(RetrainError, match=r"failed their suite: .*row_count.*observed 1"):
        preprocess.run(spark, ctx)
    kept = spark.read.parquet(ctx.paths.features(ctx.run_date)).collect()
    assert sorted(r.id for r in kept) == [1, 2]  # the previous features, untouched
