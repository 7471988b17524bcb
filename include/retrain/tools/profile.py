"""Starting suites from data: what `retrain suggest-suite` writes for a person to review.

GX 1.x has no profilers, so this reads a sample partition in one Spark aggregate (plus one for
the domains of low-cardinality columns) and proposes: the column set, each column's type,
not-null where the sample has no nulls (a tolerated share where it has some), ranges, categorical
domains, uniqueness of the id, and a row-count band. What must hold is `critical`; what was only
observed on one sample is a `warning` until a person promotes it.
"""

from __future__ import annotations

import math
from datetime import date
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType, StringType

from retrain.errors import DataRejected
from retrain.lake import data_files, exists
from retrain.paths import DatasetPaths
from retrain.spark.features import VECTOR_TEXT, build_features
from retrain.spark.landing import usable_rows
from retrain.spark.validation import CRITICAL, WARNING
from retrain.spec import Spec, quote

MAX_DOMAIN = 20  # columns with at most this many distinct values get an allowed set
ROW_BAND = (0.5, 2.0)  # the suggested row-count band around the sample's daily counts


def _expectation(kind: str, severity: str, note: str = "", **kwargs: Any) -> dict[str, Any]:
    expectation = {"type": kind, "kwargs": kwargs, "severity": severity}
    return expectation | ({"meta": {"notes": note}} if note else {})


def _plain(value: Any) -> Any:
    """A JSON-friendly value: integral floats as ints, so suites read naturally; dates and
    timestamps as ISO text."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value


def profile(frame: DataFrame) -> dict[str, dict[str, Any]]:
    """Per column: nulls, min, max, distinct (approximate), longest text, words per value,
    whether it holds vectors; and the row count."""
    numeric = {f.name for f in frame.schema if isinstance(f.dataType, NumericType)}
    text = {f.name for f in frame.schema if isinstance(f.dataType, StringType)}
    aggregates = [F.count(F.lit(1)).alias("__rows")]
    for index, field in enumerate(frame.schema):
        column = F.col(quote(field.name))
        aggregates += [
            F.count_if(column.isNull()).alias(f"n{index}"),
            F.approx_count_distinct(column).alias(f"d{index}"),
        ]
        if field.name in numeric:
            aggregates += [F.min(column).alias(f"lo{index}"), F.max(column).alias(f"hi{index}")]
        if field.name in text:
            aggregates += [
                F.max(F.length(column)).alias(f"len{index}"),
                F.avg(F.size(F.split(F.trim(column), r"\s+"))).alias(f"w{index}"),
                F.count_if(column.isNotNull() & ~column.rlike(VECTOR_TEXT)).alias(f"nv{index}"),
            ]
    row = frame.agg(*aggregates).first().asDict()
    columns = {}
    for index, field in enumerate(frame.schema):
        columns[field.name] = {
            "type": type(field.dataType).__name__,
            "nulls": row[f"n{index}"],
            "distinct": row[f"d{index}"],
            "min": row.get(f"lo{index}"),
            "max": row.get(f"hi{index}"),
            "longest": row.get(f"len{index}"),
            "words": row.get(f"w{index}") or 0.0,  # per value, for text
            # every value a list of numbers (a vector feature), and at least one value
            "vector": row.get(f"nv{index}") == 0 and row[f"n{index}"] < row["__rows"],
        }
    small = [c for c, p in columns.items() if p["distinct"] <= MAX_DOMAIN]
    if small:
        domains = frame.agg(*[F.collect_set(quote(c)).alias(c) for c in small]).first()
        for c in small:
            columns[c]["domain"] = sorted(domains[c], key=str)
    return {"__rows": row["__rows"], **columns}


def suggest_suite(  # noqa: PLR0917 - the table, what it is, where it came from
    frame: DataFrame, spec: Spec, suite: str, source: str, daily: list[int], growth: int = 1
) -> dict[str, Any]:
    """A GX suite for `frame` (the raw or the features table of `spec`), for review.

    The row band spans the `daily` row counts of the sample's days; `growth` widens its top for
    a table that accumulates (the features of a window).
    """
    numeric = {f.name for f in frame.schema if isinstance(f.dataType, NumericType)}
    stats = profile(frame)
    rows = stats.pop("__rows")
    note = f"observed on {rows} rows of {source}"
    expectations = [
        _expectation(  # one day's count says little about the next: a warning
            "expect_table_row_count_to_be_between",
            WARNING,
            f"{min(daily)} to {max(daily)} rows a day on {len(daily)} day(s) of {source}; "
            "widen for growth",
            min_value=math.floor(min(daily) * ROW_BAND[0]),
            max_value=math.ceil(max(daily) * ROW_BAND[1] * growth),
        ),
        _expectation(
            "expect_table_columns_to_match_set",
            CRITICAL,
            column_set=list(stats),
            exact_match=True,
        ),
    ]
    for name, column in stats.items():
        expectations.append(
            _expectation(
                "expect_column_values_to_be_of_type", CRITICAL, column=name, type_=column["type"]
            )
        )
        if name == spec.label_column and suite == "raw":
            pass  # unlabelled rows are allowed; the spec's max_unlabelled_fraction limits them
        elif column["nulls"] == 0:
            expectations.append(
                _expectation("expect_column_values_to_not_be_null", CRITICAL, column=name)
            )
        else:
            share = 1 - column["nulls"] / rows
            expectations.append(
                _expectation(
                    "expect_column_values_to_not_be_null",
                    WARNING,
                    f"{column['nulls']} nulls {note}",
                    column=name,
                    mostly=math.floor(share * 0.9 * 100) / 100,
                )
            )
        if name == "source_ds":
            continue  # the day a feature row came from: any date in the window
        if name == spec.id_column:
            expectations.append(
                _expectation("expect_column_values_to_be_unique", CRITICAL, column=name)
            )
        elif "domain" in column and (name in (spec.label_column, "split") or name not in numeric):
            # The label's classes and the split are the model's contract; other categories are
            # what one sample happened to hold.
            expectations.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    CRITICAL if name in (spec.label_column, "split") else WARNING,
                    "the spec's splits" if name == "split" else note,
                    column=name,
                    # A small day may hold no validation rows; the spec says which can come.
                    value_set=spec.split.names
                    if name == "split"
                    else [_plain(v) for v in column["domain"]],
                )
            )
        elif column["min"] is not None:
            expectations.append(
                _expectation(
                    "expect_column_values_to_be_between",
                    WARNING,
                    f"{note}; make it critical to quarantine rows outside it",
                    column=name,
                    min_value=_plain(column["min"]),
                    max_value=_plain(column["max"]),
                )
            )
        if column["longest"] is not None and name not in (spec.label_column, "split"):
            expectations.append(
                _expectation(
                    "expect_column_value_lengths_to_be_between",
                    WARNING,
                    f"longest {column['longest']} {note}",
                    column=name,
                    max_value=max(1, column["longest"] * 4),
                )
            )
    return {
        "name": f"{spec.name}_{suite}",
        "expectations": expectations,
        "meta": {
            "generated_by": "retrain suggest-suite",
            "source": source,
            "rows": rows,
            "review": "a starting point: check every expectation and severity, then commit",
        },
    }


def suggest_suites(spark: SparkSession, spec: Spec, run_date: date) -> dict[str, dict[str, Any]]:
    """Starting `raw` and `features` suites from the usable rows of one landing partition."""
    source = DatasetPaths.for_spec(spec).landing_partition(run_date)
    files = data_files(spark, source) if exists(spark, source) else []
    if not files:
        raise DataRejected(f"no landing data for {spec.name} on {run_date}: {source}")
    return suggest_suites_from(spark, spec, source, {run_date: (source, files)})


def suggest_suites_from(
    spark: SparkSession, spec: Spec, source: str, days: dict[date, tuple[str, list[str]]]
) -> dict[str, dict[str, Any]]:
    """Starting suites from the usable rows of some days ({day: (path, files)}), read as ingest
    reads a partition; row-count bands from the days' own counts."""
    parts = {day: usable_rows(spark, spec, path, files) for day, (path, files) in days.items()}
    # The cached rows carry no day column: a day added before the cache made Catalyst's
    # constraint propagation over the row checks run the driver out of memory (64 columns).
    usable = reduce(DataFrame.unionByName, parts.values()).cache()
    try:
        daily = [part.count() for part in parts.values()]  # one day: served by the cache
        dated = [
            (usable if len(parts) == 1 else part).withColumn("ds", F.lit(day.isoformat()))
            for day, part in parts.items()
        ]
        features = build_features(spark, reduce(DataFrame.unionByName, dated), spec)
        return {
            "raw": suggest_suite(usable, spec, "raw", source, daily),
            "features": suggest_suite(
                features, spec, "features", f"the features of {source}", daily, spec.window_days
            ),
        }
    finally:
        usable.unpersist()
