"""The `digits` demo feed: scikit-learn's bundled 8x8 digit images as daily CSV drops.

Real images, no download. Each day gets a disjoint sample; some days also carry a few malformed
rows, as a real feed does, so the quarantine path is exercised on every demo run.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np

PIXELS = [f"p{i}" for i in range(64)]
HEADER = ["id", "label", *PIXELS]
SEED = 7


def _malformed_rows(day_index: int, next_id: int) -> list[list[str]]:
    """A few broken lines on every other day: a bad number, a missing label, a short line."""
    if day_index % 2:
        return []
    good = ["0"] * 64
    return [
        [str(next_id), "3", "seven", *good[1:]],  # unparseable pixel value
        [str(next_id + 1), "", *good],  # missing label
        [str(next_id + 2), "5", *good[:10]],  # truncated line
    ]


def write_digits_landing(landing: Path, end: date, days: int) -> dict[str, int]:
    """Write `days` daily partitions ending at `end`; return malformed rows per date."""
    from sklearn.datasets import load_digits

    if days < 1:
        raise ValueError("days must be at least 1")
    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(SEED).permutation(len(labels))
    malformed: dict[str, int] = {}
    next_bad_id = 1_000_000
    for index, chunk in enumerate(np.array_split(order, days)):
        day = end - timedelta(days=days - 1 - index)
        rows = [[str(i), str(labels[i]), *(str(int(v)) for v in images[i])] for i in chunk]
        bad = _malformed_rows(index, next_bad_id)
        next_bad_id += len(bad)
        partition = landing / f"ds={day.isoformat()}"
        partition.mkdir(parents=True, exist_ok=True)
        for old in partition.glob("*.csv"):
            old.unlink()
        with (partition / "part-0.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(HEADER)
            writer.writerows(rows + bad)
        malformed[day.isoformat()] = len(bad)
    return malformed
