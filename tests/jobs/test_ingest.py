"""Ingest against a bad-input matrix: each case's exact outcome on real Spark.

Every case that continues must account for every row (raw + quarantine = read); every case that
fails must say why in one line and leave the raw partition as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import ingest
from retrain.errors import RetrainError
from tests.helpers import DAY, GOOD, HEADER, context, land, toy_spec


def raw_ids(spark, ctx) -> list[int]:
    return sorted(r.id for r in spark.read.parquet(ctx.paths.raw(ctx.run_date)).collect())


def quarantine(spark, ctx) -> list:
    return spark.read.parquet(ctx.paths.quarantine(ctx.run_date)).orderBy("raw_record").collect()


# (case, landed lines after the header, reasons expected in quarantine)
CONTINUES = [
    (
        "malformed csv rows",
        ["7,b", "8,a,1.0,1.0,9.9"],
        {"malformed record: fields do not match": 2},
    ),
    ("unparseable value", ["5,a,not-a-number,1.0"], {"x is not a double": 1}),
    ("missing id", [",a,1.0,1.0"], {"id is missing": 1}),
    ("out of range value", ["9,a,11.5,1.0"], {"x is outside [0, 10]": 1}),
    ("unseen category", ["10,c,1.0,1.0"], {"label is not one of the 2 allowed": 1}),
    ("very long string", ["11,a," + "9" * 100_000 + "x,1.0"], {"x is not a double": 1}),
    ("exact duplicate row", [GOOD[0]], {"exact duplicate of another row": 1}),
    (
        "conflicting duplicate id",
        ["1,b,0.5,1.0"],
        {"id is shared by rows with different values": 2},
    ),
]


@pytest.mark.parametrize(
    ("bad", "reasons"), [c[1:] for c in CONTINUES], ids=[c[0] for c in CONTINUES]
)
def test_bad_rows_are_quarantined_and_every_row_is_accounted_for(spark, home, bad, reasons):
    land(home, [HEADER, *GOOD, *bad])
    ctx = context(toy_spec(), DAY)
    result = ingest.run(spark, ctx)
    assert result["quarantine_reasons"] == reasons
    assert result["rows_read"] == len(GOOD) + len(bad)
    raw, held = raw_ids(spark, ctx), quarantine(spark, ctx)
    assert len(raw) + len(held) == result["rows_read"] == result["rows_valid"] + len(held)
    assert sum(reasons.values()) == len(held)
    assert {q.reason for q in held} == set(reasons)


def test_quarantine_keeps_the_record_as_read_and_names_the_value(spark, home):
    long_value = "9" * 100_000 + "x"
    land(home, [HEADER, *GOOD, "7,b", f"11,a,{long_value},1.0", "9,a,11.5,1.0"])
    ctx = context(toy_spec(), DAY)
    ingest.run(spark, ctx)
    held = {q.reason: q for q in quarantine(spark, ctx)}
    assert held["malformed record: fields do not match"].raw_record == "7,b"
    too_long = held["x is not a double"]
    assert json.loads(too_long.raw_record)["x"] == long_value  # whole, as read
    assert too_long.column == "x" and too_long.value == long_value[:200]
    assert held["x is outside [0, 10]"].value == "11.5"
    assert {q.source_file.rsplit("/", 1)[-1] for q in held.values()} == {"part-0.csv"}
    assert raw_ids(spark, ctx) == [1, 2, 3, 4]


def test_exact_duplicates_keep_one_copy_and_conflicts_keep_none(spark, home):
    land(home, [HEADER, *GOOD, GOOD[0], GOOD[0], "2,a,1.5,2.0"])
    ctx = context(toy_spec(max_bad_fraction=0.9), DAY)
    result = ingest.run(spark, ctx)
    assert raw_ids(spark, ctx) == [1, 3, 4]
    assert result["quarantine_reasons"] == {
        "exact duplicate of another row": 2,
        "id is shared by rows with different values": 2,
    }


def test_malformed_json_lines_and_wrong_types_are_quarantined(spark, home):
    rows = [{"id": i, "label": "a", "x": 1.0, "y": 2.0} for i in range(1, 5)]
    lines = [json.dumps(r) for r in rows] + [
        '{"id": 5, "label": "a",',
        '{"id": 6, "label": "b", "x": "big", "y": 1}',
    ]
    land(home, lines, "part-0.json")
    ctx = context(toy_spec(source={"format": "json"}), DAY)
    result = ingest.run(spark, ctx)
    assert result["quarantine_reasons"] == {
        "malformed record: fields do not match": 1,
        "x is not a double": 1,
    }
    assert raw_ids(spark, ctx) == [1, 2, 3, 4]


def _parquet(spark, home: Path, ddl: str, rows: list[tuple]) -> Path:
    folder = home / "lake" / "landing" / "toy" / f"ds={DAY}"
    spark.createDataFrame(rows, ddl).coalesce(1).write.mode("overwrite").parquet(str(folder))
    return folder


def test_parquet_with_narrower_numbers_is_read(spark, home):
    _parquet(
        spark, home, "id int, label string, x float, y int", [(1, "a", 0.5, 1), (2, "b", 1.0, 2)]
    )
    ctx = context(toy_spec(source={"format": "parquet"}), DAY)
    assert ingest.run(spark, ctx)["rows_valid"] == 2


# (case, how to land it, spec source, the one-line error expected)
def _csv(lines):
    return lambda spark, home: land(home, lines)


def _truncated_parquet(spark, home):
    folder = _parquet(
        spark, home, "id long, label string, x double, y double", [(1, "a", 0.5, 1.0)]
    )
    data = next(folder.glob("*.parquet"))
    data.write_bytes(data.read_bytes()[:-20])  # cut off the footer, as an interrupted upload does
    return folder


FAILS = [
    (
        "missing column",
        _csv(["id,label,x", "1,a,0.5"]),
        "csv",
        r"part-0.csv: column\(s\) 'y' missing",
    ),
    ("extra column", _csv([HEADER + ",z", "1,a,0.5,1.0,3"]), "csv", r"'z' not in the spec"),
    (
        "renamed column",
        _csv(["id,target,x,y", *GOOD]),
        "csv",
        r"column 'label' is missing and 'target' is not in the spec \(renamed\?\)",
    ),
    (
        "type change",
        _csv([HEADER, *[f"{i},a,high,1.0" for i in range(1, 9)]]),
        "csv",
        r"8 of 8 rows .* cannot be used \(100.0% > .*\): "
        r"8 x x is not a double \(e.g. 'high' in part-0.csv\)",
    ),
    (
        "unlabelled rows above their limit",
        _csv([HEADER, *GOOD[:2], "5,,1,1", "6,,1,1", "7,,1,1"]),
        "csv",
        r"3 of 5 usable rows .* have no label \(60.0% > max_unlabelled_fraction 50.0%\)",
    ),
    ("empty partition", _csv([HEADER]), "csv", r"is empty \(no rows\)"),
    (
        "json missing key",
        lambda spark, home: land(home, ['{"id": 1, "label": "a", "x": 1.0}'], "p.json"),
        "json",
        r"p.json: column\(s\) 'y' missing",
    ),
    (
        "json extra key",
        lambda spark, home: land(
            home, ['{"id": 1, "label": "a", "x": 1, "y": 2, "z": 3}'], "p.json"
        ),
        "json",
        r"'z' not in the spec",
    ),
    (
        "parquet type change",
        lambda spark, home: _parquet(
            spark, home, "id long, label string, x string, y double", [(1, "a", "0.5", 1.0)]
        ),
        "parquet",
        r"column 'x' is string, the spec says double",
    ),
    ("truncated parquet", _truncated_parquet, "parquet", r"cannot read .*\.parquet"),
]


@pytest.mark.parametrize(
    ("landing", "fmt", "message"), [c[1:] for c in FAILS], ids=[c[0] for c in FAILS]
)
def test_unusable_input_fails_with_one_clear_line_and_keeps_the_old_raw(
    spark, home, landing, fmt, message
):
    spec = toy_spec(source={"format": fmt, "options": {"header": "true"} if fmt == "csv" else {}})
    ctx = context(spec, DAY)
    _previous_good_day(spark, home, ctx)
    folder = home / "lake" / "landing" / "toy" / f"ds={DAY}"
    for old in folder.iterdir():
        old.unlink() if old.is_file() else None
    landing(spark, home)
    with pytest.raises(RetrainError, match=message) as failure:
        ingest.run(spark, ctx)
    assert "\n" not in str(failure.value) and "Py4J" not in str(failure.value)
    assert raw_ids(spark, ctx) == [1, 2]  # the previous run's partition, untouched
    staging = [p.name for p in Path(ctx.paths.raw(ctx.run_date)).parent.iterdir()]
    assert staging == [f"ds={DAY}"]


def test_unlabelled_rows_are_kept_counted_and_not_bad_rows(spark, home):
    # 2 of 6 unlabelled (a third) with max_bad_fraction 0: the day is not "broken".
    land(home, [HEADER, *GOOD, "5,,1.0,1.0", "6,,2.0,2.0"])
    ctx = context(toy_spec(max_bad_fraction=0.0), DAY)
    result = ingest.run(spark, ctx)
    counts = (result["rows_valid"], result["rows_unlabelled"], result["rows_quarantined"])
    assert counts == (6, 2, 0)
    raw = spark.read.parquet(ctx.paths.raw(ctx.run_date))
    assert sorted(r.id for r in raw.where("label IS NULL").collect()) == [5, 6]
    with pytest.raises(RetrainError, match=r"2 of 6 usable rows .* have no label"):
        ingest.run(spark, context(toy_spec(max_unlabelled_fraction=0.3), DAY))


def _previous_good_day(spark, home: Path, ctx) -> None:
    """An earlier successful ingest of the same date, which a failed rerun must not damage."""
    good = toy_spec()
    land(home, [HEADER, *GOOD[:2]])
    ingest.run(spark, context(good, DAY))
    assert raw_ids(spark, ctx) == [1, 2]


def test_missing_partition_is_a_clear_error(spark, home):
    with pytest.raises(RetrainError, match="no landing partition for toy on 2026-01-09"):
        ingest.run(spark, context(toy_spec(), "2026-01-09"))
    (home / "lake" / "landing" / "toy" / "ds=2026-01-09").mkdir(parents=True)
    with pytest.raises(RetrainError, match=r"is empty \(no data files\)"):
        ingest.run(spark, context(toy_spec(), "2026-01-09"))


def test_rerun_overwrites_its_own_partition_only(spark, home):
    land(home, [HEADER, *GOOD])
    land(home, [HEADER, *GOOD[:2]], day="2026-01-03")
    spec = toy_spec()
    for day in (DAY, "2026-01-03", "2026-01-03"):
        ingest.run(spark, context(spec, day))
    assert raw_ids(spark, context(spec, DAY)) == [1, 2, 3, 4]
    assert raw_ids(spark, context(spec, "2026-01-03")) == [1, 2]
