"""The results: a run's report and Data Docs found by their links, and nothing else of the home.
The app that serves them behind Airflow's login is tested against a real API server in
`test_airflow_local`."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import pytest

from retrain import results
from retrain.lake import write_object
from retrain.runs import RunRecord, run_folder, update_run

DAY = date(2026, 3, 2)


def test_a_runs_report_and_data_docs_are_found_by_their_links(home, monkeypatch):
    monkeypatch.setenv("RETRAIN_RESULTS_URL", "http://airflow.example:8080/retrain")
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
    assert links == {
        "report": f"http://airflow.example:8080/retrain/runs/toy/{DAY}/report.html",
        "raw": f"http://airflow.example:8080/retrain/docs/toy/validations/toy_raw/{DAY}/"
        "spark%20toy.html",
    }
    assert found(links["report"]) == (b"<html>decision: reject</html>", "text/html; charset=utf-8")
    assert found(links["raw"]) == (
        b"<html>toy_raw expectations</html>",
        "text/html; charset=utf-8",
    )
    assert found(results.base_url() + "/docs/toy/static/style.css")[1] == "text/css; charset=utf-8"


def found(url: str) -> tuple[bytes, str] | None:
    """What the results app serves for a link: its path below /retrain, decoded once, as the
    API server hands it over."""
    return results.find(unquote(url.split(results.PATH + "/", 1)[1]))


# Paths as the server hands them over, decoded once: `%2F` and `%2e` in a request are `/` and
# `.` here; a `%` left in a path was encoded twice and is taken literally (no such file).
TRAVERSALS = [
    "docs/toy/../../../secrets/retrain.key",
    "docs/toy/static/../../../../secrets/retrain.key",
    "docs/toy/%2e%2e/%2e%2e/%2e%2e/secrets/retrain.key",
    "docs/toy/..%2F..%2F..%2Fsecrets%2Fretrain.key",
    "docs/toy/./static/style.css",
    "docs/toy//static/style.css",
    "docs/toy/static\\..\\..\\secrets",
    "docs/toy/linked/retrain.key",  # a link inside the site to the secrets folder
    "docs/toy/static/style.css\x00.html",
    "/etc/passwd",
    "docs//etc/passwd",
    "docs/toy/",
    f"runs/toy/{DAY}/../../../secrets/retrain.key",
    f"runs/toy/{DAY}/record",
    f"runs/toy/{DAY}/REPORT.HTML",
    "runs/Toy/2026-03-02/report.html",
    "Runs/toy/2026-03-02/report.html",
    "runs/toy/20260302/report.html",
    "lake/raw/toy",
    "secrets/retrain.key",
    "docs/alias/static/style.css",  # another dataset's folder, linked to toy's
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_results_is_found(home, path):
    folder = run_folder("toy", DAY)
    write_object(f"{folder}/report.html", "<html>report</html>")
    site = Path(results.docs_folder("toy"))
    (site / "static").mkdir(parents=True)
    (site / "static" / "style.css").write_text("body {}")
    secrets = home / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "retrain.key").write_text("secret")
    (site / "linked").symlink_to(secrets)
    (site.parent / "alias").symlink_to(site)  # a reader of `alias` must not get toy's files
    assert results.find("docs/toy/static/style.css") == (b"body {}", "text/css; charset=utf-8")
    assert results.find(f"runs/toy/{DAY}/report.html")[0] == b"<html>report</html>"
    assert results.find(path) is None


def test_results_are_found_in_a_lake_on_an_object_store(home, monkeypatch):
    monkeypatch.setenv("RETRAIN_LAKE", "memory://lake")  # fsspec's, as s3:// or gs:// would be
    write_object(f"{run_folder('toy', DAY)}/report.html", "<html>report</html>")
    write_object(f"{results.docs_folder('toy')}/static/style.css", "body {}")
    assert results.find(f"runs/toy/{DAY}/report.html")[0] == b"<html>report</html>"
    assert results.find("docs/toy/static/style.css")[0] == b"body {}"
    assert results.find("docs/toy/../toy/static/style.css") is None
