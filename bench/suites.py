"""The benchmark's validation work, twice: a GX suite of 20 expectations, and the same 20 checks
as one hand-written Spark aggregate (the lower bound of what validation can cost)."""

from __future__ import annotations

from typing import Any

from bench.teacher import FEATURES

COLUMNS = ["id", "label", *[f"f{i}" for i in range(FEATURES)]]
RANGED = [f"f{i}" for i in range(8)]
MEANS = [f"f{i}" for i in range(4)]
PRESENT = ["f8", "f9"]


def _expect(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": "critical"}}


def bench_suite() -> dict[str, Any]:
    return {
        "name": "bench_raw",
        "expectations": [
            _expect("expect_table_row_count_to_be_between", min_value=1),
            _expect("expect_table_columns_to_match_set", column_set=COLUMNS, exact_match=True),
            _expect("expect_column_values_to_not_be_null", column="id"),
            _expect("expect_column_values_to_be_unique", column="id"),
            _expect("expect_column_values_to_not_be_null", column="label"),
            _expect(
                "expect_column_values_to_be_in_set", column="label", value_set=list(range(10))
            ),
            *[
                _expect(
                    "expect_column_values_to_be_between", column=c, min_value=-10, max_value=10
                )
                for c in RANGED
            ],
            *[
                _expect(
                    "expect_column_mean_to_be_between", column=c, min_value=-0.1, max_value=0.1
                )
                for c in MEANS
            ],
            *[_expect("expect_column_values_to_not_be_null", column=c) for c in PRESENT],
        ],
    }


def aggregate_checks(frame, F) -> dict[str, bool]:  # noqa: ANN001, N803
    """The suite's 20 checks from one aggregate over the frame (plus its schema)."""
    row = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("id").alias("ids"),
        F.count_if(F.col("id").isNull()).alias("id_nulls"),
        F.count_if(F.col("label").isNull()).alias("label_nulls"),
        F.count_if(~F.col("label").isin(list(range(10)))).alias("label_outside"),
        *[F.count_if(~F.col(c).between(-10, 10)).alias(f"out_{c}") for c in RANGED],
        *[F.avg(c).alias(f"mean_{c}") for c in MEANS],
        *[F.count_if(F.col(c).isNull()).alias(f"nulls_{c}") for c in PRESENT],
    ).first()
    return {
        "rows": row["rows"] >= 1,
        "columns": sorted(frame.columns) == sorted(COLUMNS),
        "id_present": row["id_nulls"] == 0,
        "id_unique": row["ids"] == row["rows"],
        "label_present": row["label_nulls"] == 0,
        "label_in_set": row["label_outside"] == 0,
        **{f"range_{c}": row[f"out_{c}"] == 0 for c in RANGED},
        **{f"mean_{c}": -0.1 <= row[f"mean_{c}"] <= 0.1 for c in MEANS},
        **{f"present_{c}": row[f"nulls_{c}"] == 0 for c in PRESENT},
    }
