"""The decision report renders in a real headless Chromium with its numbers and pictures."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import matplotlib.pyplot as plt

from retrain.spark.report import write_report
from tests.helpers import browse, chromium

# Reports each picture's decoded width once the page has loaded.
PROBE = (
    "<script>addEventListener('load', () => document.body.dataset.images = "
    "[...document.images].map(i => i.naturalWidth).join(','));</script>"
)


def per_class(f1s: dict[str, float]) -> dict:
    return {c: {"precision": f, "recall": f, "f1": f, "support": 10} for c, f in f1s.items()}


RECORD = {
    "dataset": "digits",
    "run_date": "2026-03-02",
    "ingest": {"rows_read": 902, "rows_quarantined": 3},
    "train": {
        "solver": "adam",
        "stopped": "early stopping: validation loss did not improve for 10 epochs; kept epoch 7",
        "fit_seconds": 2.4,
        "train_rows": 1273,
    },
    "preprocess": {
        "window": ["2026-03-01", "2026-03-02"],
        "rows_by_split": {"train": 1273, "validation": 164, "test": 360},
    },
    "validate": {
        "suite": "raw",
        "evaluated": 70,
        "success": True,
        "failed_warning": [],
        "data_docs": "/nowhere/index.html",
        "drift": {
            "reference_days": ["2026-03-01"],
            "rows_vs_window": 1.0022,
            "psi": {"label": 0.0123, "p12": 0.0456, "p13": 0.0311, "p14": 0.001},
            "data_docs": "/nowhere/drift.html",
        },
    },
    "evaluate": {
        "metric": "weighted_f1",
        "mode": "enforce",
        "champion_version": 1,
        "decision": "reject",
        "reason": "not better than the champion beyond noise: weighted_f1 +0.0143 vs champion, "
        "95% CI [-0.0050, +0.0364]",
        "interval": {
            "difference": 0.0143,
            "low": -0.005,
            "high": 0.0364,
            "confidence": 0.95,
            "resamples": 1000,
            "seed": 42,
        },
    },
}
DETAILS = {
    "candidate": {
        "rows": 360,
        "accuracy": 0.9611,
        "weighted_f1": 0.9613,
        "macro_f1": 0.9588,
        "positive_f1": None,
        "log_loss": 0.2621,
        "brier": 0.0712,
        "per_class": per_class({"0": 0.99, "1": 0.93}),
        "confusion": [["0", "0", 9], ["1", "1", 8], ["1", "0", 2]],
    },
    "champion": {
        "rows": 360,
        "accuracy": 0.9472,
        "weighted_f1": 0.9470,
        "macro_f1": 0.9439,
        "positive_f1": None,
        "log_loss": 0.5268,
        "brier": 0.0901,
        "per_class": per_class({"0": 0.97, "1": 0.91}),
        "confusion": [["0", "0", 9], ["1", "1", 7], ["1", "0", 3]],
    },
}
HISTORY = [
    {
        "version": 1,
        "run_date": "2026-03-01",
        "metric": "weighted_f1",
        "value": 0.9578,
        "decision": "publish",
        "champion": True,
    }
]


def test_report_shows_numbers_and_pictures(tmp_path: Path):
    loss = {
        "unit": "epoch",
        "train_loss": [2.3, 0.9, 0.2, 0.05],
        "validation_loss": [2.4, 1.0, 0.3, 0.25, 0.26],
        "best_epoch": 3,
    }
    written = write_report(str(tmp_path), RECORD, DETAILS, loss, HISTORY)
    page = Path(written["report"])
    assert page == tmp_path / "report.html" and (tmp_path / "report.json").exists()
    names = ["confusion_matrix", "loss_curve", "per_class_f1", "f1_history"]
    assert written["figures"] == {n: f"{tmp_path}/figures/{n}.png" for n in names}
    inline = re.findall(r'src="data:image/png;base64,([^"]+)"', page.read_text())
    files = [Path(written["figures"][n]).read_bytes() for n in names]
    assert [base64.b64decode(png) for png in inline] == files  # the same pictures, in order
    assert all(png.startswith(b"\x89PNG") for png in files)
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = browse(probed.as_uri(), tmp_path / "profile")
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "not better than the champion beyond noise" in text
    assert "Training: adam, early stopping: validation loss did not improve" in text
    for number in (
        "0.9613",
        "0.9470",
        "0.2621",
        "0.5268",
        "0.0712",
        "+0.0143",
        "-0.0050",
        "0.9578",
        "1273",
        "rows vs the window's daily median 1.0022",
        "largest PSI p12 0.046, p13 0.031, label 0.012",
    ):
        assert number in text, number
    widths = re.search(r'data-images="([^"]*)"', dom).group(1).split(",")
    assert len(widths) == 4
    assert all(int(w) > 100 for w in widths), widths  # every picture decoded

    shot = tmp_path / "report.png"
    chromium(
        tmp_path / "profile2", "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()
    )
    pixels = plt.imread(shot)[..., :3]
    ink = (pixels.sum(axis=2) < 2.7).mean()  # share of pixels that are not (near) white
    assert ink > 0.03, f"the page looks blank ({ink:.1%} ink)"


def test_report_text_from_the_data_is_escaped(tmp_path: Path):
    """A class name or reason is data: it shows as text, never as markup."""
    hostile = "<script>alert(1)</script>"
    record = RECORD | {"evaluate": RECORD["evaluate"] | {"reason": hostile}}
    page = Path(write_report(str(tmp_path), record, DETAILS, {}, HISTORY)["report"]).read_text()
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
