"""The decision report of one run: a self-contained HTML page (pictures inline) plus its JSON.

It shows the decision and its reason, candidate vs champion metrics, the bootstrap interval,
the confusion matrix, the loss curve, per-class F1, the F1 history of past versions, data volume
and the validation summary: everything a person needs to see why a model was (not) published.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on workers
import matplotlib.pyplot as plt  # noqa: E402

from retrain.lake import write_object  # noqa: E402
from retrain.runs import PUBLISH, REJECT  # noqa: E402

REPORT_PAGE, REPORT_DATA = "report.html", "report.json"

METRIC_ROWS = (
    ("rows", "test rows"),
    ("accuracy", "accuracy"),
    ("weighted_f1", "weighted F1"),
    ("macro_f1", "macro F1"),
    ("positive_f1", "positive-class F1"),
    ("log_loss", "cross-entropy (log loss)"),
    ("brier", "Brier score"),
)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _confusion_png(confusion: list[list[Any]]) -> str:
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


def _loss_png(loss: dict[str, Any]) -> str:
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


def _per_class_png(candidate: dict[str, Any], champion: dict[str, Any] | None) -> str:
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


def _history_png(history: list[dict[str, Any]], current: float, run_date: str) -> str:
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


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _drift_html(drift: dict[str, Any]) -> str:
    """One line on volume and drift against the window, the largest PSI first."""
    if not drift.get("reference_days"):
        return f"<p>Drift: {html.escape(drift.get('skipped') or 'not checked')}.</p>"
    top = sorted((drift.get("psi") or {}).items(), key=lambda item: -item[1])[:3]
    psi = ", ".join(f"{html.escape(column)} {value:.3f}" for column, value in top)
    docs = drift.get("data_docs")
    return (
        f"<p>Drift against {len(drift['reference_days'])} earlier day(s): rows vs the window's "
        f"daily median {drift.get('rows_vs_window')}; largest PSI "
        f"{psi or html.escape(drift.get('psi_skipped', '-'))}."
        + (f' <a href="file://{html.escape(docs)}">Drift Data Docs</a>' if docs else "")
        + "</p>"
    )


def render(
    record: dict[str, Any],
    details: dict[str, Any],
    loss: dict[str, Any],
    history: list[dict[str, Any]],
) -> str:
    """The report page as one HTML string."""
    evaluation = record["evaluate"]
    candidate, champion = details["candidate"], details["champion"]
    metric = evaluation["metric"]
    ingest, preprocess = record.get("ingest") or {}, record.get("preprocess") or {}
    validate = record.get("validate") or {}
    window = preprocess.get("window") or []
    metrics_rows = [
        [label, candidate.get(key), (champion or {}).get(key)] for key, label in METRIC_ROWS
    ]
    interval = evaluation.get("interval")
    interval_html = (
        f"<p>Paired bootstrap of the {html.escape(metric)} difference (candidate − champion), "
        f"{interval['resamples']} resamples, seed {interval['seed']}: "
        f"<b>{interval['difference']:+.4f}</b>, {interval['confidence']:.0%} interval "
        f"[{interval['low']:+.4f}, {interval['high']:+.4f}].</p>"
        if interval
        else "<p>No bootstrap interval (no champion yet, or the bootstrap is off).</p>"
    )
    per_class_rows = [
        [c, v["precision"], v["recall"], v["f1"], v["support"]]
        for c, v in sorted(candidate["per_class"].items())
    ]
    history_rows = [
        [h["version"], h["run_date"], h["value"], h["decision"], "yes" if h["champion"] else ""]
        for h in history
    ]
    volume_rows = [
        ["rows read (landing)", ingest.get("rows_read")],
        ["rows quarantined", ingest.get("rows_quarantined")],
        ["rows unlabelled (scored, not trained on)", ingest.get("rows_unlabelled")],
        ["training window", f"{window[0]} .. {window[-1]}" if window else None],
        *[[f"{split} rows", n] for split, n in (preprocess.get("rows_by_split") or {}).items()],
    ]
    docs = validate.get("data_docs")
    validation_html = (
        f"<p>Suite <b>{html.escape(str(validate.get('suite')))}</b>: "
        f"{validate.get('evaluated')} expectations, "
        f"{'passed' if validate.get('success') else 'FAILED'}; warnings: "
        f"{html.escape(', '.join(validate.get('failed_warning') or []) or 'none')}."
        + (f' <a href="file://{html.escape(docs)}">Data Docs</a>' if docs else "")
        + "</p>"
        + _drift_html(validate.get("drift") or {})
    )
    history_png = _history_png(history, candidate[metric], record["run_date"])
    trained = record.get("train") or {}
    training_html = (
        f'<p id="training">Training: {html.escape(str(trained.get("solver")))}, '
        f"{html.escape(str(trained.get('stopped')))}; "
        f"{trained.get('fit_seconds')} s, {trained.get('train_rows')} training rows"
        + (", warm start from the champion" if trained.get("warm_started_from") else "")
        + ".</p>"
        if trained
        else ""
    )
    decision = evaluation["decision"]
    colour = {PUBLISH: "#1a7f37", REJECT: "#b42318"}.get(decision, "#9a6700")
    title = f"retrain {record['dataset']} {record['run_date']}: {decision}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #d0d7de; padding: 4px 10px; text-align: right; }}
th {{ background: #f6f8fa; }} td:first-child {{ text-align: left; }}
.decision {{ font-size: 1.4em; color: {colour}; }}
.pictures img {{ margin: 0 1em 1em 0; border: 1px solid #d0d7de; }}
</style></head><body>
<h1>{html.escape(record["dataset"])} — run {html.escape(record["run_date"])}</h1>
<p class="decision" id="decision"><b>{html.escape(decision)}</b>:
{html.escape(evaluation["reason"])}</p>
<p>Gate: {html.escape(metric)}, mode {html.escape(evaluation["mode"])}; champion before this run:
version {_fmt(evaluation.get("champion_version"))}.</p>
<h2>Candidate vs champion (same test rows)</h2>
{_table(metrics_rows, ["metric", "candidate", "champion"])}
{interval_html}
<div class="pictures">
<img alt="confusion matrix" src="data:image/png;base64,{_confusion_png(candidate["confusion"])}">
<img alt="loss curve" src="data:image/png;base64,{_loss_png(loss)}">
<img alt="per-class F1" src="data:image/png;base64,{_per_class_png(candidate, champion)}">
<img alt="F1 history" src="data:image/png;base64,{history_png}">
</div>
{training_html}
<h2>Per-class metrics (candidate)</h2>
{_table(per_class_rows, ["class", "precision", "recall", "F1", "support"])}
<h2>Registered versions</h2>
{_table(history_rows, ["version", "run date", metric, "decision", "champion"])}
<h2>Data</h2>
{_table(volume_rows, ["", "value"])}
{validation_html}
</body></html>
"""


def write_report(
    folder: str,
    record: dict[str, Any],
    details: dict[str, Any],
    loss: dict[str, Any],
    history: list[dict[str, Any]],
) -> str:
    """Write report.html and report.json into the run's lake folder; return the HTML's URI."""
    data = {"record": record, "details": details, "loss": loss, "history": history}
    write_object(f"{folder}/{REPORT_DATA}", json.dumps(data, indent=2, default=str))
    write_object(f"{folder}/{REPORT_PAGE}", render(record, details, loss, history))
    return f"{folder}/{REPORT_PAGE}"
