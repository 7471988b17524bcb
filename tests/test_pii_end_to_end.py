"""Personal data through the real DAG: a dataset with names, e-mail addresses and phone numbers,
defined only in a spec folder outside the repo, run end to end with a key from the environment.

Afterwards no file under the retrain home but the landed feed itself (Parquet, run records,
reports, Data Docs, MLflow's database and artifacts, Airflow's logs) and no line the run printed
holds a plaintext value or the key; the key never showed in the process list; the encrypted
column decrypts with the key and not without it. Then one flipped byte in the published model
makes the real evaluate and score jobs, and `retrain verify`, refuse it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
import yaml

from retrain import keys
from retrain.errors import EXIT_DATA_REJECTED
from retrain.paths import REPO_ROOT
from retrain.spark import pii

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 1)
KEY = "pii-test-" + "4f9c2a7e" * 6
CLI = [sys.executable, "-m", "retrain.tools.cli"]
FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Tony", "Radia", "Ken"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Hoare", "Perlman"]
SPEC = {
    "name": "customers",
    "description": "Synthetic customers: three tiers from four numbers, with personal data.",
    "registered_model_name": "retrain_customers",
    "source": {"format": "csv", "options": {"header": "true"}},
    "schema": {
        "id": "long",
        "tier": "string",
        "f1": "double",
        "f2": "double",
        "f3": "double",
        "f4": "double",
        "name": "string",
        "email": "string",
        "phone": "string",
    },  # fmt: skip
    "id_column": "id",
    "label_column": "tier",
    "feature_columns": ["f1", "f2", "f3", "f4"],
    "sensitive": {"name": "pseudonymize", "email": "encrypt", "phone": "drop"},
    "model": {"hidden_layers": [8]},
    "gate": {"min_f1": 0.8, "min_test_rows": 30},
}
SUITES = {
    "raw": [
        ("expect_column_values_to_be_unique", {"column": "id"}),
        ("expect_column_values_to_be_in_set", {"column": "tier", "value_set": ["a", "b", "c"]}),
        ("expect_column_values_to_not_be_null", {"column": "name"}),
        ("expect_column_values_to_not_be_null", {"column": "email"}),
        ("expect_column_value_lengths_to_equal", {"column": "name", "value": 64}),  # a pseudonym
    ],
    "features": [
        ("expect_column_values_to_be_in_set",
         {"column": "split", "value_set": ["train", "validation", "test"]}),
    ],
}  # fmt: skip


def people(count: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    rows = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        f = [round(rng.uniform(-2, 2), 3) for _ in range(4)]
        score = f[0] + 0.5 * f[1] - f[2]
        tier = "a" if score < -0.7 else "b" if score < 0.7 else "c"
        features = {f"f{j + 1}": str(v) for j, v in enumerate(f)}
        rows.append({"id": str(i + 1), "tier": tier, **features, "name": f"{first} {last}",
                     "email": f"{first}.{last}{i}@example.org".lower(),
                     "phone": f"+44 20 7946 {i:04d}"})  # fmt: skip
    return rows


def write_dataset(specs: Path, lake: Path, rows: list[dict[str, str]]) -> None:
    specs.mkdir(parents=True)
    (specs / "customers.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    for suite, expectations in SUITES.items():
        folder = specs / "expectations" / "customers"
        folder.mkdir(parents=True, exist_ok=True)
        listed = [{"type": kind, "kwargs": kwargs} for kind, kwargs in expectations]
        content = {"name": f"customers_{suite}", "expectations": listed}
        (folder / f"{suite}.json").write_text(json.dumps(content))
    landing = lake / "landing" / "customers" / f"ds={DAY}"
    landing.mkdir(parents=True)
    lines = [",".join(SPEC["schema"])] + [",".join(r.values()) for r in rows]
    lines.append("9999,b,0.1,0.2,Radia Perlman,radia@example.org")  # cut short: quarantined
    (landing / "part-0.csv").write_text("\n".join(lines) + "\n")


def watch_processes(stop: threading.Event, seen: list[str]) -> None:
    """Every command line on the machine, twice a second, for anything holding the key."""
    while not stop.is_set():
        listing = subprocess.run(
            ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=False
        )
        seen.extend(line for line in listing.stdout.splitlines() if KEY in line)
        stop.wait(0.5)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pii")
    home, specs = root / "home", root / "specs"
    rows = people(700)
    write_dataset(specs, home / "lake", rows)
    env = os.environ | {"RETRAIN_HOME": str(home), "RETRAIN_DATASETS_PATH": str(specs),
                        keys.ENV: KEY}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=watch_processes, args=(stop, seen))
    watcher.start()
    try:
        done = subprocess.run([*CLI, "run", "customers", "--date", DAY.isoformat()], env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    status = subprocess.run([*CLI, "status", "customers", "--json"], env=env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    plain = {r[c] for r in rows for c in ("name", "email", "phone")}
    plain |= {"Radia Perlman", "radia@example.org"}
    return {"home": home, "env": env, "rows": rows, "plain": plain, "seen": seen,
            "output": done.stdout + done.stderr, "status": json.loads(status.stdout)}  # fmt: skip


def test_the_dataset_publishes_a_champion(run):
    champion = run["status"]["champion"]
    assert champion["version"] == 1 and champion["f1"] >= 0.8
    ingest = run["status"]["runs"][0]
    assert ingest["state"] == "success"


def test_no_plaintext_or_key_in_any_file_or_output(run, spark):
    home, plain = run["home"], run["plain"]
    parquet = [p for p in home.rglob("*.parquet") if "/mlflow/" not in str(p)]
    assert len(parquet) >= 4  # raw, quarantine, features, and the model's data
    values = [str(v) for path in parquet for row in spark.read.parquet(str(path)).collect()
              for v in row]  # fmt: skip
    assert not [v for v in values if v in plain], "plaintext in a lake partition"
    landing = home / "lake" / "landing"  # the feed as it arrives, before retrain protects it
    files = [p for p in home.rglob("*") if p.is_file() and landing not in p.parents]
    assert len(files) > 50
    leaks = [
        f"{path}: {needle[:20]}"
        for path in files
        for content in [path.read_bytes()]
        for needle in [*plain, KEY]
        if needle.encode() in content
    ]
    assert not leaks
    assert not [needle for needle in [*plain, KEY] if needle in run["output"]]
    assert not run["seen"], "the key was on a command line"


def test_dropped_column_is_gone_and_encryption_needs_the_key(run, spark, monkeypatch):
    raw = spark.read.parquet(str(run["home"] / "lake" / "raw" / "customers" / f"ds={DAY}"))
    assert "phone" not in raw.columns and raw.count() == len(run["rows"])
    monkeypatch.setenv(keys.ENV, KEY)
    opened = {r.email for r in pii.decrypt(raw, "email").select("email").collect()}
    assert opened == {r["email"] for r in run["rows"]}
    monkeypatch.setenv(keys.ENV, "not-the-key-" + "0" * 32)
    with pytest.raises(Exception, match="Tag mismatch"):
        pii.decrypt(raw, "email").collect()


def test_a_tampered_champion_is_refused_by_evaluate_and_verify(run):
    home, env = run["home"], run["env"]
    model_data = sorted((home / "mlflow" / "artifacts").rglob("*.parquet"))
    target = model_data[0]
    content = bytearray(target.read_bytes())
    content[len(content) // 2] ^= 0xFF
    target.write_bytes(bytes(content))
    for stage in ("evaluate", "score"):  # the real jobs, as their tasks run them
        job = subprocess.run(
            [sys.executable, str(REPO_ROOT / "jobs" / f"{stage}.py"), "--dataset", "customers",
             "--run-date", DAY.isoformat()],
            env=env | {"PYTHONPATH": str(REPO_ROOT / "include")}, capture_output=True,
            text=True, check=False,
        )  # fmt: skip
        assert job.returncode == EXIT_DATA_REJECTED, job.stderr[-3000:]
        assert f"{target.name} changed: refused" in job.stderr
    verify = subprocess.run([*CLI, "verify", "customers"], env=env, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert verify.returncode == 1 and "REFUSED model retrain_customers version 1" in verify.stdout
