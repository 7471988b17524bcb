"""Row rules: which rows of a day cannot be used, and why, in one Spark expression.

The raw suite is the one place a dataset's rules live. Its critical row-level expectations
(null, range, set, length, pattern, uniqueness; without `mostly`) are applied to every row at
ingest, so a bad row goes to quarantine with a reason instead of failing or poisoning the day.
GX then checks the kept rows against the whole suite, table-level expectations included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from retrain.spark.validation import is_row_rule
from retrain.spec import Spec, quote

MAX_VALUE_CHARS = 200  # a quarantined value is shown truncated; the raw record keeps it whole


@dataclass(frozen=True)
class RowRule:
    """A row is bad when `broken` is true; `reason` says why in words (no values: it groups)."""

    column: str | None
    broken: Column
    reason: str


def _between(column: Column, low: Any, high: Any, strict_low: bool, strict_high: bool) -> Column:
    too_low = F.lit(False) if low is None else (column <= low if strict_low else column < low)
    too_high = F.lit(False) if high is None else (column >= high if strict_high else column > high)
    return too_low | too_high


def _bounds(low: Any, high: Any) -> str:
    return f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"


def suite_rules(suite: dict[str, Any]) -> tuple[list[RowRule], list[str]]:
    """(row rules, columns that must be unique) from the suite's critical row expectations."""
    rules: list[RowRule] = []
    unique: list[str] = []
    for item in suite["expectations"]:
        if not is_row_rule(item):
            continue  # a warning, a table-level check, or a tolerated share: GX judges those
        kwargs = item.get("kwargs") or {}
        name, kind = kwargs["column"], item["type"]
        column = F.col(quote(name))
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if kind == "expect_column_values_to_not_be_null":
            rules.append(RowRule(name, column.isNull(), f"{name} is null"))
        elif kind == "expect_column_values_to_be_between":
            strict = (kwargs.get("strict_min", False), kwargs.get("strict_max", False))
            broken = column.isNotNull() & (_between(column, low, high, *strict) | F.isnan(column))
            rules.append(RowRule(name, broken, f"{name} is outside {_bounds(low, high)}"))
        elif kind == "expect_column_values_to_be_in_set":
            allowed = list(kwargs["value_set"])
            broken = column.isNotNull() & ~column.isin(allowed)
            rules.append(RowRule(name, broken, f"{name} is not one of the {len(allowed)} allowed"))
        elif kind == "expect_column_value_lengths_to_be_between":
            broken = column.isNotNull() & _between(F.length(column), low, high, False, False)
            rules.append(RowRule(name, broken, f"{name} length is outside {_bounds(low, high)}"))
        elif kind == "expect_column_values_to_match_regex":
            broken = column.isNotNull() & ~column.cast("string").rlike(kwargs["regex"])
            rules.append(RowRule(name, broken, f"{name} does not match {kwargs['regex']!r}"))
        elif kind == "expect_column_values_to_be_unique":
            unique.append(name)
    return rules, unique


def _problem(reason: Column, column: str | None, value: Column | None) -> Column:
    """The quarantine struct of a broken row: why, which column, its value (truncated)."""
    return F.struct(
        reason.alias("reason"),
        F.lit(column).cast("string").alias("column"),
        (F.lit(None) if value is None else F.left(value, F.lit(MAX_VALUE_CHARS)))
        .cast("string")
        .alias("value"),
    )


def _constant(values: list[Any], kind: str) -> Column:
    """A constant array in three JVM calls (folded once by the optimizer), however long."""
    return F.from_json(F.lit(json.dumps(values)), f"array<{kind}>")


def first_broken(rules: Iterable[RowRule], shown: dict[str, Column]) -> Column:
    """A struct (reason, column, value) for the first rule a row breaks, null for a good row.

    `shown` maps a column to how its value is shown in quarantine (the text as read). The rules
    become one CASE giving the first broken rule's number, looked up in constant arrays: a
    struct per rule (hundreds on a wide feed) made a plan too large to compile (Spark's 64 KB
    method limit: it fell back to interpreting, seconds per query) and to build through py4j.
    """
    rules = list(rules)
    number = F.when(rules[0].broken, 0)
    for i, rule in enumerate(rules[1:], 1):
        number = number.when(rule.broken, i)
    at = number + 1  # element_at counts from 1
    names = list(shown)
    value_of = _constant([names.index(r.column) + 1 if r.column in shown else None
                          for r in rules], "int")  # fmt: skip
    value = F.element_at(F.array(*shown.values()), F.element_at(value_of, at))
    return F.when(
        number.isNotNull(),
        F.struct(
            F.element_at(_constant([r.reason for r in rules], "string"), at).alias("reason"),
            F.element_at(_constant([r.column for r in rules], "string"), at).alias("column"),
            F.left(value, F.lit(MAX_VALUE_CHARS)).cast("string").alias("value"),
        ),
    )


def mark_duplicates(frame: DataFrame, spec: Spec, unique: list[str], problem: str) -> DataFrame:
    """Set `problem` on rows of the good ones that break a uniqueness rule.

    Identical copies of a row keep one copy (the rest are quarantined as exact duplicates); rows
    sharing a key with different values are all quarantined, as no one can say which is right.
    """
    columns = [F.col(quote(c)) for c in spec.schema]
    good = F.col(problem).isNull()
    for name in unique:
        key = F.col(quote(name))
        rows_with_key = F.count(F.lit(1)).over(Window.partitionBy(good, key))
        same_rows = Window.partitionBy(good, *columns)
        copies, copy = (
            F.count(F.lit(1)).over(same_rows),
            F.row_number().over(same_rows.orderBy(F.col("_source_file"))),
        )
        reason = (
            F.when(~good | key.isNull(), None)
            .when(
                rows_with_key != copies, F.lit(f"{name} is shared by rows with different values")
            )
            .when(copy > 1, F.lit("exact duplicate of another row"))
        )
        frame = frame.withColumn(
            problem,
            F.coalesce(
                F.col(problem),
                F.when(reason.isNotNull(), _problem(reason, name, key.cast("string"))),
            ),
        )
    return frame
