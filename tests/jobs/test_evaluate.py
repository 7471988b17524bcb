from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.linalg import Vectors

from retrain.runs import DRY_RUN, PUBLISH, REJECT
from retrain.spark.gate import decide
from retrain.spark.metrics import bootstrap_difference, classification_metrics, metric_of, prepare
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


def frame_of(spark, rows):
    return spark.createDataFrame(
        [(i, y, yhat, Vectors.dense(p)) for i, (y, yhat, p) in enumerate(rows)],
        ["id", "label", "predicted_label", "probability"],
    )


@pytest.fixture
def scored(spark):
    return prepare(frame_of(spark, ROWS), "id", "label", "predicted_label")


def test_metrics_by_hand(spark, scored):
    m = classification_metrics(spark, scored, LABELS, positive_class="b")
    assert m["rows"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: tp=2 fp=0 fn=1 -> p=1, r=2/3, f1=0.8; b: tp=1 fp=1 fn=1 -> 0.5; c: tp=1 fp=1 fn=0 -> 2/3
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert m["positive_f1"] == pytest.approx(0.5)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    true_probs = [0.8, 0.6, 0.3, 0.7, 0.4, 0.9]
    assert m["log_loss"] == pytest.approx(-sum(math.log(p) for p in true_probs) / 6)
    onehot = {"a": [1, 0, 0], "b": [0, 1, 0], "c": [0, 0, 1]}
    brier = (
        sum(
            sum((p - t) ** 2 for p, t in zip(probs, onehot[y], strict=True))
            for y, _, probs in ROWS
        )
        / 6
    )
    assert m["brier"] == pytest.approx(brier)
    assert m["confusion"] == [
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


def test_numpy_metrics_agree_with_sql(spark, scored):
    m = classification_metrics(spark, scored, LABELS, positive_class="b")
    code = {"a": 0, "b": 1, "c": 2}
    y = np.array([code[r[0]] for r in ROWS])
    yhat = np.array([code[r[1]] for r in ROWS])
    for metric in ("accuracy", "weighted_f1", "macro_f1", "positive_f1"):
        ours = metric_of(metric, y, yhat, classes=3, weights=np.ones(6), positive=1)
        assert ours == pytest.approx(m[metric]), metric


def test_unknown_true_label_gets_clipped_probability(spark):
    frame = frame_of(spark, [("z", "a", [1.0, 0.0, 0.0])])
    m = classification_metrics(spark, prepare(frame, "id", "label", "predicted_label"), LABELS)
    assert m["log_loss"] == pytest.approx(-math.log(1e-15))
    assert m["brier"] == pytest.approx(2.0)  # (1-0)^2 for 'a' plus 1 for the missing class
    assert m["accuracy"] == 0.0


def test_bootstrap_of_identical_models_is_exactly_zero():
    y = ["a", "b"] * 50
    gate = Gate(bootstrap_resamples=200)
    interval = bootstrap_difference(y, y, y, gate)
    assert (interval["difference"], interval["low"], interval["high"]) == (0.0, 0.0, 0.0)


def test_bootstrap_separates_a_clear_gain_from_noise():
    y = ["a", "b"] * 200
    perfect = list(y)
    ten_percent_wrong = [("b" if v == "a" else "a") if i % 10 == 0 else v for i, v in enumerate(y)]
    one_wrong = ["b"] + y[1:]
    gate = Gate(bootstrap_resamples=500, metric="accuracy")
    clear = bootstrap_difference(y, perfect, ten_percent_wrong, gate)
    assert clear["difference"] == pytest.approx(0.1)
    assert 0.05 < clear["low"] < 0.1 < clear["high"] < 0.15
    noise = bootstrap_difference(y, perfect, one_wrong, gate)
    assert noise["difference"] == pytest.approx(1 / 400)
    assert noise["low"] == 0.0  # some resamples do not contain the one differing row
    assert bootstrap_difference(y, perfect, one_wrong, gate) == noise  # fixed seed


GATE = Gate(min_f1=0.9, max_regression=0.01, min_test_rows=50, min_improvement=0.0)


def cand(value: float, rows: int = 100) -> dict:
    return {"weighted_f1": value, "rows": rows}


def ci(low: float, high: float) -> dict:
    return {"low": low, "high": high, "confidence": 0.95}


@pytest.mark.parametrize(
    ("candidate", "champion", "interval", "decision", "reason"),
    [
        (cand(0.95), None, None, PUBLISH, "first model: weighted_f1 0.9500 >= floor 0.9000"),
        (cand(0.89), None, None, REJECT, "candidate weighted_f1 0.8900 is below the floor 0.9000"),
        (cand(0.99, rows=49), None, None, REJECT, "only 49 test rows (< min_test_rows 50)"),
        (cand(0.95), 0.94, None, PUBLISH, "candidate weighted_f1 0.9500 >= champion 0.9400"),
        (cand(0.935), 0.94, None, PUBLISH, "candidate weighted_f1 0.9350 >= champion 0.9400"),
        (cand(0.925), 0.94, None, REJECT, "below the champion's 0.9400 (tolerance 0.0100)"),
        (
            cand(0.95),
            0.94,
            ci(0.002, 0.02),
            PUBLISH,
            "better than the champion beyond noise: weighted_f1 +0.0100 vs champion, 95% CI "
            "[+0.0020, +0.0200]",
        ),
        (
            cand(0.95),
            0.94,
            ci(-0.004, 0.02),
            REJECT,
            "not better than the champion beyond noise: weighted_f1 +0.0100",
        ),
        (cand(0.925), 0.94, ci(0.01, 0.02), REJECT, "below the champion's 0.9400"),
    ],
)
def test_gate_rules(candidate, champion, interval, decision, reason):
    champ = None if champion is None else {"weighted_f1": champion}
    got = decide(GATE, candidate, champ, interval)
    assert got[0] == decision
    assert reason in got[1]


def test_gate_modes():
    dry = Gate(mode="dry_run")
    assert decide(dry, cand(0.99), None) == (
        DRY_RUN,
        "dry run, nothing published (the gate would publish: first model: "
        "weighted_f1 0.9900 >= floor 0.9000)",
    )
    off = Gate(mode="off")
    assert decide(off, cand(0.5), None) == (
        PUBLISH,
        "gate off (it would reject: candidate weighted_f1 0.5000 is below the floor 0.9000)",
    )
