"""Drift and volume: how far a day moved from the days the model is trained on.

One Spark pass computes the day's row count against the window's daily median and the
population stability index (PSI) of the label and of every feature: numbers binned on the
window's quantiles, text by its length, a vector by its mean value, the label and categorical
features by value (nulls are a bin of their own, so a column going missing is drift too). The
numbers are then checked by a suite generated from the spec's thresholds, so they land in the
Data Docs beside the raw suite and follow the same critical/warning rules.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from retrain.spark.features import typed_feature
from retrain.spark.validation import CRITICAL, WARNING
from retrain.spec import Spec, quote

MISSING_BIN = "missing"
QUANTILE_ERROR = 0.001


def bin_edges(reference: DataFrame, features: list[str], bins: int) -> dict[str, list[float]]:
    """Inner bin edges per feature from the reference's quantiles (ties collapse bins)."""
    probabilities = [i / bins for i in range(1, bins)]
    quantiles = reference.approxQuantile(
        [quote(f) for f in features], probabilities, QUANTILE_ERROR
    )
    return {f: sorted(set(q)) for f, q in zip(features, quantiles, strict=True)}


def _bin_counters(feature: str, edges: list[float]) -> list[tuple[str, F.Column]]:
    """(bin, row count) aggregates: missing, below the first edge, between, above the last."""
    column = F.col(quote(feature)).cast("double")
    present = column.isNotNull() & ~F.isnan(column)
    bounds = [None, *edges, None]
    counters = [(MISSING_BIN, F.count_if(~present))]
    for index, (low, high) in enumerate(zip(bounds, bounds[1:], strict=False)):
        inside = present
        if low is not None:
            inside = inside & (column >= low)
        if high is not None:
            inside = inside & (column < high)
        counters.append((str(index), F.count_if(inside)))
    return counters


def bin_counts(
    current: DataFrame, reference: DataFrame, edges: dict[str, list[float]], by_value: list[str]
) -> dict[tuple[str, str], dict[str, int]]:
    """{(side, column): {bin: rows}} for the binned columns and the columns counted by value.

    Two Spark jobs for both sides: one aggregate per side counts every binned column's bins,
    one group-by counts the (column, value) pairs of the by-value columns (never a shuffle of
    a row per value and column pair beyond those few).
    """
    counters = {f: _bin_counters(f, edges[f]) for f in edges}
    aliases = {
        (f, b): f"c{i}_{j}" for i, f in enumerate(edges) for j, (b, _) in enumerate(counters[f])
    }
    sides = current.withColumn("_side", F.lit("current")).unionByName(
        reference.withColumn("_side", F.lit("reference"))
    )
    counts: dict[tuple[str, str], dict[str, int]] = {}
    if aliases:
        rows = sides.groupBy("_side").agg(
            *[counter.alias(aliases[f, b]) for f in edges for b, counter in counters[f]]
        )
        for row in rows.collect():
            for (feature, bin_name), alias in aliases.items():
                counts.setdefault((row["_side"], feature), {})[bin_name] = row[alias]
    if by_value:
        pairs = F.explode(
            F.array(
                *[
                    F.struct(
                        F.lit(c).alias("column"),
                        F.coalesce(F.col(quote(c)).cast("string"), F.lit(MISSING_BIN)).alias(
                            "value"
                        ),
                    )
                    for c in by_value
                ]
            )
        )
        values = sides.select("_side", pairs.alias("pair")).groupBy("_side", "pair").count()
        for row in values.collect():
            column, value = row["pair"]["column"], row["pair"]["value"]
            counts.setdefault((row["_side"], column), {})[value] = row["count"]
    return counts


def drift_columns(frame: DataFrame, spec: Spec) -> DataFrame:
    """The label and one drift-measurable column per feature, under the feature's name."""
    columns = [F.col(quote(spec.label_column))]
    for feature in spec.feature_columns:
        kind = spec.feature_type(feature)
        if kind == "text":
            value = F.length(F.col(quote(feature)))
        elif kind == "vector":
            typed = typed_feature(spec, feature)
            value = F.expr(
                f"aggregate({typed}, 0D, (a, x) -> a + coalesce(x, 0D)) / size({typed})"
            )
        else:
            value = F.col(quote(feature))
        columns.append(value.alias(feature))
    return frame.select(*columns)


def psi(current: dict[str, int], reference: dict[str, int]) -> float:
    """Population stability index, with half a row added per bin so empty bins stay finite."""
    bins = set(current) | set(reference)
    n_current, n_reference = sum(current.values()), sum(reference.values())
    total = 0.0
    for b in bins:
        p = (current.get(b, 0) + 0.5) / (n_current + 0.5 * len(bins))
        q = (reference.get(b, 0) + 0.5) / (n_reference + 0.5 * len(bins))
        total += (p - q) * math.log(p / q)
    return total


def drift_stats(
    current: DataFrame, reference: DataFrame, spec: Spec, reference_rows: list[int]
) -> dict[str, Any]:
    """Volume against the window and PSI per column; PSI is skipped on too few rows."""
    rows = current.count()
    median = statistics.median(reference_rows)
    stats: dict[str, Any] = {
        "rows": rows,
        "reference_median_rows": median,
        "rows_vs_window": round(rows / median, 4) if median else None,
        "psi": {},
    }
    if min(rows, sum(reference_rows)) < spec.drift.min_rows:
        stats["psi_skipped"] = f"fewer than drift.min_rows={spec.drift.min_rows} rows on a side"
        return stats
    by_value = [spec.label_column, *spec.features_of("categorical")]
    binned = [f for f in spec.feature_columns if f not in by_value]
    current, reference = drift_columns(current, spec), drift_columns(reference, spec)
    edges = bin_edges(reference, binned, spec.drift.bins) if binned else {}
    counts = bin_counts(current, reference, edges, by_value)
    for column in [spec.label_column, *spec.feature_columns]:
        value = psi(counts.get(("current", column), {}), counts.get(("reference", column), {}))
        stats["psi"][column] = round(value, 4)
    return stats


def drift_suite(
    spec: Spec, stats: dict[str, Any], reference_days: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """(a GX suite over a one-row frame of the numbers, that frame's row) from the thresholds.

    Label drift is critical only if the spec says so; feature drift and volume only against
    `drift.min_reference_days` reference days or more. Otherwise they are warnings.
    """
    drift = spec.drift
    row: dict[str, float] = {}
    expectations = []
    short = reference_days < drift.min_reference_days
    because = (
        f"; a warning only: {reference_days} reference day(s), fewer than "
        f"drift.min_reference_days={drift.min_reference_days}"
        if short
        else ""
    )

    def check(
        column: str, what: str, bands: dict[str, tuple[float | None, float]], critical: bool
    ) -> None:
        for severity, (low, high) in bands.items():
            if severity == CRITICAL and not critical:
                continue
            kwargs: dict[str, Any] = {"column": column, "max_value": high}
            if low is not None:
                kwargs["min_value"] = low
            expectations.append(
                {
                    "type": "expect_column_max_to_be_between",
                    "kwargs": kwargs,
                    "severity": severity,
                    "meta": {"check": what},
                }
            )

    if stats["rows_vs_window"] is not None:
        row["rows_vs_window"] = stats["rows_vs_window"]
        check(
            "rows_vs_window",
            f"rows of the day ({stats['rows']}) vs the window's daily median "
            f"({stats['reference_median_rows']}){because}",
            {CRITICAL: drift.volume_critical, WARNING: drift.volume_warning},
            critical=not short,
        )
    for column, value in stats["psi"].items():
        name = f"psi_{column}"
        row[name] = value
        warning, critical = drift.psi_bands(column)
        if column == spec.label_column:
            what, fails = f"drift of label {column} (PSI)", drift.label == CRITICAL and not short
            what += "" if drift.label == CRITICAL else "; a warning: drift.label is warning"
        else:
            what, fails = f"drift of feature {column} (PSI){because}", not short
        check(name, what, {CRITICAL: (None, critical), WARNING: (None, warning)}, critical=fails)
    return {"name": f"{spec.name}_drift", "expectations": expectations}, row
