"""Drift thresholds from a feed's own history (`retrain calibrate`, `new-dataset --from FOLDER`).

Every day of the history is measured as `validate` measures a day: the PSI of each column against
the earlier days of its window, when at least `drift.min_reference_days` of them landed. A
column's warning becomes WARNING_MARGIN x the WARNING_QUANTILE of what it showed and its critical
CRITICAL_MARGIN x the largest, never below the spec's own thresholds: the swings the feed showed
pass, a broken column (a PSI of several units) still fails. What was measured is written beside
the thresholds in the spec.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.lake import data_files
from retrain.paths import window_dates
from retrain.spark.drift import drift_stats
from retrain.spark.landing import usable_rows
from retrain.spec import Drift, Spec, SpecError

WARNING_QUANTILE, WARNING_MARGIN, CRITICAL_MARGIN = 0.9, 1.2, 1.5


@dataclass(frozen=True)
class Calibration:
    days: list[date]  # the days measured: those with enough reference days
    observed: dict[str, list[float]]  # column -> its PSI on each measured day
    bands: dict[str, tuple[float, float]]  # column -> (warning, critical)

    def failing_days(self, drift: Drift, spec: Spec) -> int:
        """Measured days on which a feature's PSI is above its critical threshold: the days
        `drift`'s thresholds would have failed (label drift fails only if the spec says so)."""
        columns = [c for c in self.observed if c != spec.label_column or drift.label == "critical"]
        return sum(
            any(self.observed[c][i] > drift.psi_bands(c)[1] for c in columns)
            for i in range(len(self.days))
        )


def history(spark: SparkSession, spec: Spec, days: dict[date, str]) -> DataFrame:
    """The rows ingest would keep from the days' landing folders, with their day as `ds`, read
    in one go (a union of a read per day is a plan per day: slow, and large on the driver)."""
    files = [file for folder in days.values() for file in data_files(spark, folder)]
    if not files:
        raise SpecError(f"no landed data files for {spec.name} to calibrate on")
    return usable_rows(spark, spec, files, files, day=True)


def _round_up(value: float) -> float:
    return math.ceil(value * 100) / 100


def band(values: list[float], drift: Drift) -> tuple[float, float]:
    critical = max(drift.psi_critical, _round_up(CRITICAL_MARGIN * max(values)))
    quantile = float(np.quantile(values, WARNING_QUANTILE))
    return min(max(drift.psi_warning, _round_up(WARNING_MARGIN * quantile)), critical), critical


def calibrate(
    spark: SparkSession,
    spec: Spec,
    days: dict[date, str],
    progress: Callable[[str], None] = lambda line: None,
) -> Calibration:
    """Measure every day of `days` (landing folders) against its window; thresholds from that."""
    # Each day is read (and deduplicated) on its own: gathered into a few partitions, the ~10
    # small jobs per measured day scan a few tasks, not one per day and shuffle partition.
    frame = history(spark, spec, days).repartition(spark.sparkContext.defaultParallelism).cache()
    try:
        counts = {
            date.fromisoformat(r["ds"]): r["count"] for r in frame.groupBy("ds").count().collect()
        }
        observed: dict[str, list[float]] = {
            c: [] for c in (spec.label_column, *spec.feature_columns)
        }
        measured = []
        for index, day in enumerate(sorted(counts), 1):
            reference = [d for d in window_dates(day, spec.window_days)[:-1] if d in counts]
            if len(reference) >= spec.drift.min_reference_days:
                stats = drift_stats(
                    frame.where(F.col("ds") == day.isoformat()),
                    frame.where(F.col("ds").isin([d.isoformat() for d in reference])),
                    spec,
                    [counts[d] for d in reference],
                )
                if stats["psi"]:  # else too few rows on a side to measure
                    measured.append(day)
                    for column, value in stats["psi"].items():
                        observed[column].append(value)
            if index % 10 == 0 or index == len(counts):
                progress(f"measured {index} of {len(counts)} days")
    finally:
        frame.unpersist()
    if not measured:
        raise SpecError(
            f"cannot calibrate {spec.name}: no day of the {len(counts)} has "
            f"drift.min_reference_days={spec.drift.min_reference_days} earlier days in its "
            f"{spec.window_days}-day window and drift.min_rows={spec.drift.min_rows} rows"
        )
    return Calibration(measured, observed, {c: band(v, spec.drift) for c, v in observed.items()})


def _flow(key: str, value: object) -> str:
    """`key: value` as one line of YAML (keys quoted where YAML needs it)."""
    value = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump({key: value}, default_flow_style=True, width=1000).strip()[1:-1]


def drift_block(spec: Spec, calibration: Calibration) -> str:
    """The spec's `drift:` section with the calibrated thresholds and what they came from."""
    days = calibration.days
    defaults = Drift()
    lines = [
        "drift:",
        f"  # Calibrated (retrain calibrate) on {len(days)} days ({days[0]} .. {days[-1]}): "
        "each day's PSI against its window.",
        f"  # warning = max(psi_warning, {WARNING_MARGIN} x the {WARNING_QUANTILE:.0%} quantile), "
        f"critical = max(psi_critical, {CRITICAL_MARGIN} x the largest).",
        *[
            f"  {_flow(f.name, getattr(spec.drift, f.name))}"
            for f in dataclasses.fields(Drift)
            if f.name != "psi_by_column"
            and getattr(spec.drift, f.name) != getattr(defaults, f.name)
        ],
        "  psi_by_column:",
    ]
    for column, (warning, critical) in calibration.bands.items():
        values = calibration.observed[column]
        median, quantile = np.quantile(values, [0.5, WARNING_QUANTILE])
        lines.append(
            f"    {_flow(column, [warning, critical]):<40} # observed: median {median:.2f}, "
            f"{WARNING_QUANTILE:.0%} {quantile:.2f}, max {max(values):.2f}"
        )
    return "\n".join(lines) + "\n"


def with_drift_block(text: str, block: str) -> str:
    """`text` (a spec file) with its top-level `drift:` section replaced by `block`, or added."""
    section = re.compile(r"^drift:.*(?:\n(?:[ \t].*|[ \t]*(?=\n)))*\n?", re.MULTILINE)
    if section.search(text):
        return section.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n" + block
