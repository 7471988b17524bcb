"""Evaluate: score candidate and champion on the same test rows and decide whether to publish.

Metrics are computed in Spark SQL (`retrain.metrics`). The gate: enough test rows, the gate
metric at or above the spec's floor, and no worse than the champion by more than
`gate.max_regression`. The decision and its one-line reason go into the run record.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from retrain import registry
from retrain.job import RetrainError, RunContext, exists, is_complete, main
from retrain.metrics import classification_metrics, prepare
from retrain.model import PREDICTED_LABEL, labels_of
from retrain.spec import Gate

PUBLISH, REJECT = "publish", "reject"


def decide(
    gate: Gate, candidate: dict[str, Any], champion: dict[str, Any] | None, test_rows: int
) -> tuple[str, str]:
    """(decision, reason) for a candidate against the gate and the champion's metrics."""
    metric = gate.metric
    score = candidate[metric]
    if test_rows < gate.min_test_rows:
        return REJECT, f"only {test_rows} test rows (< min_test_rows {gate.min_test_rows})"
    if score < gate.min_f1:
        return REJECT, f"candidate {metric} {score:.4f} is below the floor {gate.min_f1:.4f}"
    if champion is None:
        return PUBLISH, f"first model: {metric} {score:.4f} >= floor {gate.min_f1:.4f}"
    best = champion[metric]
    if score < best - gate.max_regression:
        return REJECT, (
            f"candidate {metric} {score:.4f} is below the champion's {best:.4f} "
            f"(tolerance {gate.max_regression:.4f})"
        )
    return PUBLISH, f"candidate {metric} {score:.4f} >= champion {best:.4f}"


def score(
    spark: SparkSession, model: PipelineModel, test: DataFrame, label_column: str
) -> dict[str, Any]:
    """Metrics of one model on the test rows."""
    scored = prepare(model.transform(test), label_column, PREDICTED_LABEL).cache()
    return classification_metrics(spark, scored, labels_of(model))


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, features = ctx.spec, ctx.paths.features(ctx.run_date)
    candidate_path = ctx.paths.candidate(ctx.run_date)
    if not is_complete(spark, features) or not exists(spark, candidate_path):
        raise RetrainError(f"features or candidate model for {ctx.run_date} missing; run train")
    test = spark.read.parquet(features).filter("split = 'test'").cache()
    candidate = score(spark, PipelineModel.load(candidate_path), test, spec.label_column)
    registry.configure()
    champion = registry.load_champion(spec.registered_model_name)
    champion_metrics = champion_version = None
    if champion is not None:
        champion_version, champion_model = champion[0].version, champion[1]
        champion_metrics = score(spark, champion_model, test, spec.label_column)
    decision, reason = decide(spec.gate, candidate, champion_metrics, candidate["rows"])
    run_dir = ctx.paths.run_dir(ctx.run_date)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "evaluation.json").write_text(
        json.dumps(
            {
                "candidate": candidate,
                "champion": champion_metrics,
                "champion_version": champion_version,
            },
            indent=2,
        )
    )

    def headline(m: dict[str, Any] | None) -> dict[str, Any] | None:
        keys = ("rows", "accuracy", "weighted_f1", "macro_f1", "log_loss")
        return {k: m[k] for k in keys} if m else None

    return {
        "metric": spec.gate.metric,
        "candidate": headline(candidate),
        "champion": headline(champion_metrics),
        "champion_version": champion_version,
        "decision": decision,
        "reason": reason,
    }


if __name__ == "__main__":
    main("evaluate", run)
