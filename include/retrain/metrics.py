"""Classification metrics computed in Spark SQL from a model's predictions.

`weighted_f1` is the per-class F1 weighted by each class's support: the same number as Spark's
MulticlassClassificationEvaluator(metricName="f1"); the gate uses it by default.
"""

from __future__ import annotations

from typing import Any

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

PROBABILITY_FLOOR = 1e-15  # log loss of a zero probability is clipped, as scikit-learn does


def prepare(predictions: DataFrame, label_column: str, predicted_column: str) -> DataFrame:
    """Reduce predictions to (y, yhat, prob) with labels as strings and probabilities as arrays."""
    return predictions.select(
        F.col(f"`{label_column}`").cast("string").alias("y"),
        F.col(f"`{predicted_column}`").cast("string").alias("yhat"),
        vector_to_array("probability").alias("prob"),
    )


def classification_metrics(
    spark: SparkSession, scored: DataFrame, labels: list[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro and weighted F1, log loss, confusion.

    `scored` is the output of `prepare`; `labels` is the model's class order (probability index).
    """
    label_array = (
        "array(" + ", ".join("'" + label.replace("'", "''") + "'" for label in labels) + ")"
    )
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
    totals = spark.sql(
        f"""
        SELECT count(*) AS n,
               avg(CASE WHEN y = yhat THEN 1D ELSE 0D END) AS accuracy,
               -avg(ln(greatest(CASE WHEN pos > 0 THEN element_at(prob, pos) ELSE 0D END,
                                {PROBABILITY_FLOOR}D))) AS log_loss
        FROM (SELECT *, CAST(array_position({label_array}, y) AS INT) AS pos FROM {{p}})
        """,
        p=scored,
    ).first()
    confusion = spark.sql("SELECT y, yhat, count(*) AS n FROM {p} GROUP BY y, yhat", p=scored)
    n = totals["n"]
    support = sum(r["support"] for r in per_class)
    true_classes = [r for r in per_class if r["support"] > 0]
    return {
        "rows": n,
        "accuracy": totals["accuracy"],
        "log_loss": totals["log_loss"],
        "weighted_f1": sum(r["f1"] * r["support"] for r in per_class) / support
        if support
        else 0.0,
        "macro_f1": sum(r["f1"] for r in true_classes) / len(true_classes)
        if true_classes
        else 0.0,
        "per_class": {
            r["c"]: {k: r[k] for k in ("precision", "recall", "f1", "support")} for r in per_class
        },
        "confusion": [[r["y"], r["yhat"], r["n"]] for r in confusion.collect()],
    }
