"""Results one click away: each run's decision report and Data Docs over HTTP, for the task
links in Airflow, the alerts and `retrain status`.

`retrain serve-results` (started by `make airflow`; a service of its own in compose) serves two
trees of the lake read-only and nothing else: `/runs/<dataset>/<date>/<file>` from the run's
folder, and `/docs/<dataset>/<path>` from the dataset's Data Docs site, which the stages that
validate copy there from GX's project folder on their driver (`publish_docs`). So the service
needs no access to any driver's disk. Links are built from `RETRAIN_RESULTS_URL`, the address a
browser reaches it at.
"""

from __future__ import annotations

import html
import mimetypes
import os
import re
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from retrain.lake import copy_new_files, read_bytes, read_object
from retrain.paths import gx_root, lake_root
from retrain.runs import RunRecord, list_runs, run_folder

DEFAULT_PORT = 8090
INDEX_RUNS = 30  # runs per dataset on the index page
RUN_FILES = re.compile(r"report\.html|report\.json|validation_[a-z]+\.json")
DATASET = re.compile(r"[a-z][a-z0-9_]{0,62}")
DOCS_SITE = ("gx", "uncommitted", "data_docs", "local_site")  # GX's site in its project folder


def base_url() -> str:
    default = f"http://127.0.0.1:{DEFAULT_PORT}"
    return (os.environ.get("RETRAIN_RESULTS_URL") or default).rstrip("/")


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
    """URLs of a run's results on this service: `report` and each Data Docs suite's page."""
    if not (record.dataset and record.run_date):
        return {}
    found = {suite: docs_url(record.dataset, page) for suite, page in record.data_docs.items()}
    if record.report:
        found["report"] = report_url(record.dataset, record.run_date)
    return {kind: url for kind, url in found.items() if url}


class ResultsHandler(BaseHTTPRequestHandler):
    """GET only; anything outside the two trees is 404."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        found = self._find(parts)
        if found is None:
            self.send_error(404, "no such result")
            return
        body, kind = found
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _find(self, parts: list[str]) -> tuple[bytes, str] | None:
        if not parts:
            return _index().encode(), "text/html; charset=utf-8"
        if len(parts) < 3 or not DATASET.fullmatch(parts[1]):
            return None
        tree, dataset, rest = parts[0], parts[1], parts[2:]
        if tree == "runs" and len(rest) == 2 and RUN_FILES.fullmatch(rest[1]):
            try:
                day = date.fromisoformat(rest[0])
            except ValueError:
                return None
            text = read_object(f"{run_folder(dataset, day)}/{rest[1]}")
            return None if text is None else (text.encode(), _type(rest[1]))
        if tree == "docs" and all(part and part not in (".", "..") for part in rest):
            data = read_bytes(f"{docs_folder(dataset)}/{'/'.join(rest)}")
            return None if data is None else (data, _type(rest[-1]))
        return None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's
        """Quiet: one line per request would drown the service's log."""


def _type(name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind.endswith("json") else kind


def _index() -> str:
    """Every dataset's latest runs with their outcome and report, newest first."""
    from retrain.spec import load_all_specs

    rows = []
    for name in sorted(load_all_specs({})):
        for record in map(RunRecord, list_runs(name)[:INDEX_RUNS]):
            day = html.escape(record.run_date or "")
            report = (
                f'<a href="/runs/{name}/{day}/report.html">report</a>' if record.report else ""
            )
            outcome = html.escape(record.decision or record.state)
            rows.append(
                f"<tr><td>{name}</td><td>{day}</td><td>{outcome}</td><td>{report}</td></tr>"
            )
    header = "<tr><th>dataset</th><th>run date</th><th>outcome</th><th></th></tr>"
    return (
        "<!doctype html><title>retrain results</title><h1>retrain results</h1>"
        f"<table>{header}{''.join(rows)}</table>"
    )


def serve(host: str, port: int) -> ThreadingHTTPServer:
    """A started-to-be server (call `serve_forever`)."""
    return ThreadingHTTPServer((host, port), ResultsHandler)
