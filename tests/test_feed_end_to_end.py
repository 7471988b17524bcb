"""A daily feed no one here wrote, added as README "Add your dataset" says, works first try.

The trips feed (tests/feeds.py) has what broke real feeds: dates in the past, quoted line breaks,
a day with many unlabelled rows, a temperature and a label that swing like weather, days that
never land, and a history of five weeks. It is scaffolded from its landing folder with no hand
edits, its history is backfilled in one go, and the next two days run through the real DAG
(the second never lands: no_data). (That its calibrated thresholds still fail a broken day is
tests/test_calibrate.py's; the digits end-to-end test's corrupted day fails through the DAG.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import date, timedelta

import pytest
import yaml

from tests.feeds import write_trips
from tests.helpers import retrain_cli, run_dates, run_record

pytestmark = pytest.mark.integration

FIRST = date(2025, 6, 1)
HISTORY, GAP, BUSY = 35, 20, 30  # days; a day that never landed; a day of many cancellations
NEXT = [FIRST + timedelta(days=HISTORY + i) for i in range(2)]  # the second never lands


def day(index: int) -> date:
    return FIRST + timedelta(days=index)


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("feed")
    env = os.environ | {
        "RETRAIN_HOME": str(root / "home"),
        "RETRAIN_DATASETS_PATH": str(root / "specs"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RETRAIN_LAKE", None)
    # Every day the feed will ever send, in the sender's outbox; days "arrive" by a move.
    outbox, landing = root / "outbox", root / "home" / "lake" / "landing" / "trips"
    write_trips(outbox, FIRST, HISTORY + 2, rows=300, gaps=(GAP, HISTORY + 1),
                busy_cancellations=(BUSY,))  # fmt: skip
    landing.mkdir(parents=True)

    def arrive(days: list[date]) -> None:
        for d in days:
            if (outbox / f"ds={d}").exists():
                shutil.move(outbox / f"ds={d}", landing / f"ds={d}")

    arrive([day(i) for i in range(HISTORY)])
    scaffold = retrain_cli(env, "new-dataset", "trips", "--from", str(landing),
                           "--output", str(root / "specs"))  # fmt: skip
    backfill = retrain_cli(env, "backfill", "trips", "--from", FIRST.isoformat(),
                           "--to", day(HISTORY - 1).isoformat())  # fmt: skip
    arrive(NEXT)
    dates = [a for d in NEXT for a in ("--date", d.isoformat())]
    following = retrain_cli(env, "run", "trips", *dates)
    lake = root / "home" / "lake"
    records = {d: run_record(lake, "trips", d) for d in run_dates(lake, "trips")}
    return {
        "scaffold": scaffold.stdout,
        "spec": yaml.safe_load((root / "specs" / "trips.yaml").read_text()),
        "backfill": backfill.stdout,
        "following": following.stdout,
        "records": records,
        "status": json.loads(retrain_cli(env, "status", "trips", "--json").stdout),
    }


def test_the_scaffold_reads_the_feed_as_it_is(feed):
    spec, said = feed["spec"], feed["scaffold"]
    assert spec["source"]["options"]["multiLine"] == "true"
    assert spec["source"]["empty_days"] == "skip"
    assert spec["start_date"] == FIRST.isoformat()  # no silent no-op for a past feed
    assert (spec["id_column"], spec["label_column"]) == ("trip_id", "outcome")
    assert spec["feature_types"] == {"line": "categorical", "note": "text"}
    assert set(spec["drift"]["psi_by_column"]) == {"outcome", "line", "temp", "delay_min", "note"}
    assert spec["drift"]["psi_by_column"]["temp"][1] > 0.25  # the weather moves it
    profiled = re.search(rf"Profiled (\d+) rows of trips \((\d+) of {HISTORY - 1} days", said)
    rows, days = map(int, profiled.groups())  # days spread over the history, 300 rows each
    assert 10 <= days <= 14 and rows == 300 * days
    assert "1 day(s) between the first and the last have no partition" in said
    assert "quoted values hold line breaks" in said and "too few" not in said
    assert f"retrain backfill trips --from {FIRST} --to {day(HISTORY - 1)}" in said


def test_the_history_is_backfilled_in_one_go_and_publishes_once(feed):
    said, records = feed["backfill"], feed["records"]
    assert f"Backfilling trips: {HISTORY - 1} landed day(s)" in said
    ingest = next(line for line in said.splitlines() if " ingest " in line and "done" in line)
    assert f"and {HISTORY - 2} earlier day(s) from {FIRST}" in ingest  # less the run date
    last = records[day(HISTORY - 1).isoformat()]
    assert (last["state"], last["evaluate"]["decision"]) == ("success", "publish")
    history = [r for d, r in records.items() if d < day(HISTORY - 1).isoformat()]
    assert len(history) == HISTORY - 2 and {r["state"] for r in history} == {"history"}
    assert all(r["validate"]["success"] for r in history)
    busy = records[day(BUSY).isoformat()]["ingest"]
    assert busy["rows_quarantined"] == 0 and 15 < busy["rows_unlabelled"] < 60  # ~10%
    assert "1 of 1 date(s) succeeded" in said


def test_the_next_two_days_run_through_the_dag(feed):
    records = feed["records"]
    assert "2 of 2 date(s) succeeded" in feed["following"]
    landed, missing = (records[d.isoformat()] for d in NEXT)
    assert landed["state"] == "success"
    assert landed["evaluate"]["decision"] in ("publish", "reject")
    assert (missing["state"], missing["landing"]["decision"]) == ("success", "no_data")
    assert "ingest" not in missing
    deadline = NEXT[1] + timedelta(days=1)
    said = f"landing    {NEXT[1]}  no_data: no data landed by {deadline} 06:00 UTC"
    assert said in feed["following"]
    # The unlabelled rows of the day are scored, never trained on.
    assert 0 < landed["ingest"]["rows_unlabelled"] < landed["ingest"]["rows_valid"]
    assert feed["status"]["champion"]["version"] >= 1
