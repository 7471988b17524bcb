"""Security on real Spark, MLflow and Airflow pieces: protected personal data, signed models,
hostile input, and no secrets in the repository."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from pyspark.ml import Pipeline
from pyspark.ml.feature import StringIndexer

from jobs import ingest, preprocess
from retrain import keys
from retrain.airflow.submission import export_secret
from retrain.errors import EXIT_BAD_SPEC
from retrain.paths import REPO_ROOT
from retrain.spark import integrity, pii, registry
from retrain.spark.model import fit_pipeline
from retrain.spec import SpecError, load_spec, parse_spec
from retrain.tools import cli
from tests.helpers import DAY, TOY, context, land, toy_spec

KEY = "k" * 16 + "0123456789abcdef0123456789"
SENSITIVE = {"name": "pseudonymize", "email": "encrypt", "phone": "drop"}
PII_SCHEMA = TOY["schema"] | {"name": "string", "email": "string", "phone": "string"}
PEOPLE = [
    ("1", "a", "0.5", "1.0", "Ada Lovelace", "ada@example.org", "+44 20 7946 0001"),
    ("2", "b", "1.5", "2.0", "Alan Turing", "alan@example.org", "+44 20 7946 0002"),
    ("3", "a", "0.0", "0.1", "Ada Lovelace", "ada@example.org", "+44 20 7946 0003"),
    ("4", "b", "2.0", "2.5", "Grace Hopper", "grace@example.org", "+1 202 555 0104"),
    ("5", "a", "11.5", "1.0", "Edsger Dijkstra", "ed@example.org", "+31 20 555 0105"),  # x > 10
]
COLUMNS = "name string, email string, phone string"
MALFORMED = "6,a,1.0,Joan Clarke,joan@example.org"  # cut short: the name lands in `y`


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv(keys.ENV, KEY)
    return KEY


def pii_spec():
    return toy_spec(schema=PII_SCHEMA, sensitive=SENSITIVE)


def plain_values() -> set[str]:
    return {v for person in PEOPLE for v in person[4:]} | {"Joan Clarke", "joan@example.org"}


def test_pseudonyms_are_hmac_sha256_and_encryption_needs_the_key(spark, home, secret, monkeypatch):
    frame = spark.createDataFrame([(p[4], p[5], p[6]) for p in PEOPLE], COLUMNS)
    spec = pii_spec()
    protected = pii.protect(frame, spec).collect()
    expected = hmac.new(keys.derived_key("pseudonymize"), b"Ada Lovelace", hashlib.sha256)
    assert protected[0]["name"] == expected.hexdigest() == protected[2]["name"]
    assert protected[0]["email"] == protected[2]["email"] != protected[1]["email"]
    assert {r["phone"] for r in protected} == {None}
    back = pii.decrypt(spark.createDataFrame(protected, COLUMNS), "email").collect()
    assert [r["email"] for r in back] == [p[5] for p in PEOPLE]
    monkeypatch.setenv(keys.ENV, "another-key-" + "x" * 30)
    with pytest.raises(Exception, match="Tag mismatch"):
        pii.decrypt(spark.createDataFrame(protected, COLUMNS), "email").collect()


def test_keys_never_appear_in_a_query_plan(spark, home, secret):
    frame = spark.createDataFrame([("Ada", "ada@example.org", None)], COLUMNS)
    plan = pii.protect(frame, pii_spec())._jdf.queryExecution().toString().lower()
    for purpose in ("pseudonymize", "encrypt", "encrypt_iv"):
        assert keys.derived_key(purpose).hex() not in plan
    assert "sha2" in plan and "aes_encrypt" in plan


def test_no_plaintext_reaches_raw_or_quarantine(spark, home, secret):
    land(home, ["id,label,x,y,name,email,phone", *[",".join(p) for p in PEOPLE], MALFORMED])
    ctx = context(pii_spec(), DAY)
    result = ingest.run(spark, ctx)
    assert (result["rows_valid"], result["rows_quarantined"]) == (4, 2)
    raw = spark.read.parquet(ctx.paths.raw(ctx.run_date))
    assert raw.columns == ["id", "label", "x", "y", "name", "email"]  # phone dropped
    assert raw.select("name").distinct().count() == 3  # equal names stay equal
    stored = [str(v) for path in (ctx.paths.raw(ctx.run_date), ctx.paths.quarantine(ctx.run_date))
              for row in spark.read.parquet(path).collect() for v in row]  # fmt: skip
    assert not [v for v in stored for plain in plain_values() if plain in v]
    held = spark.read.parquet(ctx.paths.quarantine(ctx.run_date))
    assert sorted(h.reason for h in held.collect()) == [
        "x is outside [0, 10]",
        "y is not a double",
    ]
    # The cut line shifted a name into `y`; the operator with the key can still read it.
    opened = pii.decrypt(pii.decrypt(held, "raw_record"), "value").orderBy("reason").collect()
    assert opened[1]["value"] == "Joan Clarke" and "Joan Clarke" in opened[1]["raw_record"]
    assert all(str(v) not in json.dumps(result) for v in plain_values())


def test_sensitive_settings_are_checked_and_cannot_be_overridden(home):
    bad = [
        ({"label": "drop"}, "sensitive.label' is the label or a feature"),
        ({"x": "encrypt"}, "sensitive.x' must be a string column"),
        ({"id": "encrypt"}, "sensitive.id' must be a string column"),
        ({"name": "shred"}, "sensitive.name' must be one of pseudonymize, encrypt, drop"),
        ({"nickname": "drop"}, "sensitive.nickname' is not a column"),
    ]
    for sensitive, message in bad:
        with pytest.raises(SpecError, match=re.escape(message)):
            parse_spec(TOY | {"schema": PII_SCHEMA, "sensitive": sensitive}, "toy.yaml")
    with pytest.raises(SpecError, match="unknown override key 'sensitive.name'"):
        pii_spec().with_overrides({"sensitive.name": "drop"})
    with pytest.raises(SpecError, match="unknown override key 'registered_model_name'"):
        pii_spec().with_overrides({"registered_model_name": "someone_elses_model"})


def test_a_short_key_is_refused(home, monkeypatch):
    monkeypatch.setenv(keys.ENV, "short")
    with pytest.raises(SpecError, match="RETRAIN_KEY must hold at least 32 characters"):
        keys.derived_key("sign")


def test_without_a_key_one_is_generated_once_readable_only_by_its_owner(home, monkeypatch):
    monkeypatch.delenv(keys.ENV, raising=False)
    first = keys.derived_key("sign")
    assert keys.derived_key("sign") == first
    assert oct(keys.key_file().stat().st_mode & 0o777) == "0o600"
    assert len(keys.key_file().read_text().strip()) == 64


# -- signed models ---------------------------------------------------------------------------


@pytest.fixture
def published(spark, home, secret):
    """A small Spark model published through the real registry code, as the champion."""
    import mlflow

    (home.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    frame = spark.createDataFrame([("a",), ("b",)], ["label"])
    model = Pipeline(stages=[StringIndexer(inputCol="label", outputCol="i")]).fit(frame)
    registry.configure()
    with mlflow.start_run(experiment_id=registry.experiment_id("toy")):
        version, _ = registry.log_model_with_manifest(
            model, "retrain_toy", {"run_date": "2026-03-01"}, signature=None, input_example=None
        )
    mlflow.MlflowClient().set_registered_model_alias("retrain_toy", registry.CHAMPION, version)
    stored = [p for p in (home / "mlflow" / "artifacts").rglob("*") if p.is_file()]
    return version, stored


def verify_cli(capsys) -> tuple[int, str]:
    code = cli.main(["verify", "toy"])
    return code, capsys.readouterr().out


def test_a_published_model_is_signed_and_loads(published, capsys):
    version, stored = published
    assert any(p.name == integrity.SIGNATURE for p in stored)
    loaded = registry.load_champion("retrain_toy")
    assert str(loaded[0].version) == version and loaded[1].stages[0].labels == ["a", "b"]
    code, out = verify_cli(capsys)
    assert code == 0 and re.search(
        r"retrain_toy version 1: integrity manifest \(HMAC\) and \d+ files verified", out
    )


def test_one_flipped_byte_is_refused_by_loading_and_verify(published, capsys):
    _, stored = published
    data = next(p for p in stored if p.suffix == ".parquet")
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0x01
    data.write_bytes(bytes(content))
    with pytest.raises(integrity.ModelRefused, match=rf"{re.escape(data.name)} changed: refused"):
        registry.load_champion("retrain_toy")
    code, out = verify_cli(capsys)
    assert code == 1 and "REFUSED model retrain_toy version 1 does not match" in out


@pytest.mark.parametrize("change", ["missing signature", "added file", "other key"])
def test_unsigned_extended_or_foreign_models_are_refused(published, capsys, monkeypatch, change):
    _, stored = published
    folder = next(p for p in stored if p.name == integrity.SIGNATURE).parent
    if change == "missing signature":
        (folder / integrity.SIGNATURE).unlink()
        expected = "is not signed"
    elif change == "added file":
        (folder / "sparkml" / "extra.py").write_text("print('hello')")
        expected = "sparkml/extra.py was added"
    else:
        monkeypatch.setenv(keys.ENV, "someone-else-" + "y" * 30)
        expected = "signature does not match"
    with pytest.raises(integrity.ModelRefused, match=expected):
        registry.load_champion("retrain_toy")
    assert verify_cli(capsys)[0] == 1


# -- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../digits", "/etc/passwd", "digits\n", "digits/../../x", "Digits", ""]
)
def test_hostile_dataset_names_are_refused(home, name):
    with pytest.raises(SpecError, match="must match"):
        load_spec(name)


@pytest.mark.parametrize("run_date", ["../../etc", "2026-01-02/../../x", "yesterday", ""])
def test_hostile_run_dates_are_refused_before_any_spark_job(home, tmp_path, run_date):
    job = subprocess.run(
        [sys.executable, str(REPO_ROOT / "jobs" / "ingest.py"), "--dataset", "digits",
         "--run-date", run_date],
        capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )  # fmt: skip
    assert job.returncode == EXIT_BAD_SPEC, job.stderr[-2000:]  # not retried
    assert "is not a date in the form YYYY-MM-DD" in job.stderr
    assert not (home / "lake").exists()


def test_unknown_override_keys_are_refused(home):
    for key in ("model.shell", "model.max_iter.__class__", "../model", "name"):
        with pytest.raises(SpecError, match="unknown override key"):
            toy_spec().with_overrides({key: 1})


HOSTILE = "a`; DROP TABLE x; --"


def test_hostile_column_names_are_quoted_end_to_end(spark, home):
    schema = TOY["schema"] | {HOSTILE: "double", "b.c": "double"}
    spec = toy_spec(schema=schema, feature_columns=["x", HOSTILE, "b.c"])
    rows = [f"{i},{'ab'[i % 2]},{i % 7 / 2},1.0,{i % 3},{i % 5}" for i in range(1, 41)]
    land(home, [f'id,label,x,y,"{HOSTILE}",b.c', *rows])
    ctx = context(spec, DAY)
    assert ingest.run(spark, ctx)["rows_valid"] == 40
    raw = spark.read.parquet(ctx.paths.raw(ctx.run_date))
    assert raw.columns == list(schema)
    from retrain.lake import set_validated

    set_validated(spark, ctx.paths.raw(ctx.run_date), True)
    preprocess.run(spark, ctx)
    features = spark.read.parquet(ctx.paths.features(ctx.run_date))
    assert features.where("split = 'train'").count() > 0
    model, _ = fit_pipeline(features.where("split = 'train'"), spec)
    assert model.transform(features).count() == 40
    assert not list(home.parent.glob("*x*"))  # nothing named after the injected text


def test_a_spark_connection_cannot_swap_spark_submit_for_another_program(monkeypatch):
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_EVIL",
        json.dumps(
            {"conn_type": "spark", "host": "local[*]", "extra": {"spark-binary": "/bin/sh"}}
        ),
    )
    with pytest.raises(ValueError, match="spark-binary extra can be one of"):
        SparkSubmitHook(conn_id="spark_evil")


def test_the_key_from_a_connection_reaches_the_job_environment_masked(monkeypatch):
    from airflow.sdk._shared.secrets_masker import redact

    monkeypatch.setenv(keys.ENV, "")  # so that the test's end removes what export_secret sets
    monkeypatch.delenv(keys.ENV)
    value = "from-the-connection-" + "z" * 30
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETRAIN_KEY", json.dumps({"conn_type": "generic", "password": value})
    )
    export_secret()
    assert os.environ[keys.ENV] == value
    assert value not in str(redact(f"key is {value}"))


# -- no secrets in the repository ------------------------------------------------------------

SECRET_PATTERNS = {
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "AWS access key": r"\bAKIA[0-9A-Z]{16}\b",
    "GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    "Slack token or webhook": r"xox[abpr]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/T",
    "assigned secret": (
        r"(?i)\b(password|secret|token|api_key|retrain_key)\b\s*[:=]\s*['\"]?[A-Za-z0-9+/_\-]{16,}"
    ),
    "long hex or base64 blob": r"\b[0-9a-f]{48,}\b",
}


def test_no_tracked_file_holds_a_key_like_string():
    files = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in files:
        path = REPO_ROOT / name
        if path.suffix in {".png", ".jpg"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found += [
            f"{name}: {kind}"
            for kind, pattern in SECRET_PATTERNS.items()
            if re.search(pattern, text)
        ]
    assert not found
    assert not (REPO_ROOT / ".env").exists() or ".env" in (REPO_ROOT / ".gitignore").read_text()


def test_the_scan_finds_what_it_looks_for():
    # Built at run time, or the scan above would find them in this file.
    leaked = ["pass" + "word = 'hunter2hunter2hunter2'", "AKIA" + "ABCDEFGHIJKLMNOP", "ab" * 30]
    for text in leaked:
        assert any(re.search(p, text) for p in SECRET_PATTERNS.values()), text
