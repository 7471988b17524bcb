"""Validation cost side by side in one process: GX result formats, drift, a plain aggregate.

    .venv/bin/python bench/validation.py [--rows 1000000] [--repeats 3]

On one cached synthetic partition (id, label, 20 features) with a 23-expectation suite, it times
the raw suite with BOOLEAN_ONLY (what the validate stage runs) and with SUMMARY (GX's default),
the drift pass against a second partition, and one hand-written Spark aggregate computing the
same checks; it counts the Spark jobs of each. Medians of the repeats; ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from retrain.spark.drift import drift_stats
from retrain.spark.job import counting_spark_jobs
from retrain.spark.validation import run_suite
from retrain.spec import parse_spec

FEATURES = [f"f{i}" for i in range(20)]
LABELS = [0, 1, 2, 3, 4]


def synthetic(spark: SparkSession, rows: int, seed: int, shift: float = 0.0):
    return spark.range(rows).select(
        F.col("id"),
        (F.rand(seed) * len(LABELS)).cast("int").alias("label"),
        *[(F.randn(seed + i + 1) + shift).alias(f) for i, f in enumerate(FEATURES)],
    )


def suite() -> dict:
    expectations = [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}},
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "label", "value_set": LABELS},
        },
        *[
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": f, "min_value": -10, "max_value": 10},
            }
            for f in FEATURES
        ],
    ]
    return {"name": "bench_raw", "expectations": expectations}


def hand_written(frame) -> dict:
    """The same checks as one aggregate: what the suite costs without GX."""
    row = frame.agg(
        F.count("*").alias("rows"),
        F.count_distinct("id").alias("ids"),
        F.count_if(F.col("label").isNull()).alias("null_labels"),
        F.count_if(~F.col("label").isin(LABELS)).alias("bad_labels"),
        *[F.count_if((F.col(f) < -10) | (F.col(f) > 10)).alias(f) for f in FEATURES],
    ).first()
    return row.asDict()


def timed(spark: SparkSession, name: str, action) -> tuple[float, int]:
    started = time.perf_counter()
    with counting_spark_jobs(spark, name) as jobs:
        action()
    return time.perf_counter() - started, jobs[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spark = (
        SparkSession.builder.master("local[*]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spec = parse_spec(
        {
            "name": "bench",
            "registered_model_name": "bench",
            "schema": {"id": "long", "label": "int", **dict.fromkeys(FEATURES, "double")},
            "id_column": "id",
            "label_column": "label",
            "feature_columns": FEATURES,
        },
        "bench",
    )
    with tempfile.TemporaryDirectory() as folder:
        for name, seed in (("current", 1), ("reference", 2)):
            synthetic(spark, args.rows, seed).write.parquet(f"{folder}/{name}")
        current = spark.read.parquet(f"{folder}/current").cache()
        reference = spark.read.parquet(f"{folder}/reference").cache()
        current.count(), reference.count()
        gx_root = Path(folder) / "gx"
        cases = {
            "gx_boolean_only": lambda: run_suite(current, suite(), gx_root, "b"),
            "gx_summary": lambda: run_suite(current, suite(), gx_root, "s", "SUMMARY"),
            "drift": lambda: drift_stats(current, reference, spec, [args.rows]),
            "hand_written_aggregate": lambda: hand_written(current),
        }
        results = {}
        for name, action in cases.items():
            runs = [timed(spark, f"{name}-{i}", action) for i in range(args.repeats)]
            results[name] = {
                "seconds": round(statistics.median(r[0] for r in runs), 2),
                "spark_jobs": runs[-1][1],
            }
    base = results["hand_written_aggregate"]["seconds"]
    report = {
        "rows": args.rows,
        "expectations": len(suite()["expectations"]),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "results": results,
        "gx_boolean_only_vs_aggregate": round(results["gx_boolean_only"]["seconds"] / base, 2),
        "gx_summary_vs_boolean_only": round(
            results["gx_summary"]["seconds"] / results["gx_boolean_only"]["seconds"], 2
        ),
    }
    print(json.dumps(report, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
