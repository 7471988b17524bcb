"""Results one click away: each run's decision report and Data Docs, for the task links in
Airflow, the alerts and `retrain status`.

Airflow's own API server serves them, behind its login (`retrain.airflow.results_app`, a
plugin), from two trees of the lake and nothing else: `/retrain/runs/<dataset>/<date>/<file>`
from the run's folder, and `/retrain/docs/<dataset>/<path>` from the dataset's Data Docs site,
which the stages that validate copy there from GX's project folder on their driver
(`publish_docs`). So no driver's disk needs to be reachable. Links are built from
`RETRAIN_RESULTS_URL`, the address a browser reaches them at (by default the local Airflow's).
"""

from __future__ import annotations

import html
import mimetypes
import os
import re
from pathlib import Path
from urllib.parse import quote

from retrain.lake import copy_new_files, read_bytes
from retrain.paths import gx_root, lake_root, local_path, parse_date
from retrain.runs import RunRecord, list_runs, run_folder

PATH = "/retrain"  # where Airflow's API server mounts the results
DEFAULT_URL = f"http://127.0.0.1:8080{PATH}"  # `make airflow`'s API server
INDEX_RUNS = 30  # runs per dataset on the index page
RUN_FILES = re.compile(r"report\.html|report\.json|validation_[a-z]+\.json")
DATASET = re.compile(r"[a-z][a-z0-9_]{0,62}")
TREES = ("runs", "docs")
DOCS_SITE = ("gx", "uncommitted", "data_docs", "local_site")  # GX's site in its project folder


def base_url() -> str:
    return (os.environ.get("RETRAIN_RESULTS_URL") or DEFAULT_URL).rstrip("/")


def report_url(dataset: str, run_date: str) -> str:
    return f"{base_url()}/runs/{dataset}/{run_date}/report.html"


def docs_site(dataset: str) -> Path:
    return gx_root(dataset).joinpath(*DOCS_SITE)


def docs_folder(dataset: str) -> str:
    """The dataset's Data Docs site in the lake."""
    return f"{lake_root()}/docs/{dataset}"


def publish_docs(dataset: str) -> int:
    """Copy the Data Docs pages GX built on this driver that the lake's site lacks (and the
    site's index, which changes with each validation); how many files."""
    return copy_new_files(docs_site(dataset), docs_folder(dataset), always=("index.html",))


def docs_url(dataset: str, page: str) -> str | None:
    """The URL of a Data Docs page recorded by validate or preprocess (a path in the site)."""
    marker = "/" + "/".join(DOCS_SITE[2:]) + "/"
    if marker not in page:
        return None
    return f"{base_url()}/docs/{dataset}/{quote(page.split(marker, 1)[1])}"


def links(record: RunRecord) -> dict[str, str]:
    """URLs of a run's results: `report` and each Data Docs suite's page."""
    if not (record.dataset and record.run_date):
        return {}
    found = {suite: docs_url(record.dataset, page) for suite, page in record.data_docs.items()}
    if record.report:
        found["report"] = report_url(record.dataset, record.run_date)
    return {kind: url for kind, url in found.items() if url}


def dataset_of(path: str) -> str | None:
    """The dataset a result path (`runs/<dataset>/...` or `docs/<dataset>/...`) belongs to."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] in TREES and DATASET.fullmatch(parts[1]):
        return parts[1]
    return None


def find(path: str) -> tuple[bytes, str] | None:
    """A result's content and media type, or None for anything that is not a result.

    `path` is relative to the results' root, as the server decoded it (once: a `%` left in it
    is taken literally). It must name a run's report or validation file
    (`runs/<dataset>/<YYYY-MM-DD>/<file>`) or a file of a Data Docs site
    (`docs/<dataset>/<path>`), with no empty, `.` or `..` segment; the file it resolves to,
    links followed, must lie inside that dataset's folder of the tree, so a link cannot lead
    to another dataset's results either.
    """
    dataset = dataset_of(path)
    parts = path.split("/")
    if dataset is None or "\\" in path or "\x00" in path:
        return None
    if any(part in ("", ".", "..") for part in parts):
        return None
    tree, rest = parts[0], parts[2:]
    if tree == "runs":
        if len(rest) != 2 or not RUN_FILES.fullmatch(rest[1]):
            return None
        try:
            day = parse_date(rest[0])
        except ValueError:
            return None
        location = f"{run_folder(dataset, day)}/{rest[1]}"
    else:
        location = f"{docs_folder(dataset)}/{'/'.join(rest)}"
    inside = _inside(location, f"{lake_root()}/{tree}", dataset)
    data = None if inside is None else read_bytes(inside)
    return None if data is None else (data, _type(parts[-1]))


def _inside(location: str, tree: str, dataset: str) -> str | None:
    """`location` resolved (links followed on a local disk), if it lies inside the dataset's
    own folder of `tree` (itself not followed, were it a link). On an object store there are
    no links, and the segments were checked: it is taken as it is."""
    try:
        real = os.path.realpath(local_path(location))
        root = os.path.join(os.path.realpath(local_path(tree)), dataset)
    except ValueError:
        real, root = location, f"{tree.rstrip('/')}/{dataset}"
    return real if real.startswith(root + "/") else None


def _type(name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind.endswith("json") else kind


def index_html(datasets: list[str]) -> str:
    """The latest runs of `datasets` with their outcome and report, newest first."""
    rows = []
    for name in datasets:
        for record in map(RunRecord, list_runs(name)[:INDEX_RUNS]):
            day = html.escape(record.run_date or "")
            report = (
                f'<a href="{PATH}/runs/{name}/{day}/report.html">report</a>'
                if record.report
                else ""
            )
            outcome = html.escape(record.decision or record.state)
            rows.append(
                f"<tr><td>{name}</td><td>{day}</td><td>{outcome}</td><td>{report}</td></tr>"
            )
    header = "<tr><th>dataset</th><th>run date</th><th>outcome</th><th></th></tr>"
    body = "".join(rows) or '<tr><td colspan="4">no runs you may read yet</td></tr>'
    return (
        "<!doctype html><title>retrain results</title><h1>retrain results</h1>"
        f"<table>{header}{body}</table>"
    )
