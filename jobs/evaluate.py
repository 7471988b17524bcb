"""Evaluate: score candidate and champion on the same test rows and decide whether to publish.

Metrics are computed in Spark SQL (`retrain.spark.metrics`). The gate, in order: enough test rows,
the gate metric at or above the floor, not below the champion by more than `max_regression`,
and (with the bootstrap on) better than the champion beyond noise. The gate's mode then decides
what happens: `enforce` acts on the verdict, `dry_run` records it and never publishes, `off`
always publishes. The decision, all its numbers and a one-line reason go into the run record
and the run's report (HTML + JSON).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from retrain.errors import RetrainError
from retrain.lake import is_complete, read_partition, resolve
from retrain.runs import Evaluation, RunRecord, run_folder
from retrain.spark import registry
from retrain.spark.gate import decide
from retrain.spark.job import RunContext, main
from retrain.spark.metrics import HEADLINE, bootstrap_difference, classification_metrics, prepare
from retrain.spark.model import PREDICTED_LABEL, labels_of
from retrain.spark.report import write_report
from retrain.spec import Gate, Spec


def score(model: PipelineModel, test: DataFrame, spec: Spec) -> DataFrame:
    return prepare(
        model.transform(test), spec.id_column, spec.label_column, PREDICTED_LABEL
    ).cache()


def compare(candidate: DataFrame, champion: DataFrame, gate: Gate) -> dict[str, Any]:
    """Bootstrap interval of the candidate's gain over the champion, row by row."""
    paired = (
        candidate.selectExpr("id", "y", "yhat AS a")
        .join(champion.selectExpr("id", "yhat AS b"), "id")
        .collect()
    )
    return bootstrap_difference(
        [r.y for r in paired], [r.a for r in paired], [r.b for r in paired], gate
    )


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, gate, features = ctx.spec, ctx.spec.gate, ctx.paths.features(ctx.run_date)
    candidate_path = ctx.paths.candidate(ctx.run_date)
    if not is_complete(spark, features) or not is_complete(spark, candidate_path):
        raise RetrainError(f"features or candidate model for {ctx.run_date} missing; run train")
    test = read_partition(spark, features).filter("split = 'test'").cache()
    model = PipelineModel.load(resolve(candidate_path))
    candidate_scored = score(model, test, spec)
    candidate = classification_metrics(
        spark, candidate_scored, labels_of(model), gate.positive_class
    )
    registry.configure()
    champion = registry.load_champion(spec.registered_model_name)
    champion_metrics = champion_version = interval = None
    if champion is not None:
        champion_version, champion_model = int(champion[0].version), champion[1]
        champion_scored = score(champion_model, test, spec)
        champion_metrics = classification_metrics(
            spark, champion_scored, labels_of(champion_model), gate.positive_class
        )
        if gate.bootstrap_resamples:
            interval = compare(candidate_scored, champion_scored, gate)
    decision, reason = decide(gate, candidate, champion_metrics, interval)

    def headline(m: dict[str, Any] | None) -> dict[str, Any] | None:
        return {k: m[k] for k in HEADLINE} if m else None

    evaluation = Evaluation(
        metric=gate.metric, mode=gate.mode, decision=decision, reason=reason,
        candidate=headline(candidate), champion=headline(champion_metrics),
        champion_version=champion_version, interval=interval,
    )  # fmt: skip
    record = RunRecord.read(spec.name, ctx.run_date)
    written = write_report(
        run_folder(spec.name, ctx.run_date),
        record=record.sections | {"evaluate": asdict(evaluation)},
        details={"candidate": candidate, "champion": champion_metrics},
        loss=record.training.loss if record.training else {},
        history=registry.version_history(spec.registered_model_name),
    )
    return asdict(replace(evaluation, **written))


if __name__ == "__main__":
    main("evaluate", run)
