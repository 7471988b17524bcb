"""Tiny inline datasets for the job tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

from retrain.lake import save_model, write_partition
from retrain.paths import DatasetPaths
from retrain.runs import read_run, update_run
from retrain.spark.features import build_features
from retrain.spark.job import RunContext
from retrain.spark.model import fit_pipeline, training_history
from retrain.spec import Spec, parse_spec


def run_record(lake: Path, dataset: str, day: date | str) -> dict[str, Any]:
    """A run record as the lake at `lake` holds it (every update merged), read as any process
    would read it."""
    saved = os.environ.get("RETRAIN_LAKE")
    os.environ["RETRAIN_LAKE"] = str(lake)
    try:
        return read_run(dataset, date.fromisoformat(str(day)))
    finally:
        if saved is None:
            os.environ.pop("RETRAIN_LAKE")
        else:
            os.environ["RETRAIN_LAKE"] = saved


def run_dates(lake: Path, dataset: str) -> list[str]:
    """The run dates the lake at `lake` holds records of (`<lake>/runs/<dataset>/<date>`)."""
    return sorted(p.name for p in (lake / "runs" / dataset).iterdir())


EARLIER, LATER = date(2026, 3, 1), date(2026, 3, 2)  # the two days of the `toy_lake` fixture

TOY = {
    "name": "toy",
    "registered_model_name": "retrain_toy",
    "source": {"format": "csv", "options": {"header": "true"}},
    "schema": {"id": "long", "label": "string", "x": "double", "y": "double"},
    "id_column": "id",
    "label_column": "label",
    "feature_columns": ["x", "y"],
    "max_bad_fraction": 0.5,
    "model": {"hidden_layers": [4], "max_epochs": 200, "learning_rate": 0.03, "seed": 1},
    "gate": {"min_test_rows": 1},
}


# The toy dataset's suites: row rules for ingest, a table rule, a warning, and a features check.
TOY_SUITES = {
    "raw": {
        "name": "toy_raw",
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "x", "min_value": 0, "max_value": 10},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "label", "value_set": ["a", "b"]},
            },
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "y", "max_value": 100},
                "meta": {"severity": "warning"},
            },
        ],
    },
    "features": {
        "name": "toy_features",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "split", "value_set": ["train", "validation", "test"]},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}},
        ],
    },
}


def write_toy_suites(spec_dir: Path) -> None:
    """Put the toy suites where a dataset from RETRAIN_DATASETS_PATH keeps them."""
    folder = spec_dir / "expectations" / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    for suite, content in TOY_SUITES.items():
        (folder / f"{suite}.json").write_text(json.dumps(content))


def toy_spec(**changes: object) -> Spec:
    return parse_spec(TOY | changes, "toy.yaml")


def context(spec: Spec, day: str) -> RunContext:
    return RunContext(spec, date.fromisoformat(day), "test-run", DatasetPaths.for_spec(spec))


def start_webhook() -> tuple[str, list[dict], HTTPServer]:
    """A webhook on loopback that keeps every JSON body POSTed to it, in order."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/hook", received, server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, what: str, seconds: float, every: float = 2) -> Any:  # noqa: ANN001
    """`check()`'s first truthy result within `seconds` (a refused connection counts as no)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def retrain_cli(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    """Run `retrain ARGS` as a user would, in `env`; its exit code must be `expect`."""
    done = subprocess.run(
        [sys.executable, "-m", "retrain.tools.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == expect, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def land_candidate(spark, spec, day: date, shift: float = 0.0) -> None:
    """The features partition and candidate model of `day`, and the record train leaves."""
    rows = [
        (i, "a" if i % 2 else "b", (4.0 if i % 2 else 1.0) + shift + (i % 7) * 0.1, (i % 5) * 1.0)
        for i in range(300)
    ]
    window = spark.createDataFrame(rows, "id long, label string, x double, y double")
    features = build_features(spark, window.withColumn("ds", F.lit(day.isoformat())), spec)
    ctx = context(spec, day.isoformat())
    write_partition(features, ctx.paths.features(day))
    written = spark.read.parquet(ctx.paths.features(day))
    model, _ = fit_pipeline(
        written.filter("split = 'train'"), spec, validation=written.filter("split = 'validation'")
    )
    save_model(spark, model, ctx.paths.candidate(day))
    update_run(spec.name, day, preprocess={"window": [day.isoformat()], "content_hash": str(day)},
               train={"params": {"solver": spec.model.solver}, "epochs": 0,
                      "loss": training_history(model)})  # fmt: skip


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(profile: Path, *args: str) -> str:
    """Run a real headless Chromium with its own profile folder; its output."""
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "browser tests need Chromium: apt-get install chromium (CI installs it)"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip


def browse(url: str, profile: Path) -> str:
    """The page at `url` as a real headless Chromium renders it (its DOM after scripts ran)."""
    return chromium(profile, "--virtual-time-budget=5000", "--dump-dom", url)


class Browser:
    """A real headless Chromium driven as a person would, over its DevTools protocol: open a
    page, type into a field, press a button, read what is shown."""

    def __init__(self, profile: Path) -> None:
        import shutil
        import urllib.request

        from websockets.sync.client import connect

        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        assert binary, "browser tests need Chromium: apt-get install chromium (CI installs it)"
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        active = profile / "DevToolsActivePort"
        wait_for(lambda: active.exists() and active.read_text().strip(), "Chromium", 60, 0.2)
        port = int(active.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self._calls = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._calls += 1
        self._socket.send(json.dumps({"id": self._calls, "method": method, "params": params}))
        while True:
            answer = json.loads(self._socket.recv(timeout=60))
            if answer.get("id") == self._calls:
                assert "error" not in answer, answer["error"]
                return answer["result"]

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)[
            "result"
        ].get("value")

    def open(self, url: str, shown: str = "") -> str:
        """Go to `url`; the page's text once it has loaded (and shows `shown`, if given)."""
        self.call("Page.navigate", url=url)
        return self.text(shown)

    def text(self, shown: str = "") -> str:
        """The page's text once it has loaded (and shows `shown`)."""

        def loaded() -> str | None:
            try:
                if self.evaluate("document.readyState") != "complete":
                    return None
                text = self.evaluate("document.body ? document.body.innerText : ''")
            except AssertionError:  # the page navigated away meanwhile (a redirect): look again
                return None
            return text if text and shown in text else None

        return wait_for(loaded, f"a page showing {shown!r}", 60, 0.2)

    def type_into(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    @property
    def url(self) -> str:
        return self.evaluate("location.href")

    def close(self) -> None:
        self._socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)


HEADER = "id,label,x,y"  # a toy landing file's header and good rows
GOOD = ["1,a,0.5,1.0", "2,b,1.5,2.0", "3,a,0.0,0.1", "4,b,2.0,2.5"]
DAY = "2026-01-02"


def land(home: Path, lines: list[str], name: str = "part-0.csv", day: str = DAY) -> Path:
    """A toy landing file of `lines` for `day`."""
    folder = home / "lake" / "landing" / "toy" / f"ds={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(f"{line}\n" for line in lines))
    return folder


def evaluate_and_publish(spark, spec: Spec, day: date) -> dict[str, Any]:  # noqa: ANN001
    """Evaluate, then publish, `day` as the DAG runs them, each section into the record."""
    from jobs import evaluate, publish

    ctx = context(spec, day.isoformat())
    update_run(spec.name, day, evaluate=evaluate.run(spark, ctx))
    update_run(spec.name, day, publish=publish.run(spark, ctx))
    return read_run(spec.name, day)
