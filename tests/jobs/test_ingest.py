from __future__ import annotations

from pathlib import Path

import pytest

from jobs import ingest
from retrain.job import RetrainError
from tests.helpers import context, toy_spec

GOOD = ["1,a,0.5,1.0", "2,b,1.5,2.0", "3,a,0.0,0.1", "4,b,2.0,2.5"]
BAD = [
    "5,a,not-a-number,1.0",  # unparseable value
    "6,,1.0,1.0",  # missing label
    "7,b",  # truncated line
    ",a,1.0,1.0",  # missing id
]


def land(home: Path, day: str, lines: list[str]) -> None:
    folder = home / "lake" / "landing" / "toy" / f"ds={day}"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text("\n".join(["id,label,x,y", *lines]) + "\n")


def test_malformed_rows_are_quarantined_with_reasons(spark, home):
    land(home, "2026-01-02", GOOD + BAD)
    ctx = context(toy_spec(), "2026-01-02")
    result = ingest.run(spark, ctx)
    assert result["rows_read"] == 8
    assert result["rows_valid"] == 4
    assert result["rows_quarantined"] == 4
    assert result["quarantine_reasons"] == {
        "malformed record: does not match schema": 2,
        "missing label column 'label'": 1,
        "missing id column 'id'": 1,
    }
    raw = spark.read.parquet(ctx.paths.raw(ctx.run_date))
    assert sorted(r.id for r in raw.collect()) == [1, 2, 3, 4]
    assert raw.columns == ["id", "label", "x", "y"]
    quarantined = spark.read.parquet(ctx.paths.quarantine(ctx.run_date)).collect()
    assert {q.raw_record for q in quarantined if q.reason.startswith("malformed")} == {
        "5,a,not-a-number,1.0",
        "7,b",
    }


def test_rerun_overwrites_its_own_partition_only(spark, home):
    land(home, "2026-01-02", GOOD)
    land(home, "2026-01-03", GOOD[:2])
    spec = toy_spec()
    for day in ("2026-01-02", "2026-01-03", "2026-01-03"):
        ingest.run(spark, context(spec, day))
    paths = context(spec, "2026-01-02").paths
    assert spark.read.parquet(paths.raw(context(spec, "2026-01-02").run_date)).count() == 4
    assert spark.read.parquet(paths.raw(context(spec, "2026-01-03").run_date)).count() == 2


def test_too_many_bad_rows_fail_and_write_no_raw(spark, home):
    land(home, "2026-01-02", GOOD[:1] + BAD)
    ctx = context(toy_spec(max_bad_fraction=0.1), "2026-01-02")
    with pytest.raises(RetrainError, match=r"4 of 5 rows .* are malformed \(80.0% > "):
        ingest.run(spark, ctx)
    assert not Path(ctx.paths.raw(ctx.run_date)).exists()
    assert spark.read.parquet(ctx.paths.quarantine(ctx.run_date)).count() == 4


def test_missing_and_empty_partitions_are_clear_errors(spark, home):
    ctx = context(toy_spec(), "2026-01-09")
    with pytest.raises(RetrainError, match="no landing partition for toy on 2026-01-09"):
        ingest.run(spark, ctx)
    land(home, "2026-01-09", [])
    with pytest.raises(RetrainError, match="is empty"):
        ingest.run(spark, ctx)
