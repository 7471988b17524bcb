"""A history in one Spark session (`--history-from`): every day as its daily run leaves it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

from jobs import ingest
from jobs import validate as validate_job
from retrain.lake import is_validated
from retrain.runs import HISTORY, read_run, stage_outcome
from tests.helpers import context, toy_spec

HEADER = "id,label,x,y"
DAYS = [f"2026-01-{d:02d}" for d in range(1, 9)]  # the 4th never landed


def land(home: Path, day: str, lines: list[str]) -> None:
    folder = home / "lake" / "landing" / "toy" / f"ds={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text("\n".join([HEADER, *lines]) + "\n")


def test_a_history_leaves_every_day_as_daily_runs_would(spark, home):
    rng = np.random.default_rng(3)
    for index, day in enumerate(DAYS):
        if day == "2026-01-04":
            continue
        lines = [
            f"{index * 1000 + i},{'ab'[i % 2]},{rng.uniform(0, 10):.3f},1.0" for i in range(150)
        ]
        if day == "2026-01-06":
            lines = [f"{index * 1000 + i},a,x{i},1.0" for i in range(150)]  # all unusable
        land(home, day, lines)
    spec = toy_spec()
    ctx = replace(context(spec, DAYS[-1]), history_from=date.fromisoformat(DAYS[0]))
    ingested = ingest.run(spark, ctx)
    assert ingested["history"] == {
        "from": DAYS[0],
        "days": 5,
        "failed": {"2026-01-06": read_run("toy", date(2026, 1, 6))["error"]},
        "passed_over": 1,  # nothing landed on the 4th
    }
    assert "150 of 150 rows in" in ingested["history"]["failed"]["2026-01-06"]
    validated = validate_job.run(spark, ctx)
    assert validated["success"] and validated["history"]["days"] == 5
    assert validated["history"]["passed_over"] == 2  # the 4th, and the 6th that ingest failed
    for day in DAYS[:-1]:
        record, raw = (
            read_run("toy", date.fromisoformat(day)),
            ctx.paths.raw(date.fromisoformat(day)),
        )
        if day in ("2026-01-04", "2026-01-06"):
            assert not is_validated(spark, raw)
            continue
        assert (record["state"], record["run_id"]) == (HISTORY, "test-run")
        assert record["ingest"]["rows_valid"] == 150 and is_validated(spark, raw)
        assert Path(record["validate"]["data_docs"]).is_file()  # built once, at the end
    # Each day's drift was measured against the days validated before it, as daily.
    assert read_run("toy", date(2026, 1, 7))["validate"]["drift"]["reference_days"] == [
        "2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05",
    ]  # fmt: skip
    assert stage_outcome("validate", validated).endswith("; and 5 earlier day(s) from 2026-01-01")
    assert "1 failed (2026-01-06)" in stage_outcome("ingest", ingested)
