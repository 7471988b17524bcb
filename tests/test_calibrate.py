"""Drift thresholds calibrated on a feed's own history hold on its ordinary days (issue 16)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from retrain.lake import landed_days
from retrain.spec import SpecError, load_spec_file, parse_spec, read_spec_text
from retrain.tools.calibrate import (
    Calibration,
    band,
    calibrate,
    thresholds_text,
    write_thresholds,
)
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


CALIBRATION = Calibration(
    [date(2025, 6, 4), date(2025, 6, 5)],
    {"outcome": [0.01, 0.02], "line": [0.0, 0.01], "temp": [0.4, 0.9],
     "delay_min": [0.05, 0.1], "note": [0.0, 0.0]},
    {"outcome": (0.1, 0.25), "line": (0.1, 0.25), "temp": (1.08, 1.35),
     "delay_min": (0.12, 0.25), "note": (0.1, 0.25)},
)  # fmt: skip


def spec_file(folder: Path, drift_block: str) -> Path:
    """The trips spec with `drift_block` (YAML text) before its label, and a comment of ours."""
    text = "# our trips feed: keep this comment\n" + yaml.safe_dump(TRIPS, sort_keys=False)
    text = text.replace(
        "label_column: outcome\n", drift_block + "label_column: outcome  # what we predict\n", 1
    )
    path = folder / "trips.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "old_block",
    [
        # A comment at column 0 inside the block once ended a regex's match there, leaving the
        # old thresholds below the new ones (YAML kept the last: the old were in force).
        "drift:\n  bins: 5\n# tuned by hand in May\n  psi_by_column:\n    temp: [0.5, 0.9]\n"
        "  min_reference_days: 2\n\n",
        # A quoted key once got a second block beside it.
        '"drift":\n  bins: 5\n  min_reference_days: 2\n  psi_by_column: {temp: [0.5, 0.9]}\n',
        "",  # no drift section yet: one is added
    ],
)
def test_calibrated_thresholds_are_the_ones_in_force_and_the_rest_is_kept(tmp_path, old_block):
    path = spec_file(tmp_path, old_block)
    before = path.read_text()
    dry = write_thresholds(path, CALIBRATION, dry_run=True)
    assert path.read_text() == before  # a dry run writes nothing
    written = write_thresholds(path, CALIBRATION, dry_run=False)
    text = path.read_text()
    in_force = load_spec_file(path)  # as every run loads it, duplicate keys refused
    for spec in (dry, written, in_force):
        assert {c: spec.drift.psi_bands(c) for c in CALIBRATION.bands} == CALIBRATION.bands
    assert in_force.drift.psi_bands("temp") == (1.08, 1.35)
    assert thresholds_text(in_force, CALIBRATION).splitlines()[2] == (
        "  temp: warning 1.08, critical 1.35"
    )
    if old_block:  # the block's other settings stay
        assert (in_force.drift.bins, in_force.drift.min_reference_days) == (5, 2)
    assert text.count("drift") == 1 and text.count("psi_by_column") == 1
    assert text.startswith("# our trips feed: keep this comment\n")
    assert "label_column: outcome  # what we predict" in text
    assert "observed: median 0.65, 90% 0.85, max 0.90" in text
    assert list(tmp_path.iterdir()) == [path]  # written beside and renamed: nothing left over
    order = [*yaml.safe_load(before), *([] if old_block else ["drift"])]
    assert list(yaml.safe_load(text)) == order  # the keys' order: a new section comes last


def test_a_linked_or_ambiguous_spec_is_refused_and_left_alone(tmp_path):
    real = spec_file(tmp_path, "")
    link = tmp_path / "linked" / "trips.yaml"
    link.parent.mkdir()
    link.symlink_to(real)
    with pytest.raises(SpecError, match="is a symbolic link"):
        write_thresholds(link, CALIBRATION, dry_run=False)
    twice = tmp_path / "twice.yaml"
    twice.write_text("drift:\n  bins: 5\ndrift:\n  bins: 6\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        write_thresholds(twice, CALIBRATION, dry_run=False)
    assert twice.read_text() == "drift:\n  bins: 5\ndrift:\n  bins: 6\n"
    with pytest.raises(SpecError, match="given twice"):  # nor does a run take the last one
        read_spec_text(twice.read_text(), str(twice))
