"""`retrain new-dataset`'s guesses on inline samples (the CLI itself runs in the demos test)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from retrain.spec import SpecError, parse_spec
from retrain.tools import cli, cli_datasets
from retrain.tools.scaffold import scaffold_spec, spec_yaml

SAMPLE = Path("sample.csv")
SOURCE = {"format": "csv", "options": {"header": "true"}}


def shapes(spark, rows: int = 60):
    data = [
        (i, date(2026, 1, 1 + i % 9), ["ring", "dot"][i % 2],
         " ".join(str(i % 7 + k) for k in range(4)), f"user{i}@example.com", f"SKU-{i:05d}")
        for i in range(rows)
    ]  # fmt: skip
    return spark.createDataFrame(
        data, "item_id int, made_on date, shape string, pixels string, email string, sku string"
    )


def test_every_column_gets_a_role_and_the_reason_is_written(spark):
    data, why = scaffold_spec("shapes", SAMPLE, shapes(spark), source=SOURCE)
    assert data["id_column"] == "item_id"
    assert data["schema"]["item_id"] == "long"  # ids outgrow int
    assert data["label_column"] == "shape"  # not the date, although it has few values too
    assert data["feature_columns"] == ["pixels"]
    assert data["feature_types"] == {"pixels": "vector"}
    assert data["sensitive"] == {"email": "encrypt"}
    assert why["made_on"].startswith("not a feature: a date")
    assert why["sku"].startswith("not a feature:") and "looks like a code" in why["sku"]
    spec = parse_spec(data, "shapes.yaml")  # a valid spec as it stands
    assert spec.feature_type("pixels") == "vector"
    text = spec_yaml(data, why)
    assert "  sku: string" in text and "# not a feature" in text


def test_chosen_label_and_id_win_and_bad_samples_are_named(spark):
    frame = shapes(spark)
    data, _ = scaffold_spec(
        "shapes", SAMPLE, frame, source=SOURCE, label="made_on", id_column="sku"
    )
    assert (data["label_column"], data["id_column"]) == ("made_on", "sku")
    with pytest.raises(SpecError, match="--label 'colour' is not a column"):
        scaffold_spec("shapes", SAMPLE, frame, source=SOURCE, label="colour")
    with pytest.raises(SpecError, match="must match"):
        scaffold_spec("Shapes!", SAMPLE, frame, source=SOURCE)
    no_id = spark.createDataFrame(
        [(i % 3, "a" if i % 2 else "b") for i in range(30)], "x int, y string"
    )
    with pytest.raises(SpecError, match="no column identifies a row"):
        scaffold_spec("plain", SAMPLE, no_id, source=SOURCE)
    with pytest.raises(SpecError, match="no rows"):
        scaffold_spec("empty", SAMPLE, no_id.limit(0), source=SOURCE)


def test_a_unique_id_is_found_even_where_the_approximate_count_reads_low(spark):
    """The patient ids of one day of scikit-learn's breast cancer set, as tried (284 of 569
    shuffled): Spark's approximate distinct count reads them low, which once hid the id."""
    import pandas as pd
    from pyspark.sql import functions as F

    ids = pd.Series(range(100_000, 100_569)).sample(frac=1, random_state=0)[:284]
    frame = spark.createDataFrame(
        [(int(pid), float(pid % 17), "ab"[pid % 2]) for pid in ids],
        "patient_id long, mean_radius double, diagnosis string",
    )
    approximate = frame.agg(F.approx_count_distinct("patient_id")).first()[0]
    assert approximate < 0.97 * 284  # the case: read too low to pass for unique
    data, why = scaffold_spec("bc", SAMPLE, frame, source=SOURCE)
    assert data["id_column"] == "patient_id" and why["patient_id"].startswith("id")
    duplicated = frame.union(frame.limit(1))  # not unique: never the id
    with pytest.raises(SpecError, match="no column identifies a row"):
        scaffold_spec("bc", SAMPLE, duplicated.drop("diagnosis"), source=SOURCE)


def test_a_landing_folder_is_sampled_across_days_and_read_as_it_is_written(spark, home):
    from retrain.paths import lake_root
    from retrain.tools.scaffold import TRUSTED_ROWS, scaffold
    from tests.feeds import write_trips

    root = Path(lake_root()) / "landing" / "trips"
    days = write_trips(root, date(2025, 6, 1), 5, rows=40, gaps=(2,))
    with open(root / f"ds={days[-1]}" / "trips.csv", "a") as broken:
        broken.write("999,A,1.0\n")  # three fields of six
    spec_file = home / "specs" / "trips.yaml"
    result = scaffold(spark, "trips", root, spec_file)
    assert result.sample.sampled_days == days  # 4 landed days, all sampled (the gap is none)
    assert result.rows == 4 * 40 + 1  # records (the short one too), not lines: notes hold breaks
    assert result.data["source"]["options"]["multiLine"] == "true"
    lines = sum(1 for _ in open(root / f"ds={days[-1]}" / "trips.csv"))
    assert result.problems == [
        f"trips.csv: 1 record(s) do not have the header's 6 fields (the first ends on line "
        f"{lines}); ingest will quarantine them",
        "drift thresholds left at the defaults: cannot calibrate trips: no day of the 4 has "
        "drift.min_reference_days=3 earlier days in its 7-day window and drift.min_rows=100 rows",
    ]
    assert result.rows < TRUSTED_ROWS  # the CLI warns
    assert result.data["start_date"] == "2025-06-01"
    assert result.data["source"]["empty_days"] == "skip"  # the 3rd never landed
    assert result.data["source"]["landing_path"] == "landing/trips"
    assert (result.data["id_column"], result.data["label_column"]) == ("trip_id", "outcome")
    assert result.data["feature_types"]["note"] == "text"
    assert "4 of 4 days, 2025-06-01 .. 2025-06-05" in result.data["description"]
    raw = result.suites["raw"]["expectations"]
    (band,) = [e for e in raw if e["type"] == "expect_table_row_count_to_be_between"]
    assert (band["kwargs"]["min_value"], band["kwargs"]["max_value"]) == (20, 80)
    assert result.calibration is None  # 40 rows a day are too few to measure drift on
    assert "psi_by_column" not in result.spec_text()


def test_a_wide_feed_of_many_days_scaffolds_with_the_default_driver_memory(spark, home):
    """14 days x 40 numeric columns: the row rules' predicates over every column made Catalyst's
    constraint inference outgrow a 1 GB driver heap while planning (scikit-learn's breast
    cancer set, 31 columns over 4 days, did). The session here has the default heap."""
    import random

    from retrain.paths import lake_root
    from retrain.tools.scaffold import scaffold

    root = Path(lake_root()) / "landing" / "wide"
    names = [f"f{i}" for i in range(40)]
    shuffle = random.Random(0)
    for day in range(14):
        folder = root / f"ds=2026-02-{day + 1:02d}"
        folder.mkdir(parents=True)
        lines = [",".join(["id", "label", *names])] + [
            ",".join([str(day * 100 + i), "ab"[i % 2],
                      *(f"{shuffle.gauss(i % 2, 1):.3f}" for _ in names)])
            for i in range(40)
        ]  # fmt: skip
        (folder / "part-0.csv").write_text("\n".join(lines) + "\n")
    result = scaffold(spark, "wide", root, home / "specs" / "wide.yaml")
    assert (result.data["id_column"], result.data["label_column"]) == ("id", "label")
    assert result.data["feature_columns"] == names and result.rows > 0
    raw = result.suites["raw"]["expectations"]
    assert sum(e["type"] == "expect_column_values_to_be_between" for e in raw) == 40


def test_new_dataset_takes_a_path_or_a_file_uri_and_says_why_not_another_uri(capsys):
    """A lake given as RETRAIN_LAKE=file:///... makes users pass its landing folder as a URI."""
    assert cli_datasets.local_source("file:///srv/lake/landing/trips") == Path(
        "/srv/lake/landing/trips"
    )
    assert cli_datasets.local_source("landing/trips") == Path("landing/trips")
    with pytest.raises(SystemExit) as refused:
        cli.main(["new-dataset", "trips", "--from", "s3a://bucket/lake/landing/trips"])
    assert refused.value.code == 2
    assert "new-dataset profiles files on this machine" in capsys.readouterr().err
