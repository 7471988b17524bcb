"""Drift thresholds from a feed's own history (`retrain calibrate`, `new-dataset --from FOLDER`).

Every day of the history is measured as `validate` measures a day: the PSI of each column against
the earlier days of its window, when at least `drift.min_reference_days` of them landed. A
column's warning becomes WARNING_MARGIN x the WARNING_QUANTILE of what it showed and its critical
CRITICAL_MARGIN x the largest, never below the spec's own thresholds: the swings the feed showed
pass, a broken column (a PSI of several units) still fails. What was measured is written beside
the thresholds in the spec.
"""

from __future__ import annotations

import io
import math
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.lake import data_files
from retrain.paths import window_dates
from retrain.spark.drift import drift_stats
from retrain.spark.landing import usable_rows
from retrain.spec import Drift, Spec, SpecError, parse_spec, read_spec_text

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


def with_thresholds(text: str, calibration: Calibration, where: str) -> str:
    """`text` (a spec file) with `drift.psi_by_column` set to the calibrated thresholds, each
    beside what was observed. Read and written round trip: every other key, comment and the
    keys' order stay as they were; a spec that gives a key twice is refused."""
    from ruamel.yaml import YAML, YAMLError
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    document = YAML()  # round trip; refuses duplicate keys
    document.width = 1000
    try:
        data = document.load(text)
    except YAMLError as err:
        raise SpecError(f"{where}: not valid YAML: {err}") from None
    if not isinstance(data, CommentedMap):
        raise SpecError(f"{where}: a spec is a YAML mapping of keys")
    if data.get("drift") is None:
        data["drift"] = CommentedMap()
    drift = data["drift"]
    if not isinstance(drift, CommentedMap):
        raise SpecError(f"{where}: key 'drift' must be a mapping of settings")
    bands = CommentedMap()
    for column, thresholds in calibration.bands.items():
        bands[column] = CommentedSeq(thresholds)
        bands[column].fa.set_flow_style()
        median, quantile = np.quantile(calibration.observed[column], [0.5, WARNING_QUANTILE])
        bands.yaml_add_eol_comment(
            f"observed: median {median:.2f}, {WARNING_QUANTILE:.0%} {quantile:.2f}, "
            f"max {max(calibration.observed[column]):.2f}",
            column,
        )
    days = calibration.days
    drift["psi_by_column"] = bands
    drift.yaml_add_eol_comment(
        f"[warning, critical] calibrated by retrain calibrate on {len(days)} days "
        f"({days[0]} .. {days[-1]}): warning {WARNING_MARGIN} x the {WARNING_QUANTILE:.0%} "
        f"quantile, critical {CRITICAL_MARGIN} x the largest PSI",
        "psi_by_column",
    )
    written = io.StringIO()
    document.dump(data, written)
    return written.getvalue()


def write_thresholds(spec_file: Path, calibration: Calibration, *, dry_run: bool) -> Spec:
    """Write the calibrated thresholds into `spec_file` (unless `dry_run`); the spec then in
    force. The new text is loaded as every run loads it, and its thresholds must be the
    calibrated ones before it replaces the file, atomically (written beside, then renamed). A
    spec that is a symbolic link is refused: the write would land wherever it points."""
    if spec_file.is_symlink():
        raise SpecError(
            f"{spec_file} is a symbolic link; calibrate writes only a spec file itself: run it "
            "where the file lives, or copy the file in place of the link"
        )
    text = with_thresholds(spec_file.read_text(), calibration, str(spec_file))
    spec = parse_spec(read_spec_text(text, str(spec_file)), str(spec_file))
    in_force = {column: spec.drift.psi_bands(column) for column in calibration.bands}
    if in_force != calibration.bands:
        raise SpecError(
            f"{spec_file}: the rewritten spec would put {in_force} in force, not the calibrated "
            f"{calibration.bands}; the file is unchanged"
        )
    if not dry_run:
        beside = spec_file.with_name(f".{spec_file.name}.{uuid.uuid4().hex[:8]}.tmp")
        beside.write_text(text)
        try:
            shutil.copymode(spec_file, beside)
            beside.replace(spec_file)
        finally:
            beside.unlink(missing_ok=True)
    return spec


def thresholds_text(spec: Spec, calibration: Calibration) -> str:
    """The thresholds `spec` holds for the calibrated columns, one line each, as printed."""
    return "".join(
        f"  {column}: warning {warning:g}, critical {critical:g}\n"
        for column in calibration.bands
        for warning, critical in [spec.drift.psi_bands(column)]
    )
