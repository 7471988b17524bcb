"""Faults and hostile input that must never move the champion to a worse or older model.

Each case runs the real stage code (`evaluate.run`, `publish.run`) on a prepared lake with the
real embedded MLflow registry, or the real suite loader and metrics, and asserts the champion,
the records and the messages.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import socket
from datetime import date
from pathlib import Path

import mlflow
import pytest
import yaml
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StringIndexer
from pyspark.ml.linalg import Vectors

from jobs import evaluate, ingest, publish
from retrain import keys, lake
from retrain.airflow import claims
from retrain.errors import EXIT_UNAVAILABLE, DataRejected, RetrainError
from retrain.lake import (
    COMMIT_ENV,
    commits_by_pointer,
    is_complete,
    is_validated,
    read_partition,
    resolve,
    save_model,
    set_validated,
    write_object,
    write_partition,
)
from retrain.paths import lake_root
from retrain.runs import read_run, update_run
from retrain.spark import registry
from retrain.spark.metrics import classification_metrics
from retrain.spark.metrics import prepare as prepare_scored
from retrain.spark.validation import load_suite, run_suite
from retrain.spec import SpecError
from retrain.tools import cli, cli_runs, local_runs
from tests.helpers import (
    EARLIER,
    LATER,
    TOY,
    TOY_SUITES,
    context,
    evaluate_and_publish,
    free_port,
    toy_spec,
)


def champion_day(spec) -> str:
    return registry.champion_version(spec.registered_model_name).tags["run_date"]


def test_an_unreachable_registry_fails_the_stage_instead_of_publishing(
    spark, toy_lake, monkeypatch, capsys
):
    evaluate_and_publish(spark, toy_lake, LATER)  # a champion exists
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # restored after the test
        monkeypatch.setenv(variable, dead)
    registry.configure()
    with pytest.raises(registry.RegistryUnavailable, match="MLflow could not tell the champion"):
        evaluate.run(spark, context(toy_lake, EARLIER.isoformat()))
    with pytest.raises(registry.RegistryUnavailable):
        registry.load_champion(toy_lake.registered_model_name)  # warm start fails, not cold
    with pytest.raises(registry.RegistryUnavailable):
        registry.version_history(toy_lake.registered_model_name)
    assert cli.main(["status", "toy"]) == 0
    out = capsys.readouterr().out
    assert "toy: champion unknown: MLflow could not tell the champion" in out
    assert "no champion published yet" not in out
    assert cli.main(["verify", "toy"]) == EXIT_UNAVAILABLE  # one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("retrain: MLflow could not tell the versions of retrain_toy")
    assert "Traceback" not in err and len(err.splitlines()) == 1
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(variable)
    registry.configure()
    assert champion_day(toy_lake) == LATER.isoformat()


def test_no_model_yet_is_mlflows_own_answer(home):
    registry.configure()
    assert registry.champion_version("retrain_never_published") is None
    assert registry.load_champion("retrain_never_published") is None


def test_an_older_date_never_replaces_a_newer_champion(spark, toy_lake):
    evaluate_and_publish(spark, toy_lake, LATER)
    off = toy_spec(gate={"mode": "off", "min_test_rows": 1})  # the gate says publish
    record = evaluate_and_publish(spark, off, EARLIER)
    assert record["evaluate"]["decision"] == "publish"
    assert record["publish"]["champion_moved"] is False
    assert (
        "trained on data up to 2026-03-02, newer than this run's 2026-03-01"
        in (record["publish"]["held_back"])
    )
    assert champion_day(toy_lake) == LATER.isoformat()
    # a deliberate rollback says so
    rollback = toy_spec(gate={"mode": "off", "min_test_rows": 1, "allow_older_champion": True})
    assert evaluate_and_publish(spark, rollback, EARLIER)["publish"]["champion_moved"] is True
    assert champion_day(toy_lake) == EARLIER.isoformat()


def test_the_champion_moves_only_if_evaluate_compared_with_it(spark, toy_lake):
    evaluate_and_publish(spark, toy_lake, EARLIER)
    off = toy_spec(gate={"mode": "off", "min_test_rows": 1})
    ctx = context(off, LATER.isoformat())
    update_run(off.name, LATER, evaluate=evaluate.run(spark, ctx))  # compared with version 1
    # meanwhile the champion moves (here: a person removes it in the MLflow UI)
    name = off.registered_model_name
    mlflow.MlflowClient().delete_registered_model_alias(name, registry.CHAMPION)
    with pytest.raises(DataRejected, match="not version 1 that evaluate compared"):
        publish.run(spark, ctx)
    assert registry.champion_version(name) is None  # untouched by the refused publish


def test_publish_can_succeed_on_retry_after_its_own_failure(spark, toy_lake):
    ctx = context(toy_lake, LATER.isoformat())
    update_run(toy_lake.name, LATER, evaluate=evaluate.run(spark, ctx))
    update_run(toy_lake.name, LATER, state="failed", failed_stage="publish", error="MLflow down")
    section = publish.run(spark, ctx)
    assert section["champion_moved"] is True
    # an upstream failure still stops it
    update_run(toy_lake.name, LATER, failed_stage="evaluate", error="boom")
    with pytest.raises(Exception, match="lacks a successful evaluate stage"):
        publish.run(spark, ctx)


@pytest.mark.parametrize(
    "label", ["ends with \\", "{b}", "x', java_method('java.lang.System', 'getenv', 'PATH'), '"]
)
def test_class_names_reach_spark_as_data(spark, label):
    labels = sorted([label, "plain"])
    rows = [(0, label, label, [0.9, 0.1]), (1, "plain", "plain", [0.2, 0.8])]
    if labels[0] != label:
        rows = [(i, y, p, list(reversed(q))) for i, y, p, q in rows]
    frame = spark.createDataFrame(
        [(i, y, p, Vectors.dense(q)) for i, y, p, q in rows],
        ["id", "label", "predicted_label", "probability"],
    )
    metrics = classification_metrics(
        spark, prepare_scored(frame, "id", "label", "predicted_label"), labels
    )
    assert metrics["accuracy"] == 1.0
    assert metrics["log_loss"] == pytest.approx(-math.log(0.9 * 0.8) / 2)


def write_suite(home, expectations: list[dict]) -> None:
    folder = home.parent / "specs" / "expectations" / "toy"
    suite = {"name": "toy_raw", "expectations": TOY_SUITES["raw"]["expectations"] + expectations}
    (folder / "raw.json").write_text(json.dumps(suite))


RAW_SQL = "java_method('java.lang.System', 'setProperty', 'retrain.pwned', 'yes') IS NULL"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"row_condition": RAW_SQL, "condition_parser": "spark"}, "has condition_parser 'spark'"),
        ({"row_condition": RAW_SQL}, "has a row_condition without a condition_parser"),
        ({"row_condition": RAW_SQL, "condition_parser": "pandas"}, "condition_parser 'pandas'"),
        ({"row_condition": {"type": "pass_through", "pass_through_filter": RAW_SQL},
          "condition_parser": "great_expectations"}, "is a dict, not text"),
        ({"row_condition": f'col("x") > 1 OR {RAW_SQL}', "condition_parser": "great_expectations"},
         "which GX's 'great_expectations' parser does not read (from character 13)"),
    ],
)  # fmt: skip
def test_a_suite_cannot_run_raw_spark_sql_whatever_the_spelling(home, kwargs, problem):
    """In GX 1.24 each of these reaches Spark as `data.filter(text)` (the last after GX dropped
    the text past `col("x") > 1`): refused when the suite loads, naming file and expectation."""
    write_suite(
        home,
        [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "x", **kwargs},
                "meta": {"severity": "warning"},
            }
        ],
    )
    where = "raw.json: expectation 5 (expect_column_values_to_not_be_null) "
    with pytest.raises(SpecError, match=re.escape(where) + ".*" + re.escape(problem)):
        load_suite("toy", "raw")


def test_a_suite_cannot_hand_spark_a_query(home):
    """GX runs a query expectation's text with `spark.sql` (SQL on files reads any file)."""
    query = "SELECT * FROM text.`file:///etc/passwd`"
    write_suite(home, [{"type": "unexpected_rows_expectation",
                        "kwargs": {"unexpected_rows_query": query}}])  # fmt: skip
    where = "raw.json: expectation 5 (unexpected_rows_expectation) runs SQL from the suite"
    with pytest.raises(SpecError, match=re.escape(where)):
        load_suite("toy", "raw")
    write_suite(home, ["expect_column_values_to_not_be_null"])
    with pytest.raises(SpecError, match="expectation 5 is not an object"):
        load_suite("toy", "raw")


def test_conditions_in_gxs_own_grammar_are_applied_by_gx(spark, home, tmp_path):
    """A warning with a condition GX parses itself checks only the rows it selects."""
    write_suite(home, [{
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "x", "max_value": 5, "row_condition": 'col("label") == "a"',
                   "condition_parser": "great_expectations"},
        "meta": {"severity": "warning"},
    }])  # fmt: skip
    suite = load_suite("toy", "raw")
    frame = spark.createDataFrame([(1, "a", 2.0, 0.0), (2, "b", 9.0, 0.0)], "id long, "
                                  "label string, x double, y double")  # fmt: skip
    result, _ = run_suite(frame, suite, tmp_path / "gx", "conditional")
    outcome = {r["expectation_config"]["type"]: r["success"] for r in result["results"]}
    assert outcome["expect_column_values_to_be_between"] is True  # x = 9 is a "b" row


def test_a_conditional_critical_row_rule_is_refused(home):
    conditional = {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "x", "row_condition": 'col("label") == "a"',
                   "condition_parser": "great_expectations"},
    }  # fmt: skip
    write_suite(home, [conditional])
    with pytest.raises(SpecError, match="critical row rule with a row_condition"):
        load_suite("toy", "raw")
    write_suite(home, [conditional | {"meta": {"severity": "warning"}}])
    assert len(load_suite("toy", "raw")["expectations"]) == 6  # GX checks it with its condition


def test_an_interrupted_swap_is_finished_or_undone(spark, home):
    partition = f"{lake_root()}/raw/toy/ds=2026-03-01"
    fs_root = Path(partition).parent

    def write(rows: int) -> None:
        write_partition(spark.range(rows), partition)

    def content() -> int:
        assert is_complete(spark, partition)
        return spark.read.parquet(partition).count()

    write(3)
    # killed after moving the old partition aside, with the new one fully written
    (fs_root / ".ds=2026-03-01.staging-b").mkdir()
    spark.range(5).write.mode("overwrite").parquet(str(fs_root / ".ds=2026-03-01.staging-b"))
    Path(partition).rename(fs_root / ".ds=2026-03-01.old-a")
    assert content() == 5  # finished: the complete new partition is swapped in
    assert not any(p.name.startswith(".ds=2026-03-01.old") for p in fs_root.iterdir())
    # killed after moving the old one aside, the new one not yet complete: undone
    Path(partition).rename(fs_root / ".ds=2026-03-01.old-c")
    (fs_root / ".ds=2026-03-01.staging-d").mkdir()  # no success marker
    assert content() == 5
    write(7)  # the next write works as usual
    assert content() == 7


def test_a_model_is_never_half_saved(spark, home):
    path = f"{lake_root()}/candidates/toy/ds=2026-03-01"
    frame = spark.createDataFrame([("a",), ("b",)], ["label"])
    model = Pipeline(stages=[StringIndexer(inputCol="label", outputCol="i")]).fit(frame)
    save_model(spark, model, path)
    save_model(spark, model, path)  # replaced whole, never overwritten in place
    assert is_complete(spark, path)
    assert PipelineModel.load(path).stages[0].labels == ["a", "b"]
    assert [p.name for p in Path(path).parent.iterdir()] == ["ds=2026-03-01"]


@pytest.mark.parametrize(
    ("uri", "by_pointer"),
    [("s3a://bucket/lake/raw/toy/ds=2026-03-01", True), ("gs://bucket/lake", True),
     ("abfss://box@account.dfs.core.windows.net/lake", True), ("hdfs://namenode/lake", False),
     ("file:///srv/lake", False), ("/srv/lake", False)],
)  # fmt: skip
def test_object_stores_commit_partitions_by_pointer_file_systems_by_renames(
    uri, by_pointer, monkeypatch
):
    monkeypatch.delenv(COMMIT_ENV, raising=False)
    assert commits_by_pointer(uri) is by_pointer
    monkeypatch.setenv(COMMIT_ENV, "rename")  # the user knows their store renames atomically
    assert not commits_by_pointer(uri)
    monkeypatch.setenv(COMMIT_ENV, "pointer")
    assert commits_by_pointer(uri)
    monkeypatch.setenv(COMMIT_ENV, "atomic")
    with pytest.raises(RetrainError, match="RETRAIN_PARTITION_COMMIT='atomic': use rename or"):
        commits_by_pointer(uri)


def test_a_pointer_commit_is_whole_even_when_its_writer_dies(spark, home, monkeypatch):
    """What an object store gets (here on the local lake): no rename anywhere."""
    monkeypatch.setenv(COMMIT_ENV, "pointer")
    partition = f"{lake_root()}/raw/toy/ds=2026-03-01"
    write_partition(spark.range(3), partition)
    set_validated(spark, partition, True)
    versions = Path(lake_root()) / "raw" / "toy" / "_versions" / "ds=2026-03-01"
    first = resolve(partition)
    assert first.startswith(f"{versions}/") and is_validated(spark, partition)

    def killed(folder: str) -> None:  # dies after writing its version, before the pointer
        spark.range(5).write.parquet(folder)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lake._commit(spark, partition, killed)
    assert resolve(partition) == first and read_partition(spark, partition).count() == 3
    assert is_complete(spark, partition) and is_validated(spark, partition)
    assert len(list(versions.iterdir())) == 2  # the orphan, named by no pointer

    write_partition(spark.range(7), partition)
    assert read_partition(spark, partition).count() == 7
    assert is_complete(spark, partition)
    assert not is_validated(spark, partition)  # a new version must earn the mark again
    assert [p.name for p in Path(partition).iterdir()] == ["_CURRENT"]
    assert [str(p) for p in versions.iterdir()] == [resolve(partition)]  # the orphan is gone
    assert sorted(p.name for p in Path(partition).parent.iterdir()) == [
        "_versions",
        "ds=2026-03-01",
    ]

    write_object(f"{partition}/_CURRENT", "../../../keys\n")
    with pytest.raises(RetrainError, match="_CURRENT does not name a version folder"):
        read_partition(spark, partition)


def test_a_model_committed_by_pointer_loads_from_its_version(spark, home, monkeypatch):
    monkeypatch.setenv(COMMIT_ENV, "pointer")
    path = f"{lake_root()}/candidates/toy/ds=2026-03-01"
    frame = spark.createDataFrame([("a",), ("b",)], ["label"])
    model = Pipeline(stages=[StringIndexer(inputCol="label", outputCol="i")]).fit(frame)
    save_model(spark, model, path)
    save_model(spark, model, path)
    assert is_complete(spark, path)
    assert PipelineModel.load(resolve(path)).stages[0].labels == ["a", "b"]
    assert len(list((Path(path).parent / "_versions" / "ds=2026-03-01").iterdir())) == 1


def test_a_process_killed_while_making_the_key_leaves_no_empty_key(home, monkeypatch):
    monkeypatch.delenv("RETRAIN_KEY", raising=False)

    def killed(*_: object) -> None:
        raise KeyboardInterrupt  # the process dies before the key is linked into place

    with monkeypatch.context() as patched:
        patched.setattr(os, "link", killed)
        with pytest.raises(KeyboardInterrupt):
            keys.secret()
    assert not keys.key_file().exists()
    assert len(keys.secret()) == 64
    assert list(keys.key_file().parent.iterdir()) == [keys.key_file()]


def test_latest_takes_only_partitions_named_by_a_date(home):
    (home.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    landing = Path(lake_root()) / "landing" / "toy"
    for name in ("ds=2026-03-01", "ds=20261120", "ds=2026-3-2"):
        (landing / name).mkdir(parents=True)
    assert cli_runs.landing_dates(toy_spec()) == [date(2026, 3, 1)]


def test_a_symlink_in_landing_is_refused_by_name(spark, home):
    (home.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    keys.secret()  # the generated key a link could copy into the lake
    day = Path(lake_root()) / "landing" / "toy" / "ds=2026-03-01"
    day.mkdir(parents=True)
    (day / "part-0.csv").write_text("id,label,x,y\n1,a,1.0,2.0\n")
    (day / "part-1.csv").symlink_to(keys.key_file())
    with pytest.raises(DataRejected, match=r"landing file part-1\.csv in .* is a symbolic link"):
        ingest.run(spark, context(toy_spec(), "2026-03-01"))
    assert not (Path(lake_root()) / "raw" / "toy").exists()


def test_a_linked_dataset_root_is_refused_by_name(spark, home, tmp_path):
    (home.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    outside = tmp_path / "outside" / "ds=2026-03-01"  # a folder the lake does not own
    outside.mkdir(parents=True)
    (outside / "part-0.csv").write_text("id,label,x,y\n1,a,1.0,2.0\n")
    root = Path(lake_root()) / "landing" / "toy"
    root.parent.mkdir(parents=True)
    root.symlink_to(outside.parent)
    with pytest.raises(DataRejected, match=rf"landing folder {root} is a symbolic link"):
        ingest.run(spark, context(toy_spec(), "2026-03-01"))
    assert not (Path(lake_root()) / "raw" / "toy").exists()


def test_a_dataset_is_claimed_by_one_active_run_at_a_time(home):
    states = {"scheduled__a": "running", "manual__b": "queued"}

    def state_of(dag_id: str, run_id: str) -> str | None:
        return states.get(run_id)

    run_a = {"dag_id": "retrain_toy", "run_id": "scheduled__a", "run_date": "2026-03-01"}
    run_b = {"dag_id": "retrain_toy", "run_id": "manual__b", "run_date": "2026-03-02"}
    assert claims.take("toy", run_a, state_of) is None
    assert claims.take("toy", run_a, state_of) is None  # a later stage of the same run
    assert claims.take("toy", run_b, state_of)["run_id"] == "scheduled__a"  # b waits
    assert claims.read_claim("toy")["run_id"] == "scheduled__a"
    assert "toy is being processed by retrain_toy run scheduled__a (date 2026-03-01" in (
        claims.describe("toy", claims.read_claim("toy"))
    )
    states["scheduled__a"] = "failed"  # the holder ended: its claim is free
    assert claims.take("toy", run_b, state_of) is None
    assert claims.take("toy", run_a, state_of)["run_id"] == "manual__b"  # a cleared stage of a
    del states["manual__b"]  # a run deleted from Airflow holds nothing
    assert claims.take("toy", run_a, state_of) is None


def test_the_claim_of_a_killed_retrain_run_is_taken_over(home, monkeypatch):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    monkeypatch.setenv(claims.CLI_PID_ENV, str(dead.pid))
    killed = {"dag_id": "retrain_toy", "run_id": "manual__killed", "run_date": "2026-03-01"}
    assert claims.take("toy", killed, lambda *_: "running") is None
    assert claims.read_claim("toy")["cli_pid"] == dead.pid
    monkeypatch.setenv(claims.CLI_PID_ENV, str(os.getpid()))
    run = {"dag_id": "retrain_toy", "run_id": "manual__next", "run_date": "2026-03-01"}
    # Airflow still says 'running' (nobody marked it), but its process is gone.
    assert claims.take("toy", run, lambda *_: "running") is None
    other = {"dag_id": "retrain_toy", "run_id": "manual__other", "run_date": "2026-03-02"}
    assert claims.take("toy", other, lambda *_: "running")["run_id"] == "manual__next"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "is empty"),
        ("{not json", "is not JSON"),
        ('{"dag_id": "retrain_toy", "run_date": "2026-03-01", "host": "h", '
         '"claimed_at": "2026-03-02T00:00:00+00:00"}', "lacks run_id as text"),
        ('{"dag_id": "retrain_toy", "run_id": "manual__a", "run_date": "2026-03-01", '
         '"host": "h", "claimed_at": "2026-03-02T00:00:00+00:00", "cli_pid": "123"}',
         "has a cli_pid that is not a process id"),
        ("\udcff\udcfe", "is not JSON"),  # bytes that are not UTF-8 at all
    ],
)  # fmt: skip
def test_a_garbage_claim_is_an_error_naming_the_file_its_content_and_the_fix(
    home, content, problem
):
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from retrain.airflow.operators import _take_claim

    path = claims.claim_path("toy")
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    content = path.read_bytes().decode("utf-8", errors="replace")  # as the error shows it
    run = {"dag_id": "retrain_toy", "run_id": "manual__b", "run_date": "2026-03-02"}
    with pytest.raises(claims.ClaimError) as caught:
        claims.take("toy", run, lambda *_: "running")
    message = str(caught.value)
    assert f"the claim file {path} {problem}" in message
    assert repr(content) in message and f"rm '{path}'" in message
    assert path.read_bytes().decode(errors="replace") == content  # nothing taken over
    # In a DAG, the claim task fails at once (no retry) with the same words.
    context = {"dag_run": SimpleNamespace(dag_id="retrain_toy", run_id="manual__b"), "ti": None}
    with pytest.raises(AirflowFailException, match=re.escape(f"the claim file {path}")):
        _take_claim("toy", context, "2026-03-02")


def test_concurrent_claims_have_one_winner(home):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def claim(worker: int) -> None:
        run = {"dag_id": "retrain_toy", "run_id": f"run_{worker}", "run_date": "2026-03-01"}
        holder = claims.take("toy", run, lambda *_: "running")
        results.put((worker, holder and holder["run_id"]))

    workers = [context.Process(target=claim, args=(w,)) for w in range(6)]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
    outcome = dict(results.get(timeout=5) for _ in workers)
    winners = [w for w, holder in outcome.items() if holder is None]
    assert len(winners) == 1
    assert set(outcome.values()) == {None, f"run_{winners[0]}"}
    assert claims.read_claim("toy")["run_id"] == f"run_{winners[0]}"


def test_concurrent_record_updates_lose_nothing(home):
    import multiprocessing

    def write(worker: int) -> None:
        for i in range(40):
            update_run("toy", EARLIER, **{f"w{worker}_{i}": i})

    workers = [multiprocessing.get_context("fork").Process(target=write, args=(w,))
               for w in range(3)]  # fmt: skip
    for process in workers:
        process.start()
    for process in workers:
        process.join()
    record = read_run("toy", EARLIER)
    assert sum(key.startswith("w") for key in record) == 120


@pytest.mark.parametrize("command", ["serve-airflow", "mlflow-ui"])
def test_a_busy_port_is_refused_before_any_server_starts(home, capsys, command):
    with socket.socket() as other:  # another server already listens there
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert cli.main([command, "--port", str(port)]) == EXIT_UNAVAILABLE
    assert f"port {port} is in use; stop that process or use --port" in capsys.readouterr().err
    assert not (home / "airflow").exists()


def test_every_landing_entry_is_read_or_reported_by_name(spark, home):
    (home.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    day = Path(lake_root()) / "landing" / "toy" / "ds=2026-03-01"
    (day / "extra").mkdir(parents=True)
    header = "id,label,x,y\n"
    (day / "part-0.csv").write_text("\ufeff" + header + "1,a,1.0,2.0\n2,b,2.0,3.0\n")  # a BOM
    with gzip.open(day / "part-1.csv.gz", "wt") as packed:
        packed.write(header + "3,a,3.0,4.0\n4,b,4.0,5.0\n")
    (day / "empty.csv").write_text("")
    (day / "_late.csv").write_text(header + "5,a,5.0,6.0\n")
    (day / "extra" / "part-9.csv").write_text(header + "6,a,6.0,7.0\n")
    section = ingest.run(spark, context(toy_spec(), "2026-03-01"))
    assert (section["rows_read"], section["rows_quarantined"], section["files"]) == (4, 0, 2)
    assert section["skipped_files"] == {
        "_late.csv": "not read: Spark skips names that start with _ or .",
        "empty.csv": "empty (0 bytes)",
        "extra": "not read: a sub-folder (put the day's files in the ds= folder)",
    }


def test_bytes_that_are_not_text_are_quarantined_not_kept(spark, home):
    (home.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    day = Path(lake_root()) / "landing" / "toy" / "ds=2026-03-01"
    day.mkdir(parents=True)
    lines = b"id,label,x,y\n1,a,1.0,2.0\n2,b,2.0,3.0\n3,caf\xe9,3.0,4.0\n"  # Latin-1, not UTF-8
    (day / "part-0.csv").write_bytes(lines)
    section = ingest.run(spark, context(toy_spec(), "2026-03-01"))
    assert section["quarantine_reasons"] == {"label is not valid UTF-8 text": 1}
    assert section["rows_valid"] == 2


def test_cli_runs_take_turns_for_the_spark_slots(home, monkeypatch):
    import threading

    monkeypatch.setenv("RETRAIN_SPARK_SLOTS", "1")
    order: list[str] = []

    def second_run() -> None:
        with local_runs.spark_slot(print):
            order.append("second in")

    with local_runs.spark_slot(print):
        waiter = threading.Thread(target=second_run)
        waiter.start()
        waiter.join(timeout=3)
        assert order == [] and waiter.is_alive()  # the second run waits for the slot
        order.append("first out")
    waiter.join(timeout=10)
    assert order == ["first out", "second in"]
