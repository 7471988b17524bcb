"""The lake's small objects and the run record on file systems other than the local disk.

fsspec's in-memory file system stands in for an object store: it has no rename and no lock,
which is what the record's design must do without.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest

from retrain.lake import landed_days, list_folders, list_objects, read_object, write_object
from retrain.runs import list_runs, read_run, run_folder, update_run

DAY = date(2026, 3, 1)


@pytest.fixture(params=["memory", "file"])
def lake(request, tmp_path, monkeypatch) -> str:
    root = "memory://lake" if request.param == "memory" else (tmp_path / "lake").as_uri()
    monkeypatch.setenv("RETRAIN_LAKE", root)
    yield root
    if request.param == "memory":
        import fsspec

        fsspec.filesystem("memory").rm("/lake", recursive=True)


def test_objects_are_written_whole_listed_and_read_back(lake):
    write_object(f"{lake}/a/one.json", '{"x": 1}')
    write_object(f"{lake}/a/one.json", '{"x": 2}')  # replaced whole
    write_object(f"{lake}/a/b/two.json", "2")
    assert read_object(f"{lake}/a/one.json") == '{"x": 2}'
    assert read_object(f"{lake}/a/missing.json") is None
    assert [u.rsplit("/", 1)[-1] for u in list_objects(f"{lake}/a")] == ["one.json"]
    assert list_folders(f"{lake}/a") == ["b"]
    assert list_objects(f"{lake}/nowhere") == [] and list_folders(f"{lake}/nowhere") == []


def test_landed_days_are_the_ds_folders_by_day(lake):
    for name in ("ds=2026-03-02", "ds=2026-03-01", "ds=bad", "other"):
        write_object(f"{lake}/landing/{name}/part-0.csv", "id\n1\n")
    days = landed_days(f"{lake}/landing")
    assert list(days) == [date(2026, 3, 1), date(2026, 3, 2)]
    assert days[date(2026, 3, 1)] == f"{lake}/landing/ds=2026-03-01"


def test_the_record_merges_updates_and_loses_none_of_many_writers(lake):
    update_run("toy", DAY, state="running", ingest={"rows": 1})
    update_run("toy", DAY, ingest={"rows": 2})  # a later section replaces the earlier one

    def notify(n: int) -> None:
        update_run("toy", DAY, **{f"writer_{n}": {"n": n}})

    with ThreadPoolExecutor(8) as pool:  # writers at once, as a driver and a notifier would be
        list(pool.map(notify, range(16)))
    update_run("toy", DAY, state="success")
    record = read_run("toy", DAY)
    assert record["ingest"] == {"rows": 2} and record["state"] == "success"
    assert all(record[f"writer_{n}"] == {"n": n} for n in range(16))
    assert record["dataset"] == "toy" and record["run_date"] == "2026-03-01"
    updates = list_objects(f"{run_folder('toy', DAY)}/record")
    assert len(updates) == 19  # each update its own object, none rewritten
    assert json.loads(read_object(updates[0]))["state"] == "running"


def test_runs_are_listed_newest_first(lake):
    for day in (date(2026, 3, 1), date(2026, 3, 3), date(2026, 3, 2)):
        update_run("toy", day, state="success")
    assert [r["run_date"] for r in list_runs("toy")] == ["2026-03-03", "2026-03-02", "2026-03-01"]
    assert read_run("toy", date(2026, 1, 1)) == {}
