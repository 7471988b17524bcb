"""The results service: a run's report and Data Docs over HTTP, and nothing else of the home."""

from __future__ import annotations

import shutil
import threading
import urllib.error
import urllib.request
from datetime import date

import pytest

from retrain import results
from retrain.lake import write_object
from retrain.runs import RunRecord, run_folder, update_run
from tests.helpers import free_port

DAY = date(2026, 3, 2)


@pytest.fixture
def served(home, monkeypatch):
    port = free_port()
    monkeypatch.setenv("RETRAIN_RESULTS_URL", f"http://127.0.0.1:{port}")
    server = results.serve("127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield home
    server.shutdown()
    server.server_close()


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, "", ""


def test_a_runs_report_and_data_docs_are_served_by_their_links(served):
    home = served
    folder = run_folder("toy", DAY)
    write_object(f"{folder}/report.html", "<html>decision: reject</html>")
    site = results.docs_site("toy")
    page = site / "validations" / "toy_raw" / f"{DAY}" / "spark toy.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>toy_raw expectations</html>")
    (site / "static").mkdir()
    (site / "static" / "style.css").write_text("body {}")
    update_run("toy", DAY, evaluate={"decision": "reject", "report": f"{folder}/report.html"},
               validate={"data_docs": str(page)})  # fmt: skip
    assert results.publish_docs("toy") == 2  # the page and the stylesheet (no index yet)
    (site / "index.html").write_text("<html>index</html>")
    assert results.publish_docs("toy") == 1  # only what is new, and the index always
    assert results.publish_docs("toy") == 1
    shutil.rmtree(site)  # the driver's scratch space is gone: the lake still has the site
    links = results.links(RunRecord.read("toy", DAY))
    assert set(links) == {"report", "raw"}
    assert fetch(links["report"])[::2] == (200, "<html>decision: reject</html>")
    status, kind, body = fetch(links["raw"])
    assert (status, body) == (200, "<html>toy_raw expectations</html>") and "text/html" in kind
    assert fetch(results.base_url() + "/docs/toy/static/style.css")[:2] == (
        200,
        "text/css; charset=utf-8",
    )
    (home / "secrets").mkdir(parents=True, exist_ok=True)
    (home / "secrets" / "retrain.key").write_text("secret")
    for path in (
        "/docs/toy/../../../secrets/retrain.key",
        "/docs/toy/../../runs/toy/2026-03-02/record",
        "/docs/toy/%2e%2e/%2e%2e/%2e%2e/secrets/retrain.key",
        f"/runs/toy/{DAY}/../../../secrets/retrain.key",
        f"/runs/toy/{DAY}/record",
        "/runs/Toy/2026-03-02/report.html",
        "/lake/raw/toy",
    ):
        assert fetch(results.base_url() + path)[0] == 404, path
