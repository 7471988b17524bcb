"""The real retrain_digits DAG through Airflow's dag.test(), on local Spark, with real MLflow.

Two consecutive dates (the second, trained on twice the rows, publishes if the gate finds it
better beyond noise), then a rerun of the second: the rerun must leave every partition as it
was, add no registry version and, its candidate no better than the champion, be rejected with
the champion left in place. Then a corrupted third day (every image inverted: values in range,
so ingest keeps them) must fail at validation on drift, once, without a retry, with the
champion unchanged and the failure and its Data Docs in `retrain status`. (A candidate below
the gate's floor is rejected by the same path: `tests/jobs/test_evaluate.py` holds the gate.)
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from retrain.airflow.dag_factory import STAGES
from retrain.paths import DatasetPaths
from retrain.spec import load_spec
from tests.helpers import run_record, start_webhook

pytestmark = pytest.mark.integration

DAY1, DAY2, DAY3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
CLI = [sys.executable, "-m", "retrain.tools.cli"]


def retrain(
    home: Path, *args: str, expect: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = (
        os.environ | {"RETRAIN_HOME": str(home), "RETRAIN_LAKE": str(lake_of(home))} | (env or {})
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == expect, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def lake_of(home: Path) -> Path:
    """The lake of these runs: beside the home, not in it, as on a cluster."""
    return home.parent / "lake"


def land_inverted_digits(home: Path, day: date) -> None:
    """A day of real digit images with every pixel inverted (16 - v): in range, but drifted."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    folder = lake_of(home) / "landing" / "digits" / f"ds={day}"
    folder.mkdir(parents=True)
    lines = ["id,label," + ",".join(f"p{i}" for i in range(64))]
    lines += [
        f"{5_000_000 + i},{labels[i]}," + ",".join(str(int(16 - v)) for v in images[i])
        for i in range(900)
    ]
    (folder / "part-0.csv").write_text("\n".join(lines) + "\n")


def partitions(spark, home: Path) -> dict[str, list]:
    """Every partition the runs wrote, as sorted rows (file names differ run to run)."""
    os.environ["RETRAIN_HOME"] = str(home)
    os.environ["RETRAIN_LAKE"] = str(lake_of(home))
    paths = DatasetPaths.for_spec(load_spec("digits"))
    found = {}
    for day in (DAY1, DAY2):
        for zone in ("raw", "quarantine", "features"):
            location = getattr(paths, zone)(day)
            found[f"{zone}/{day}"] = sorted(map(tuple, spark.read.parquet(location).collect()))
    return found


def model_versions(home: Path) -> list:
    from mlflow import MlflowClient

    store = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    # Both URIs: an earlier in-process test may have set MLflow's global registry URI.
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    return client.search_model_versions("name = 'retrain_digits'")


@pytest.fixture(scope="module")
def alerts():
    """A local webhook as the `retrain_alerts` connection; what it received, in order."""
    url, received, server = start_webhook()
    os.environ["AIRFLOW_CONN_RETRAIN_ALERTS"] = json.dumps({"conn_type": "http", "host": url})
    yield received
    os.environ.pop("AIRFLOW_CONN_RETRAIN_ALERTS")
    server.shutdown()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, spark, alerts):
    home = tmp_path_factory.mktemp("e2e") / "home"
    previous = os.environ.get("RETRAIN_HOME")
    demo = retrain(home, "demo-data", "--end", DAY2.isoformat(), "--days", "2")
    retrain(home, "run", "digits", "--date", DAY1.isoformat(), "--date", DAY2.isoformat())
    before = partitions(spark, home)
    versions_before = model_versions(home)
    status_before = json.loads(retrain(home, "status", "digits", "--json").stdout)
    rerun = retrain(home, "run", "digits", "--date", DAY2.isoformat())
    after = partitions(spark, home)
    versions_after = model_versions(home)
    status_after_rerun = json.loads(retrain(home, "status", "digits", "--json").stdout)
    day2_report = (lake_of(home) / "runs" / "digits" / f"{DAY2}" / "report.html").read_text()
    land_inverted_digits(home, DAY3)
    corrupted = retrain(home, "run", "digits", "--date", DAY3.isoformat(), expect=1)
    yield {
        "home": home,
        "corrupted": corrupted.stdout,
        "demo": demo.stdout,
        "before": before,
        "after": after,
        "versions_before": versions_before,
        "versions_after": versions_after,
        "status_before": status_before,
        "status": status_after_rerun,
        "rerun": rerun.stdout,
        "day2_report": day2_report,
        "status_corrupted": json.loads(retrain(home, "status", "digits", "--json").stdout),
    }
    os.environ.pop("RETRAIN_LAKE", None)
    if previous is None:
        os.environ.pop("RETRAIN_HOME", None)
    else:
        os.environ["RETRAIN_HOME"] = previous


def first_runs(pipeline) -> dict[str, dict]:
    """Both dates' runs before the rerun, by date."""
    return {r["run_date"]: r for r in pipeline["status_before"]["runs"]}


def day2_published(pipeline) -> bool:
    """Whether day 2's first run moved the champion: the gate decides on the bootstrap interval
    of its gain, which on ~360 test rows lies close to zero either way."""
    day2 = first_runs(pipeline)[DAY2.isoformat()]
    assert day2["decision"] in ("publish", "reject")
    published = day2["decision"] == "publish"
    beyond_noise = "better than the champion beyond noise: weighted_f1 +"
    assert day2["reason"].startswith(beyond_noise if published else f"not {beyond_noise}")
    return published


def test_champion_is_published_with_f1_above_095(pipeline):
    champion = pipeline["status"]["champion"]
    day = DAY2 if day2_published(pipeline) else DAY1
    assert champion["version"] == (2 if day == DAY2 else 1)
    assert champion["run_date"] == day.isoformat()
    assert champion["metric"] == "weighted_f1"
    assert champion["f1"] >= 0.95
    runs = {r["run_date"]: r for r in pipeline["status"]["runs"]}
    assert set(runs) == {DAY1.isoformat(), DAY2.isoformat()}  # before the corrupted day
    assert runs[day.isoformat()]["version"] == champion["version"]  # both numbers
    assert all(r["state"] == "success" for r in runs.values())
    first = first_runs(pipeline)
    assert first[DAY1.isoformat()]["decision"] == "publish"
    assert first[day.isoformat()]["f1"] == pytest.approx(champion["f1"])
    pages = runs[DAY2.isoformat()]["data_docs"]
    assert set(pages) == {"raw", "drift", "features"}
    assert all(Path(page).is_file() for page in pages.values())


def test_every_piece_of_run_state_is_in_the_lake_not_the_home(pipeline):
    """Records, reports and validation results: where any worker or driver can reach them."""
    home, lake = pipeline["home"], lake_of(pipeline["home"])
    assert not (home / "lake").exists() and not (home / "runs").exists()
    folder = lake / "runs" / "digits" / f"{DAY2}"
    updates = sorted((folder / "record").glob("*.json"))
    assert len(updates) >= 12  # every stage, its retries and the notifier add, never rewrite
    assert {"report.html", "report.json", "validation_raw.json", "validation_drift.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert list((lake / "docs" / "digits" / "validations").rglob("*.html"))  # Data Docs too
    record = run_record(lake, "digits", DAY2)
    assert record["train"]["loss"]["unit"] == "epoch"  # the loss curve travels in the record
    assert len(record["train"]["loss"]["train_loss"]) == record["train"]["epochs"]


def test_each_stage_records_where_its_time_went(pipeline):
    record = run_record(lake_of(pipeline["home"]), "digits", DAY1)
    for stage in ("ingest", "validate", "preprocess", "train", "evaluate", "publish"):
        timings = record[stage]["timings"]
        assert timings["session_start"] > 0, stage
        assert timings["compute"] > 0, stage
        assert timings["compute"] + timings["write"] == pytest.approx(
            record[stage]["seconds"], abs=0.02
        ), stage
    # ingest writes raw and quarantine, preprocess the features; train saves a model, no partition
    assert record["ingest"]["timings"]["write"] > 0
    assert record["preprocess"]["timings"]["write"] > 0
    assert record["train"]["timings"]["write"] == 0


def test_second_day_trains_on_both_days_and_scores_higher(pipeline):
    first = first_runs(pipeline)
    assert first[DAY2.isoformat()]["f1"] > first[DAY1.isoformat()]["f1"]
    day2_published(pipeline)  # the decision follows the interval


def test_rerun_is_no_better_than_the_champion(pipeline):
    """The rerun trains the same model again: its gain over the champion is noise at most."""
    day2 = {r["run_date"]: r for r in pipeline["status"]["runs"]}[DAY2.isoformat()]
    assert day2["decision"] == "reject"
    assert day2["reason"].startswith("not better than the champion beyond noise: weighted_f1 +")
    assert day2["f1"] >= 0.95
    assert day2["report"].endswith(f"runs/digits/{DAY2}/report.html")
    report = pipeline["day2_report"]  # the rerun's report
    assert "not better than the champion beyond noise" in report
    assert report.count("data:image/png;base64,") == 4


def test_quarantine_holds_exactly_the_malformed_rows(pipeline):
    # demo-data writes 3 malformed rows on the first day and none on the second
    assert "malformed rows: 3" in pipeline["demo"]
    runs = {r["run_date"]: r for r in pipeline["status"]["runs"]}
    assert runs[DAY1.isoformat()]["rows_quarantined"] == 3
    assert runs[DAY2.isoformat()]["rows_quarantined"] == 0
    assert len(pipeline["before"][f"quarantine/{DAY1}"]) == 3
    assert len(pipeline["before"][f"quarantine/{DAY2}"]) == 0
    # every valid image is in raw: 1797 images split across the two days
    assert len(pipeline["before"][f"raw/{DAY1}"]) + len(pipeline["before"][f"raw/{DAY2}"]) == 1797


def test_the_bench_reads_a_real_runs_stage_breakdown(pipeline):
    """`make bench`'s DAG table (bench/run.py) from this run: each Airflow task's seconds split
    into spark-submit and JVM start, session start and stop, compute and write."""
    from bench.run import dag_result, task_seconds

    record = run_record(lake_of(pipeline["home"]), "digits", DAY1)
    tasks = task_seconds(pipeline["home"], "retrain_digits", record["run_id"])
    assert set(STAGES) <= set(tasks) and all(tasks[s] > 0 for s in STAGES)
    result = dag_result(900, sum(tasks.values()), record, tasks)
    assert result["f1"] == record["evaluate"]["candidate"]["weighted_f1"] > 0.9
    for stage, parts in result["stages"].items():
        assert parts["task_seconds"] == tasks[stage]
        assert 0 < parts["spark_seconds"] < parts["task_seconds"], (stage, parts)
        assert parts["submit_jvm_python_seconds"] > 0, (stage, parts)
    assert result["dag_overhead_ratio"] > 1


def test_every_run_keeps_its_airflow_record(pipeline):
    """A rerun of a date is a new Airflow run: the earlier run of the date (and any scheduled
    one) is never cleared or deleted."""
    with sqlite3.connect(pipeline["home"] / "airflow" / "airflow.db") as db:
        runs = db.execute(
            "SELECT state, conf FROM dag_run WHERE dag_id = 'retrain_digits' ORDER BY id"
        ).fetchall()
    dates = [json.loads(conf)["run_date"] for _, conf in runs]
    assert dates == [str(d) for d in (DAY1, DAY2, DAY2, DAY3)]
    assert [state for state, _ in runs] == ["success"] * 3 + ["failed"]


def test_a_run_prints_one_line_per_stage_and_keeps_the_logs_in_a_file(pipeline):
    out = pipeline["rerun"]
    lines = out.splitlines()
    (logs,) = [line for line in lines if line.startswith("Airflow and Spark logs: ")]
    log_file = Path(logs.removeprefix("Airflow and Spark logs: ").split(" (")[0])
    assert log_file.parent == pipeline["home"] / "logs"
    assert "[DAG TEST] end task task_id=publish" in log_file.read_text()  # Airflow's own lines
    assert "[DAG TEST]" not in out and "SparkSubmitHook" not in out
    stage_lines = [  # "HH:MM:SS  stage  date  what"
        line.split(maxsplit=3)[1:]
        for line in lines
        if re.match(rf"\d\d:\d\d:\d\d  \S+ +{DAY2}  ", line)
    ]
    assert [(stage, what.split()[0]) for stage, _, what in stage_lines] == [
        (stage, event) for stage in STAGES for event in ("started", "done")
    ]
    done = {stage: what for stage, _, what in stage_lines if what.startswith("done")}
    rows = len(pipeline["before"][f"raw/{DAY2}"])
    assert done["ingest"].endswith(f": {rows} rows valid, 0 quarantined")
    assert "rows from 2 day(s)" in done["preprocess"]
    assert done["evaluate"].split(": ", 1)[1].startswith("reject: not better than the champion")
    assert done["publish"].endswith("champion unchanged")
    assert lines[-1] == "1 of 1 date(s) succeeded"
    assert len(lines) < 60  # not thousands of Airflow lines


def test_rerun_changes_no_partition_and_adds_no_version(pipeline):
    assert pipeline["after"] == pipeline["before"]
    assert len(pipeline["versions_before"]) == 2
    assert len(pipeline["versions_after"]) == 2
    assert pipeline["status"]["champion"] == pipeline["status_before"]["champion"]
    assert f"  {DAY2}  success  reject" in pipeline["rerun"]  # its summary, for a person
    assert "      model version: 2\n" in pipeline["rerun"]


def test_versions_carry_lineage_tags(pipeline):
    tags = {str(v.version): v.tags for v in pipeline["versions_after"]}
    assert tags["2"]["run_date"] == DAY2.isoformat()
    assert tags["2"]["data_window"] == f"{DAY1}..{DAY2}"
    assert tags["1"]["data_window"] == f"{DAY1}..{DAY1}"
    for key in ("spec_hash", "data_hash", "code_version", "fingerprint"):
        assert tags["2"][key]
    assert tags["1"]["fingerprint"] != tags["2"]["fingerprint"]
    day2 = "publish" if day2_published(pipeline) else "reject"
    assert (tags["1"]["decision"], tags["2"]["decision"]) == ("publish", day2)


def test_corrupted_day_fails_at_validation_once_and_keeps_the_champion(pipeline):
    final = pipeline["status_corrupted"]
    assert final["champion"] == pipeline["status"]["champion"]
    day3 = {r["run_date"]: r for r in final["runs"]}[DAY3.isoformat()]
    assert (day3["state"], day3["failed_stage"]) == ("failed", "validate")
    assert day3["reason"].startswith("validation of ")
    assert "drift of feature p" in day3["reason"] and "allowed at most 0.25" in day3["reason"]
    assert Path(day3["data_docs"]["drift"]).is_file()
    assert "digits_drift" in Path(day3["data_docs"]["drift"]).read_text()
    assert day3["rows_quarantined"] == 0  # every value in range: only drift tells
    # Not retried: the raw suite (which passed) was validated once for the day; the drift suite
    # twice (the cheap pass, then the detailed one that explains the failure).
    results = pipeline["home"] / "gx" / "digits" / "gx" / "uncommitted" / "validations"
    assert len(list((results / "digits_raw").glob(f"{DAY3}/*/*.json"))) == 1
    assert len(list((results / "digits_drift").glob(f"{DAY3}/*/*.json"))) == 2
    paths = DatasetPaths.for_spec(load_spec("digits"))
    assert not Path(paths.features(DAY3)).exists()
    assert not (Path(paths.raw(DAY3)) / "_VALIDATED").exists()


def test_each_run_that_needs_a_person_sent_one_alert(pipeline, alerts):
    """Day 1 published (no alert); day 2 published (no alert) or was rejected; its rerun was
    rejected; day 3 failed validation: one message each, with the report or the Data Docs."""
    rejected = 1 if day2_published(pipeline) else 2
    assert [a["kind"] for a in alerts] == ["rejected"] * rejected + ["validation_failed"]
    assert all(a["dag_id"] == "retrain_digits" for a in alerts)
    rerun, corrupted = alerts[-2:]
    assert "not better than the champion beyond noise" in rerun["text"]
    assert rerun["links"] == [f"http://127.0.0.1:8080/retrain/runs/digits/{DAY2}/report.html"]
    assert f"for {DAY3}" in corrupted["text"] and "drift" in corrupted["text"]
    assert corrupted["links"] and all(
        link.startswith("http://127.0.0.1:8080/retrain/docs/digits/") and link.endswith(".html")
        for link in corrupted["links"]
    )


def test_suggest_suite_command_writes_suites_that_pass_their_day(pipeline, tmp_path):
    suggest = ["suggest-suite", "digits", "--date", DAY1.isoformat(), "--output", str(tmp_path)]
    out = retrain(pipeline["home"], *suggest).stdout
    suites = tmp_path / "expectations" / "digits"  # the layout new-dataset --output writes
    raw = json.loads((suites / "raw.json").read_text())
    assert f"wrote {suites / 'raw.json'} ({len(raw['expectations'])} expectations)" in out
    # The rows ingest keeps before the suite's row rules: raw's, and the demo's one row without
    # a label (usable now, unlabelled; digits' own suite quarantines it with a critical not-null).
    assert raw["meta"]["rows"] == len(pipeline["before"][f"raw/{DAY1}"]) + 1
    assert {e["kwargs"].get("column") for e in raw["expectations"]} >= {"id", "label", "p0", "p63"}
    assert (suites / "features.json").exists()
    again = retrain(pipeline["home"], *suggest, expect=2)
    assert "already exist; pass --force" in again.stderr


def airflow_runs(home: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(run id, state, task states) of every retrain_digits run, oldest first."""
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        runs = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = 'retrain_digits' ORDER BY id"
        ).fetchall()
        tasks = db.execute(
            "SELECT run_id, task_id, state FROM task_instance WHERE dag_id = 'retrain_digits'"
        ).fetchall()
    return [
        (run_id, state, {task: ts for r, task, ts in tasks if r == run_id})
        for run_id, state in runs
    ]


def test_a_run_waits_while_another_holds_the_dataset_and_a_killed_ones_claim_is_freed(pipeline):
    """Runs last: it adds runs. The corrupted day's run, set back to 'running' and claimed by a
    live process, holds digits: a new run's claim waits, then times out with nothing run. Once
    that process is gone, the next `retrain run` marks the abandoned run failed and goes on."""
    home = pipeline["home"]
    holder_id = airflow_runs(home)[-1][0]
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        db.execute("UPDATE dag_run SET state = 'running' WHERE run_id = ?", (holder_id,))
    claim = home / "locks" / "digits.claim.json"
    held = json.loads(claim.read_text())
    assert held["run_id"] == holder_id and held["run_date"] == DAY3.isoformat()
    claim.write_text(json.dumps(held | {"cli_pid": os.getpid()}))  # alive
    record_before = run_record(lake_of(home), "digits", DAY2)

    waited = retrain(home, "run", "digits", "--date", str(DAY2), "--json", expect=1,
                     env={"RETRAIN_CLAIM_WAIT_SECONDS": "20"})  # fmt: skip
    said = waited.stderr  # with --json, stdout holds only the JSON document
    assert f"digits is being processed by retrain_digits run {holder_id} (date {DAY3}" in said
    assert "0 of 1 date(s) succeeded" in said
    document = json.loads(waited.stdout)
    assert (document["dataset"], document["succeeded"]) == ("digits", 0)
    (summary,) = document["runs"]
    assert summary["state"] == "failed" and summary["dag_run_state"] == "failed"
    assert summary["reason"].startswith("no stage ran: digits is being processed by retrain_")
    assert summary["decision"] is None  # not the date's earlier record
    run_id, state, tasks = airflow_runs(home)[-1]
    assert state == "failed" and tasks["claim"] == "failed"
    assert tasks["ingest"] == "upstream_failed"  # no stage ran
    assert run_record(lake_of(home), "digits", DAY2) == record_before

    gone = subprocess.Popen(["true"])
    gone.wait()
    claim.write_text(json.dumps(held | {"cli_pid": gone.pid}))
    # Before the DAG's start_date (2026-01-01), which bounds the schedule, not a `retrain run`;
    # nothing landed, long past its landed_by, so the landing task fails it at once: the claim
    # is what is tested.
    no_landing = date(2025, 12, 9)
    freed = retrain(home, "run", "digits", "--date", str(no_landing), expect=1)
    assert (
        f"marked retrain_digits run {holder_id} (date {DAY3}) failed: the `retrain run` "
        f"process {gone.pid} running it is gone"
    ) in freed.stdout
    runs = {r: (s, t) for r, s, t in airflow_runs(home)}
    assert runs[holder_id][0] == "failed"
    last_id, (state, tasks) = list(runs.items())[-1]
    assert tasks["claim"] == "success" and tasks["landing"] == "failed" and state == "failed"
    assert tasks["ingest"] == "upstream_failed"
    assert "had not landed by 2025-12-10 06:00 UTC" in freed.stdout
    assert json.loads(claim.read_text())["run_id"] == last_id
