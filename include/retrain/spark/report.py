"""The decision report of one run: an HTML page rendered from `report.html.j2`, its figures as
PNG files beside it (also inline in the page, so it stands alone), and its data as JSON.

It shows the decision and its reason, candidate vs champion metrics, the bootstrap interval,
the confusion matrix, the loss curve, per-class F1, the F1 history of past versions, data volume
and the validation summary: everything a person needs to see why a model was (not) published.
"""

from __future__ import annotations

import base64
import io
import json
from importlib import resources
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")  # headless: no display on workers
import matplotlib.pyplot as plt  # noqa: E402

from retrain.lake import write_object  # noqa: E402
from retrain.runs import PUBLISH, REJECT  # noqa: E402

REPORT_PAGE, REPORT_DATA, FIGURES = "report.html", "report.json", "figures"

METRIC_ROWS = (
    ("rows", "test rows"),
    ("accuracy", "accuracy"),
    ("weighted_f1", "weighted F1"),
    ("macro_f1", "macro F1"),
    ("positive_f1", "positive-class F1"),
    ("log_loss", "cross-entropy (log loss)"),
    ("brier", "Brier score"),
)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _confusion_png(confusion: list[list[Any]]) -> bytes:
    labels = sorted({row[0] for row in confusion} | {row[1] for row in confusion})
    index = {label: i for i, label in enumerate(labels)}
    grid = [[0] * len(labels) for _ in labels]
    for truth, predicted, count in confusion:
        grid[index[truth]][index[predicted]] = count
    figure, axes = plt.subplots(figsize=(4.5, 4))
    axes.imshow(grid, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    darkest = max(max(row) for row in grid)
    for i, row in enumerate(grid):
        for j, count in enumerate(row):
            if count:
                colour = "white" if count > darkest / 2 else "black"
                axes.text(j, i, count, ha="center", va="center", fontsize=7, color=colour)
    axes.set_title("Candidate confusion matrix (test rows)")
    return _png(figure)


def _loss_png(loss: dict[str, Any]) -> bytes:
    """Training loss per epoch (or iteration) and, for adam, the validation loss from epoch 0
    (the starting weights), with the kept epoch marked."""
    figure, axes = plt.subplots(figsize=(4.5, 3))
    train, validation = loss.get("train_loss") or [], loss.get("validation_loss") or []
    axes.plot(range(1, len(train) + 1), train, marker=".", label="training")
    if validation:
        axes.plot(range(len(validation)), validation, marker=".", label="validation")
        kept = loss.get("best_epoch")
        if kept is not None and kept < len(validation):
            axes.axvline(kept, color="grey", linestyle="--", label=f"kept epoch {kept}")
    values = [v for v in [*train, *validation] if v is not None]
    axes.set_yscale("log" if values and min(values) > 0 else "linear")
    axes.set_xlabel(loss.get("unit", "iteration"))
    axes.set_ylabel("cross-entropy")
    axes.set_title("Loss")
    axes.legend(loc="upper right")
    return _png(figure)


def _per_class_png(candidate: dict[str, Any], champion: dict[str, Any] | None) -> bytes:
    classes = sorted(candidate["per_class"])
    figure, axes = plt.subplots(figsize=(4.5, 3))
    positions = range(len(classes))
    axes.bar(
        [p - 0.2 for p in positions],
        [candidate["per_class"][c]["f1"] for c in classes],
        width=0.4,
        label="candidate",
    )
    if champion:
        axes.bar(
            [p + 0.2 for p in positions],
            [champion["per_class"].get(c, {}).get("f1", 0.0) for c in classes],
            width=0.4,
            label="champion",
        )
    axes.set_xticks(list(positions), classes)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("F1")
    axes.set_title("Per-class F1")
    axes.legend(loc="lower right")
    return _png(figure)


def _history_png(history: list[dict[str, Any]], current: float, run_date: str) -> bytes:
    figure, axes = plt.subplots(figsize=(4.5, 3))
    points = [h for h in history if h["value"] is not None]
    axes.plot(
        [f"v{h['version']}" for h in points],
        [h["value"] for h in points],
        marker="o",
        label="registered versions",
    )
    axes.plot(
        [f"now {run_date}"],
        [current],
        marker="*",
        markersize=12,
        linestyle="",
        label="this candidate",
    )
    axes.set_ylabel("gate metric")
    axes.set_title("Gate metric history")
    axes.tick_params(axis="x", labelrotation=45)
    axes.legend(loc="lower right")
    return _png(figure)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def figures(
    details: dict[str, Any],
    loss: dict[str, Any],
    history: list[dict[str, Any]],
    metric: str,
    run_date: str,
) -> dict[str, tuple[str, bytes]]:
    """The report's figures as PNG bytes, by file name: (alt text, PNG)."""
    candidate, champion = details["candidate"], details["champion"]
    return {
        "confusion_matrix": ("confusion matrix", _confusion_png(candidate["confusion"])),
        "loss_curve": ("loss curve", _loss_png(loss)),
        "per_class_f1": ("per-class F1", _per_class_png(candidate, champion)),
        "f1_history": ("F1 history", _history_png(history, candidate[metric], run_date)),
    }  # fmt: skip


def render(
    record: dict[str, Any],
    details: dict[str, Any],
    pictures: dict[str, tuple[str, bytes]],
    history: list[dict[str, Any]],
) -> str:
    """The report page: the template filled with the record's numbers and the figures."""
    evaluation = record["evaluate"]
    candidate, champion = details["candidate"], details["champion"]
    ingest, preprocess = record.get("ingest") or {}, record.get("preprocess") or {}
    validate = record.get("validate") or {}
    drift = validate.get("drift") or {}
    window = preprocess.get("window") or []
    top = sorted((drift.get("psi") or {}).items(), key=lambda item: -item[1])[:3]
    # A key an older or partial record lacks renders empty: the report never fails the stage.
    environment = jinja2.Environment(autoescape=True)
    environment.filters["cell"] = _cell
    template = environment.from_string(
        resources.files(__package__).joinpath("report.html.j2").read_text()
    )
    return template.render(
        dataset=record["dataset"],
        run_date=record["run_date"],
        evaluation=evaluation,
        metric=evaluation["metric"],
        interval=evaluation.get("interval"),
        colour={PUBLISH: "#1a7f37", REJECT: "#b42318"}.get(evaluation["decision"], "#9a6700"),
        metrics_rows=[
            [label, candidate.get(key), (champion or {}).get(key)] for key, label in METRIC_ROWS
        ],
        figures=[{"alt": alt, "base64": base64.b64encode(png).decode()}
                 for alt, png in pictures.values()],
        train=record.get("train") or {},
        per_class_rows=[
            [c, v["precision"], v["recall"], v["f1"], v["support"]]
            for c, v in sorted(candidate["per_class"].items())
        ],
        history_rows=[
            [h["version"], h["run_date"], h["value"], h["decision"],
             "yes" if h["champion"] else ""]
            for h in history
        ],
        volume_rows=[
            ["rows read (landing)", ingest.get("rows_read")],
            ["rows quarantined", ingest.get("rows_quarantined")],
            ["rows unlabelled (scored, not trained on)", ingest.get("rows_unlabelled")],
            ["training window", f"{window[0]} .. {window[-1]}" if window else None],
            *[[f"{split} rows", n]
              for split, n in (preprocess.get("rows_by_split") or {}).items()],
        ],
        validate=validate,
        drift=drift,
        top_psi=", ".join(f"{column} {value:.3f}" for column, value in top),
    )  # fmt: skip


def write_report(
    folder: str,
    record: dict[str, Any],
    details: dict[str, Any],
    loss: dict[str, Any],
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """Write the report into the run's lake folder: its figures as files, its data, its page.
    Returns where they are: {"report": the page's URI, "figures": {name: the PNG's URI}}."""
    pictures = figures(details, loss, history, record["evaluate"]["metric"], record["run_date"])
    written = {}
    for name, (_, png) in pictures.items():
        written[name] = f"{folder}/{FIGURES}/{name}.png"
        write_object(written[name], png)
    data = {"record": record, "details": details, "loss": loss, "history": history}
    write_object(f"{folder}/{REPORT_DATA}", json.dumps(data, indent=2, default=str))
    write_object(f"{folder}/{REPORT_PAGE}", render(record, details, pictures, history))
    return {"report": f"{folder}/{REPORT_PAGE}", "figures": written}
