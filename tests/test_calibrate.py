"""Drift thresholds calibrated on a feed's own history hold on its ordinary days (issue 16)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import yaml

from retrain.lake import landed_days
from retrain.spec import parse_spec
from retrain.tools.calibrate import Calibration, band, calibrate, drift_block, with_drift_block
from tests.feeds import TRIPS, write_trips

FIRST = date(2025, 6, 1)
HISTORY_DAYS, MONTH_DAYS = 30, 30


def test_thresholds_from_history_pass_an_ordinary_month_and_fail_a_broken_day(spark, tmp_path):
    # 35 days of history, then a month whose last day reports temperatures in Fahrenheit.
    broken = HISTORY_DAYS + MONTH_DAYS - 1
    write_trips(tmp_path, FIRST, HISTORY_DAYS + MONTH_DAYS, rows=150, fahrenheit=(broken,))
    spec = parse_spec(TRIPS, "trips.yaml")
    lines = []
    measured = calibrate(spark, spec, landed_days(str(tmp_path)), lines.append)
    assert lines[-1] == f"measured {HISTORY_DAYS + MONTH_DAYS} of {HISTORY_DAYS + MONTH_DAYS} days"
    # Every day with 3 earlier days in its window is measured: all but the first three.
    assert measured.days[0] == FIRST + timedelta(days=3) and len(measured.days) == broken - 2
    cutoff = FIRST + timedelta(days=HISTORY_DAYS)
    history = [i for i, d in enumerate(measured.days) if d < cutoff]
    month = [i for i, d in enumerate(measured.days) if d >= cutoff]
    bands = {c: band([v[i] for i in history], spec.drift) for c, v in measured.observed.items()}
    calibrated = parse_spec(
        TRIPS | {"drift": {"psi_by_column": {c: list(b) for c, b in bands.items()}}}, "trips.yaml"
    )
    later = Calibration(
        [measured.days[i] for i in month],
        {c: [v[i] for i in month] for c, v in measured.observed.items()},
        bands,
    )
    ordinary = replace(later, days=later.days[:-1])
    # The weather moves the temperature: the default thresholds fail ordinary days...
    assert later.failing_days(spec.drift, spec) >= 5
    # ...the calibrated ones fail none of them, and still fail the broken day.
    assert ordinary.failing_days(calibrated.drift, calibrated) == 0
    assert later.failing_days(calibrated.drift, calibrated) == 1
    assert later.observed["temp"][-1] > 2 * bands["temp"][1]
    assert bands["temp"][1] > spec.drift.psi_critical  # temp swings: its bar went up
    assert bands["line"] == (spec.drift.psi_warning, spec.drift.psi_critical)  # steady: defaults


def test_the_drift_block_replaces_the_specs_own_and_keeps_its_settings():
    spec = parse_spec(TRIPS | {"drift": {"min_reference_days": 2, "bins": 5}}, "trips.yaml")
    calibration = Calibration(
        [date(2025, 6, 4), date(2025, 6, 5)],
        {"outcome": [0.01, 0.02], "line": [0.0, 0.01], "temp": [0.4, 0.9],
         "delay_min": [0.05, 0.1], "note": [0.0, 0.0]},
        {"outcome": (0.1, 0.25), "line": (0.1, 0.25), "temp": (1.08, 1.35),
         "delay_min": (0.12, 0.25), "note": (0.1, 0.25)},
    )  # fmt: skip
    text = yaml.safe_dump(TRIPS, sort_keys=False)
    text = text.replace(
        "label_column:", "drift:\n  bins: 5\n  min_reference_days: 2\n\nlabel_column:"
    )
    updated = with_drift_block(text, drift_block(spec, calibration))
    data = yaml.safe_load(updated)
    assert data["drift"]["bins"] == 5 and data["drift"]["min_reference_days"] == 2
    assert data["drift"]["psi_by_column"]["temp"] == [1.08, 1.35]
    assert data["label_column"] == "outcome"  # the key after the old block is intact
    assert updated.count("drift:") == 1
    assert "observed: median 0.65, 90% 0.85, max 0.90" in updated
    assert parse_spec(data, "trips.yaml").drift.psi_bands("temp") == (1.08, 1.35)
    added = with_drift_block(yaml.safe_dump(TRIPS), drift_block(spec, calibration))
    assert yaml.safe_load(added)["drift"]["psi_by_column"]["line"] == [0.1, 0.25]
