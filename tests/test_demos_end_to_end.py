"""Any dataset by its spec alone, through the real DAG (dag.test, local Spark, real MLflow).

The two shipped demos beside digits publish a champion: `support_tickets` (text and a category,
personal data protected) and `penguins` (numbers and categories with gaps). Then a CSV sample
the project has never seen, with numeric, categorical, text and personal columns, is scaffolded
by `retrain new-dataset` (a scaffolded feed's runs through the DAG are
tests/test_feed_end_to_end.py's).
"""

from __future__ import annotations

import csv
import json
import os
import random
from datetime import date
from pathlib import Path

import pytest
import yaml

from retrain.tools.demo import FIRST_NAMES
from tests.helpers import retrain_cli

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 2)
REVIEW_WORDS = {
    "positive": ["love it", "works great", "excellent quality", "would buy again",
                 "exactly as described", "fast and reliable"],
    "negative": ["broke after a week", "waste of money", "stopped working", "very poor quality",
                 "arrived damaged", "do not buy"],
    "neutral": ["it is okay", "does the job", "average for the price", "nothing special",
                "as expected I guess", "fine but plain"],
}  # fmt: skip
CATEGORIES = ["books", "toys", "garden", "kitchen", "sports"]


def review_rows(day_index: int, count: int) -> list[list[str]]:
    """Product reviews: the sentiment shows in the text, a little in the stars and category."""
    rng = random.Random(day_index)
    rows = []
    for n in range(count):
        sentiment = rng.choices(list(REVIEW_WORDS), [0.5, 0.3, 0.2])[0]
        words = rng.sample(REVIEW_WORDS[sentiment], 2)
        text = f"the {rng.choice(['item', 'product', 'thing'])} {words[0]}, {words[1]}"
        price = "" if rng.random() < 0.03 else f"{rng.uniform(3, 300):.2f}"
        votes = str(rng.randrange(0, 40))
        category = rng.choice(CATEGORIES)
        email = f"{rng.choice(FIRST_NAMES).lower()}{rng.randrange(1000)}@example.org"
        rows.append([str(day_index * 100_000 + n), email, category, price, votes, text, sentiment])
    return rows


def write_reviews(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["review_id", "reviewer_email", "product_category", "price",
                         "helpful_votes", "review_text", "sentiment"])  # fmt: skip
        writer.writerows(rows)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("demos")
    env = os.environ | {
        "RETRAIN_HOME": str(root / "home"),
        "RETRAIN_DATASETS_PATH": str(root / "specs"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RETRAIN_LAKE", None)
    return {"root": root, "env": env}


def champion(env: dict[str, str], dataset: str) -> dict:
    return json.loads(retrain_cli(env, "status", dataset, "--json").stdout)


@pytest.fixture(scope="module")
def demos(home) -> dict:
    env = home["env"]
    retrain_cli(env, "demo-data", "support_tickets", "penguins", "--end", DAY.isoformat())
    for dataset in ("support_tickets", "penguins"):
        retrain_cli(env, "run", dataset, "--date", DAY.isoformat())
    return {d: champion(env, d) for d in ("support_tickets", "penguins")}


def test_support_tickets_publish_with_macro_f1(demos):
    status = demos["support_tickets"]
    assert status["champion"]["version"] == 1
    assert status["champion"]["metric"] == "macro_f1"
    assert status["champion"]["f1"] >= 0.95
    assert status["runs"][0]["state"] == "success"


def test_penguins_publish_with_weighted_f1(demos):
    status = demos["penguins"]
    assert status["champion"]["version"] == 1
    assert status["champion"]["metric"] == "weighted_f1"
    assert status["champion"]["f1"] >= 0.97


def test_ticket_names_and_emails_never_reach_the_lake(demos, home, spark):
    landed = home["root"] / "home" / "lake" / "landing" / "support_tickets" / f"ds={DAY}"
    with (landed / "part-0.csv").open() as feed:
        people = list(csv.DictReader(feed))
    raw = spark.read.parquet(str(home["root"] / "home" / "lake" / "raw" / "support_tickets"))
    stored = {r.customer_name for r in raw.select("customer_name").collect()}
    mails = {r.customer_email for r in raw.select("customer_email").collect()}
    assert raw.count() == len(people) == 1500
    assert not stored & {p["customer_name"] for p in people}
    assert not mails & {p["customer_email"] for p in people}
    assert all(len(name) == 64 for name in stored)


@pytest.fixture(scope="module")
def new_dataset(home) -> dict:
    """The README's "Add your dataset" walk, on product reviews the project has never seen."""
    root, env = home["root"], home["env"]
    sample = root / "sample" / "reviews.csv"
    write_reviews(sample, review_rows(1, 800))
    scaffold = retrain_cli(
        env,
        "new-dataset",
        "product_reviews",
        "--from",
        str(sample),
        "--output",
        str(root / "specs"),
    )
    return {
        "scaffold": scaffold.stdout,
        "spec": yaml.safe_load((root / "specs" / "product_reviews.yaml").read_text()),
        "suites": sorted(
            p.name for p in (root / "specs" / "expectations" / "product_reviews").iterdir()
        ),
    }


def test_new_dataset_guesses_every_role(new_dataset):
    spec = new_dataset["spec"]
    assert spec["id_column"] == "review_id"
    assert spec["label_column"] == "sentiment"
    assert spec["schema"] == {
        "review_id": "long",
        "reviewer_email": "string",
        "product_category": "string",
        "price": "double",
        "helpful_votes": "int",
        "review_text": "string",
        "sentiment": "string",
    }
    assert spec["feature_columns"] == ["product_category", "price", "helpful_votes", "review_text"]
    assert spec["feature_types"] == {"product_category": "categorical", "review_text": "text"}
    assert spec["sensitive"] == {"reviewer_email": "encrypt"}
    assert new_dataset["suites"] == ["features.json", "raw.json"]
    assert "reviewer_email: personal data by its name: encrypt" in new_dataset["scaffold"]


def test_new_dataset_refuses_to_overwrite_and_names_bad_input(new_dataset, home):
    env, root = home["env"], home["root"]
    again = retrain_cli(
        env, "new-dataset", "product_reviews", "--from", str(root / "sample" / "reviews.csv"),
        "--output", str(root / "specs"), expect=2,
    )  # fmt: skip
    assert "already exists" in again.stderr
    missing = retrain_cli(env, "new-dataset", "other", "--from", str(root / "nope.csv"), expect=2)
    assert "nope.csv: no such file" in missing.stderr
    wrong = retrain_cli(
        env, "new-dataset", "other", "--from", str(root / "sample" / "reviews.csv"),
        "--label", "stars", "--output", str(root / "other"), expect=2,
    )  # fmt: skip
    assert "--label 'stars' is not a column" in wrong.stderr
