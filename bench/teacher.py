"""The benchmark's data: a fixed-seed teacher network labels Gaussian inputs.

64 features -> tanh(32) -> 10 classes, with Gumbel noise on the logits so that even the teacher
is not perfect (its own weighted F1 is the ceiling every student is measured against). Written
once as Parquet per size and reused by every case.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FEATURES = 64
HIDDEN = 32
CLASSES = 10
SEED = 2026
NOISE = 0.6  # Gumbel scale on the logits


def _teacher(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    first = rng.normal(0, 1 / np.sqrt(FEATURES), (FEATURES, HIDDEN)) * 2.5
    second = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, CLASSES)) * 6
    return first, second


def generate(rows: int, part: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, noisy labels, noiseless teacher labels) of `rows` rows; `part` picks disjoint
    draws (another day's data) from the same teacher."""
    first, second = _teacher(np.random.default_rng(SEED))
    rng = np.random.default_rng([SEED, part, rows])
    x = rng.normal(0, 1, (rows, FEATURES))
    logits = np.tanh(x @ first) @ second
    clean = logits.argmax(axis=1)
    noisy = (logits + rng.gumbel(0, NOISE, logits.shape)).argmax(axis=1)
    return x, noisy, clean


def write(path: Path, rows: int, part: int = 0, first_id: int = 0) -> Path:
    """Parquet with `id`, `label` and f0..f63 (doubles); reused if already there."""
    if path.exists():
        return path
    x, y, _ = generate(rows, part)
    columns = {"id": pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
               "label": pa.array(y.astype(np.int32))}  # fmt: skip
    columns |= {f"f{i}": pa.array(x[:, i]) for i in range(FEATURES)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.table(columns), tmp, row_group_size=100_000)
    tmp.rename(path)
    return path


def ceiling_f1(rows: int, part: int = 0) -> float:
    """The teacher's own weighted F1 against the noisy labels: no student can do better."""
    from sklearn.metrics import f1_score

    _, noisy, clean = generate(rows, part)
    return float(f1_score(noisy, clean, average="weighted"))
