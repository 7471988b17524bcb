"""A daily feed that looks like a real one (issue 16): what a new user lands on the first day.

Trips of a transport line: a free-text note that often holds line breaks inside quotes, a
temperature whose daily level wanders like weather (and with it the share of late trips),
cancelled trips with no outcome (unlabelled), one day with many cancellations, and days
missing from the history.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np

WORDS = "bus late full traffic detour driver rain stop crowded quiet early road works".split()


def note(rng: np.random.Generator) -> str:
    """A free-text note; one in four holds a line break, as text exports often do."""
    words = rng.choice(WORDS, rng.integers(2, 7))
    text = " ".join(words)
    return text.replace(" ", '\n"', 1) + '"' if rng.random() < 0.25 else text


def write_trips(
    landing: Path,
    first: date,
    days: int,
    *,
    rows: int = 300,
    gaps: tuple[int, ...] = (),
    busy_cancellations: tuple[int, ...] = (),
    fahrenheit: tuple[int, ...] = (),
    seed: int = 7,
) -> list[date]:
    """Write `days` daily CSV partitions from `first` into `landing/ds=...`, skipping the `gaps`
    day indexes; `fahrenheit` days are broken (the temperature in the wrong unit). The days
    written."""
    rng = np.random.default_rng(seed)
    level, written, next_id = 10.0, [], 1
    for index in range(days):
        day = first + timedelta(days=index)
        level = float(np.clip(level + rng.normal(0, 1.5), -10, 35))  # the weather moves
        if index in gaps:
            continue
        temp = rng.normal(level, 4.0, rows)
        shown = temp * 1.8 + 32 if index in fahrenheit else temp
        line = rng.choice(["A", "B", "C"], rows, p=[0.5, 0.3, 0.2])
        delay = rng.gamma(2.0, 2.0 + np.abs(temp - 15) / 5, rows)
        late = (delay + rng.normal(0, 1.5, rows)) > 6
        cancelled = rng.random(rows) < (0.1 if index in busy_cancellations else 0.03)
        folder = landing / f"ds={day}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "trips.csv", "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["trip_id", "line", "temp", "delay_min", "note", "outcome"])
            for i in range(rows):
                outcome = "" if cancelled[i] else ("late" if late[i] else "on_time")
                writer.writerow(
                    [next_id + i, line[i], round(shown[i], 1), round(delay[i], 1),
                     note(rng), outcome]
                )  # fmt: skip
        next_id += rows
        written.append(day)
    return written


# The spec `retrain new-dataset` writes for the trips feed, with the default drift thresholds.
TRIPS = {
    "name": "trips",
    "registered_model_name": "retrain_trips",
    "source": {"format": "csv", "options": {"header": "true", "escape": '"', "multiLine": "true"}},
    "schema": {"trip_id": "long", "line": "string", "temp": "double", "delay_min": "double",
               "note": "string", "outcome": "string"},
    "id_column": "trip_id",
    "label_column": "outcome",
    "feature_columns": ["line", "temp", "delay_min", "note"],
    "feature_types": {"line": "categorical", "note": "text"},
}  # fmt: skip
