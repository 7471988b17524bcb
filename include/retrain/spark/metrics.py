"""Classification metrics computed in Spark SQL from a model's predictions.

`weighted_f1` is the per-class F1 weighted by each class's support: the same number as Spark's
MulticlassClassificationEvaluator(metricName="f1"); the gate uses it by default. `positive_f1`
is the F1 of one named class (binary datasets). `bootstrap_difference` puts a confidence interval
on the difference of two models' metric over the same rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.spec import Gate, quote

PROBABILITY_FLOOR = 1e-15  # log loss of a zero probability is clipped, as scikit-learn does
HEADLINE = ("rows", "accuracy", "weighted_f1", "macro_f1", "positive_f1", "log_loss", "brier")


def prepare(
    predictions: DataFrame, id_column: str, label_column: str, predicted_column: str
) -> DataFrame:
    """Reduce predictions to (id, y, yhat, prob): labels as strings, probabilities as arrays."""
    return predictions.select(
        F.col(quote(id_column)).alias("id"),
        F.col(quote(label_column)).cast("string").alias("y"),
        F.col(quote(predicted_column)).cast("string").alias("yhat"),
        vector_to_array("probability").alias("prob"),
    )


def classification_metrics(
    spark: SparkSession, scored: DataFrame, labels: list[str], positive_class: str = ""
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro/weighted F1, log loss, Brier, confusion.

    `scored` is the output of `prepare`; `labels` is the model's class order (probability index).
    Class names come from the feed: they reach Spark as rows of a frame, never as SQL text.
    """
    per_class = spark.sql(
        """
        WITH classes AS (SELECT y AS c FROM {p} UNION SELECT yhat FROM {p}),
        counts AS (
          SELECT c,
                 sum(CASE WHEN y = c AND yhat = c THEN 1 ELSE 0 END) AS tp,
                 sum(CASE WHEN y <> c AND yhat = c THEN 1 ELSE 0 END) AS fp,
                 sum(CASE WHEN y = c AND yhat <> c THEN 1 ELSE 0 END) AS fn,
                 sum(CASE WHEN y = c THEN 1 ELSE 0 END) AS support
          FROM classes CROSS JOIN {p} GROUP BY c
        )
        SELECT c, tp, fp, fn, support,
               coalesce(tp / nullif(tp + fp, 0), 0D) AS precision,
               coalesce(tp / nullif(tp + fn, 0), 0D) AS recall,
               coalesce(2 * tp / nullif(2 * tp + fp + fn, 0), 0D) AS f1
        FROM counts ORDER BY c
        """,
        p=scored,
    ).collect()
    # Each row's class as its 1-based position in the probability vector (0: not a model class).
    positions = spark.createDataFrame(
        [(label, i + 1) for i, label in enumerate(labels)], "y string, pos int"
    )
    with_position = scored.join(F.broadcast(positions), "y", "left").fillna(0, ["pos"])
    totals = spark.sql(
        f"""
        SELECT count(*) AS n,
               avg(CASE WHEN y = yhat THEN 1D ELSE 0D END) AS accuracy,
               -avg(ln(greatest(CASE WHEN pos > 0 THEN element_at(prob, pos) ELSE 0D END,
                                {PROBABILITY_FLOOR}D))) AS log_loss,
               -- multi-class Brier score: squared distance to the one-hot truth, per row
               avg(aggregate(transform(prob, (p, i) -> pow(p - IF(i + 1 = pos, 1D, 0D), 2)),
                             IF(pos = 0, 1D, 0D), (acc, v) -> acc + v)) AS brier
        FROM {{p}}
        """,
        p=with_position,
    ).first()
    confusion = spark.sql("SELECT y, yhat, count(*) AS n FROM {p} GROUP BY y, yhat", p=scored)
    support = sum(r["support"] for r in per_class)
    true_classes = [r for r in per_class if r["support"] > 0]
    by_class = {
        r["c"]: {k: r[k] for k in ("precision", "recall", "f1", "support")} for r in per_class
    }
    weighted = sum(r["f1"] * r["support"] for r in per_class) / support if support else 0.0
    macro = sum(r["f1"] for r in true_classes) / len(true_classes) if true_classes else 0.0
    positive = by_class.get(positive_class, {}).get("f1", 0.0) if positive_class else None
    return {
        "rows": totals["n"],
        "accuracy": totals["accuracy"],
        "weighted_f1": weighted,
        "macro_f1": macro,
        "positive_f1": positive,
        "log_loss": totals["log_loss"],
        "brier": totals["brier"],
        "per_class": by_class,
        "confusion": sorted([r["y"], r["yhat"], r["n"]] for r in confusion.collect()),
    }


def metric_of(
    metric: str,
    y: np.ndarray,
    yhat: np.ndarray,
    *,
    classes: int,
    weights: np.ndarray,
    positive: int,
) -> float:
    """One gate metric from integer-coded labels, each row counted `weights` times."""
    correct = y == yhat
    if metric == "accuracy":
        return float(weights[correct].sum() / weights.sum())
    tp = np.bincount(y[correct], weights=weights[correct], minlength=classes)
    support = np.bincount(y, weights=weights, minlength=classes)
    predicted = np.bincount(yhat, weights=weights, minlength=classes)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros(classes), where=denominator > 0)
    if metric == "positive_f1":
        return float(f1[positive]) if positive >= 0 else 0.0
    if metric == "macro_f1":
        return float(f1[support > 0].mean())
    return float((f1 * support).sum() / support.sum())


def bootstrap_difference(
    y: list[str], candidate: list[str], champion: list[str], gate: Gate
) -> dict[str, Any]:
    """Paired bootstrap of metric(candidate) - metric(champion) over the same rows.

    Each resample draws the rows with replacement (the gate's seed) and scores both models on
    it, so the interval shows how much the difference could move on another sample this size.
    """
    classes = sorted(set(y) | set(candidate) | set(champion))
    code = {c: i for i, c in enumerate(classes)}
    truth, a, b = (np.array([code[v] for v in seq], dtype=int) for seq in (y, candidate, champion))
    n = len(truth)
    settings = {"classes": len(classes), "positive": code.get(gate.positive_class, -1)}

    def gain(weights: np.ndarray) -> float:
        return metric_of(gate.metric, truth, a, weights=weights, **settings) - metric_of(
            gate.metric, truth, b, weights=weights, **settings
        )

    rng = np.random.default_rng(gate.seed)
    differences = [
        gain(np.bincount(rng.integers(0, n, n), minlength=n).astype(float))
        for _ in range(gate.bootstrap_resamples)
    ]
    tail = (1 - gate.confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return {
        "metric": gate.metric,
        "difference": gain(np.ones(n)),
        "low": float(low),
        "high": float(high),
        "confidence": gate.confidence,
        "resamples": gate.bootstrap_resamples,
        "seed": gate.seed,
        "rows": n,
    }
