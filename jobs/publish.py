"""Publish: register the candidate in the MLflow registry and move `champion` if the gate passed.

Every candidate that reaches this stage is registered with its metrics and lineage tags
(run date, data window, spec hash, data hash, code version), so rejected models stay
inspectable. A rerun with the same data, spec and code finds the version it already
registered (by fingerprint), verifies it, and adds none.

The champion only moves forward: the alias moves on a `publish` decision, and only if the
champion is still the version evaluate compared against (else the stage fails: rerun the date),
only to a model whose data ends no earlier than the champion's (unless
`gate.allow_older_champion`), and never for a backfill (unless `gate.backfill_moves_champion`).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from retrain.errors import DataRejected, RetrainError
from retrain.lake import is_complete, read_bytes, read_object, read_partition, resolve
from retrain.runs import PUBLISH, RunRecord
from retrain.spark import registry
from retrain.spark.gate import hold_back_reason
from retrain.spark.job import RunContext, main
from retrain.spark.report import REPORT_DATA, REPORT_PAGE
from retrain.spec import quote

EXAMPLE_ROWS = 5  # rows of the input example logged with the model
REPORT_ARTIFACTS = "report"  # the run's artifact folder of the decision report and its figures

log = logging.getLogger(__name__)


def fingerprint(record: RunRecord, spec_hash: str, code_version: str) -> str:
    """Identity of a candidate's inputs: same value means the same model would be trained."""
    parts = [
        record.dataset, record.run_date, record.preprocessing.content_hash, spec_hash,
        code_version,
    ]  # fmt: skip
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def lineage_tags(record: RunRecord, spec_hash: str, code_version: str, fp: str) -> dict[str, str]:
    window, evaluation = record.preprocessing.window, record.evaluation
    return {
        "run_date": record.run_date,
        "data_window": f"{window[0]}..{window[-1]}",
        "spec_hash": spec_hash,
        "data_hash": record.preprocessing.content_hash,
        "code_version": code_version,
        "fingerprint": fp,
        "decision": evaluation.decision,
        "gate_metric": evaluation.metric,
        "gate_value": str(evaluation.gate_value),
    }


def model_io(spark: SparkSession, model: PipelineModel, ctx: RunContext) -> tuple[Any, Any]:
    """(signature, input example) from a few training rows: the signature from the features the
    model reads and the prediction it gives them; the example without the spec's sensitive
    columns (None when every feature is one)."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    spec = ctx.spec
    inputs = [quote(c) for c in spec.feature_columns]
    rows = (
        read_partition(spark, ctx.paths.features(ctx.run_date))
        .filter("split = 'train'")
        .select(*inputs)
        .limit(EXAMPLE_ROWS)
        .cache()
    )
    inferred = infer_signature(rows, model.transform(rows).select("prediction"))
    nullable = {field.name: field.nullable for field in rows.schema.fields}
    inputs = Schema(  # a feature may be missing (the model imputes it): not required
        [ColSpec(c.type, c.name, required=not nullable[c.name]) for c in inferred.inputs.inputs]
    )
    signature = ModelSignature(inputs, inferred.outputs)
    shown = [quote(c) for c in spec.feature_columns if c not in spec.sensitive]
    example = rows.select(*shown).toPandas() if shown else None
    rows.unpersist()
    if example is not None:  # arrays (vector features) as plain lists, as JSON holds them
        example = example.apply(lambda column: column.map(_plain))
    return signature, example


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def log_run(record: RunRecord) -> None:
    """The active MLflow run: both models' metrics, the gate metric, the loss per epoch as step
    metrics, the decision report and its figures as artifacts."""
    import mlflow
    from mlflow.entities import Metric

    evaluation, train = record.evaluation, record.training
    mlflow.log_params({f"model.{k}": v for k, v in train.params.items()})
    metrics = {k: v for k, v in evaluation.candidate.items() if v is not None}
    champion = evaluation.champion or {}
    metrics |= {f"champion_{k}": v for k, v in champion.items() if v is not None}
    metrics["gate_value"] = evaluation.gate_value
    mlflow.log_metrics(metrics)
    loss, now = train.loss, int(time.time() * 1000)
    steps = [  # the step is the epoch: training loss during it, validation loss after it
        Metric(name, value, now, step)
        for name, first in (("train_loss", 1), ("validation_loss", 0))
        for step, value in enumerate(loss.get(name) or [], first)
        if value is not None
    ]
    if steps:
        mlflow.MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=steps)
    report = evaluation.report
    page = read_object(report) if report else None
    if page is not None:
        mlflow.log_text(page, f"{REPORT_ARTIFACTS}/{REPORT_PAGE}")
        data = read_object(report.rsplit("/", 1)[0] + f"/{REPORT_DATA}")
        if data is not None:
            mlflow.log_text(data, f"{REPORT_ARTIFACTS}/{REPORT_DATA}")
        for name, figure in evaluation.figures.items():
            png = read_bytes(figure)
            if png is not None:
                _log_bytes(png, f"{REPORT_ARTIFACTS}/{name}.png")


def _log_bytes(content: bytes, artifact: str) -> None:
    import mlflow

    folder, name = artifact.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / name).write_bytes(content)
        mlflow.log_artifact(str(Path(scratch) / name), folder)


def register(
    spark: SparkSession,
    model: PipelineModel,
    ctx: RunContext,
    record: RunRecord,
    tags: dict[str, str],
) -> tuple[str, str]:
    """Log the run and the model as one MLflow run; return the new version and its logged
    model's id."""
    import mlflow

    signature, example = model_io(spark, model, ctx)
    with mlflow.start_run(
        experiment_id=registry.experiment_id(ctx.spec.name),
        run_name=f"{ctx.spec.name}-{ctx.run_date}",
    ):
        log_run(record)
        mlflow.set_tags(tags)
        return registry.log_model_with_manifest(
            model, ctx.spec.registered_model_name, tags, signature, example
        )


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    record = RunRecord.read(ctx.spec.name, ctx.run_date)
    missing = [s for s in ("preprocess", "train", "evaluate") if not record.section(s)]
    upstream_failure = record.failed_stage not in (None, "publish")  # not our own retry
    if missing or upstream_failure:
        raise RetrainError(
            f"the run record of {ctx.run_date} lacks a successful "
            f"{', '.join(missing) or record.failed_stage} stage"
        )
    name, evaluation = ctx.spec.registered_model_name, record.evaluation
    registry.configure()
    spec_hash, code_version = ctx.spec.fingerprint(), registry.code_version()
    fp = fingerprint(record, spec_hash, code_version)
    existing = registry.find_version(name, fp)
    if existing is not None:
        version, model_id = str(existing.version), registry.logged_model_id(existing)
        with registry.verified_copy(name, version):  # refused (not retried) if tampered with
            log.info("version %s of %s already holds this candidate and verifies", version, name)
    else:
        if not is_complete(spark, ctx.paths.candidate(ctx.run_date)):
            raise RetrainError(f"the candidate model of {ctx.run_date} is missing; rerun train")
        model = PipelineModel.load(resolve(ctx.paths.candidate(ctx.run_date)))
        tags = lineage_tags(record, spec_hash, code_version, fp)
        version, model_id = register(spark, model, ctx, record, tags)
    champion = registry.champion_version(name)
    compared = evaluation.champion_version
    current = int(champion.version) if champion is not None else None
    moved, held_back = False, None
    if evaluation.decision == PUBLISH and current != int(version):
        if current != compared:
            raise DataRejected(
                f"the champion is version {current}, not version {compared} that evaluate "
                f"compared this candidate with (another run moved it): rerun {ctx.run_date}"
            )
        held_back = hold_back_reason(ctx.spec.gate, ctx.run_type, ctx.run_date, champion)
        if held_back is None:
            registry.set_alias(name, registry.CHAMPION, version)
            moved = True
        else:
            log.info("version %s registered, champion left as it is: %s", version, held_back)
    if evaluation.decision != PUBLISH:  # rejected or dry run: the one to look at next
        registry.set_alias(name, registry.CHALLENGER, version)
    return {
        "model": name,
        "version": version,
        "model_id": model_id,
        "registered": existing is None,
        "champion_moved": moved,
        "champion_version": version if moved else (str(current) if current else None),
        "held_back": held_back,
    }


if __name__ == "__main__":
    main("publish", run)
