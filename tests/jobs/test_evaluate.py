from __future__ import annotations

import math

import pytest
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.linalg import Vectors

from jobs.evaluate import PUBLISH, REJECT, decide
from retrain.metrics import classification_metrics, prepare
from retrain.spec import Gate

LABELS = ["a", "b", "c"]
# (true, predicted, probabilities in LABELS order)
ROWS = [
    ("a", "a", [0.8, 0.1, 0.1]),
    ("a", "a", [0.6, 0.3, 0.1]),
    ("a", "b", [0.3, 0.6, 0.1]),
    ("b", "b", [0.2, 0.7, 0.1]),
    ("b", "c", [0.1, 0.4, 0.5]),
    ("c", "c", [0.0, 0.1, 0.9]),
]


@pytest.fixture
def scored(spark):
    frame = spark.createDataFrame(
        [(y, yhat, Vectors.dense(p)) for y, yhat, p in ROWS],
        ["label", "predicted_label", "probability"],
    )
    return prepare(frame, "label", "predicted_label")


def test_metrics_by_hand(spark, scored):
    m = classification_metrics(spark, scored, LABELS)
    assert m["rows"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: tp=2 fp=0 fn=1 -> p=1, r=2/3, f1=0.8; b: tp=1 fp=1 fn=1 -> 0.5; c: tp=1 fp=1 fn=0 -> 2/3
    assert m["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    true_probs = [0.8, 0.6, 0.3, 0.7, 0.4, 0.9]
    assert m["log_loss"] == pytest.approx(-sum(math.log(p) for p in true_probs) / 6)
    assert sorted(m["confusion"]) == [
        ["a", "a", 2],
        ["a", "b", 1],
        ["b", "b", 1],
        ["b", "c", 1],
        ["c", "c", 1],
    ]


def test_metrics_match_spark_evaluator(spark, scored):
    m = classification_metrics(spark, scored, LABELS)
    indexed = scored.selectExpr(
        "cast(array_position(array('a','b','c'), y) - 1 as double) as label",
        "cast(array_position(array('a','b','c'), yhat) - 1 as double) as prediction",
    )
    for ours, theirs in (("weighted_f1", "f1"), ("accuracy", "accuracy")):
        evaluator = MulticlassClassificationEvaluator(metricName=theirs)
        assert m[ours] == pytest.approx(evaluator.evaluate(indexed))


def test_unknown_true_label_gets_clipped_probability(spark):
    frame = spark.createDataFrame(
        [("z", "a", Vectors.dense([1.0, 0.0, 0.0]))],
        ["label", "predicted_label", "probability"],
    )
    m = classification_metrics(spark, prepare(frame, "label", "predicted_label"), LABELS)
    assert m["log_loss"] == pytest.approx(-math.log(1e-15))
    assert m["accuracy"] == 0.0


GATE = Gate(min_f1=0.9, max_regression=0.01, min_test_rows=50)


@pytest.mark.parametrize(
    ("candidate", "champion", "rows", "decision", "reason"),
    [
        (0.95, None, 100, PUBLISH, "first model: weighted_f1 0.9500 >= floor 0.9000"),
        (0.89, None, 100, REJECT, "candidate weighted_f1 0.8900 is below the floor 0.9000"),
        (0.95, 0.94, 100, PUBLISH, "candidate weighted_f1 0.9500 >= champion 0.9400"),
        (0.935, 0.94, 100, PUBLISH, "candidate weighted_f1 0.9350 >= champion 0.9400"),
        (0.925, 0.94, 100, REJECT, "below the champion's 0.9400 (tolerance 0.0100)"),
        (0.99, None, 49, REJECT, "only 49 test rows (< min_test_rows 50)"),
    ],
)
def test_gate_rules(candidate, champion, rows, decision, reason):
    champ = None if champion is None else {"weighted_f1": champion}
    got = decide(GATE, {"weighted_f1": candidate}, champ, rows)
    assert got[0] == decision
    assert reason in got[1]
