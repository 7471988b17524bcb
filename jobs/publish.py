"""Publish: register the candidate in the MLflow registry and move `champion` if the gate passed.

Every candidate that reaches this stage is registered with its metrics and lineage tags
(run date, data window, spec hash, data hash, code version), so rejected models stay
inspectable. The alias moves only on a `publish` decision. A rerun with the same data, spec
and code finds the version it already registered (by fingerprint) instead of adding one.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from retrain import registry
from retrain.job import RetrainError, RunContext, main
from retrain.runs import read_run

log = logging.getLogger(__name__)


def fingerprint(record: dict[str, Any], spec_hash: str, code_version: str) -> str:
    """Identity of a candidate's inputs: same value means the same model would be trained."""
    parts = [
        record["dataset"],
        record["run_date"],
        record["preprocess"]["content_hash"],
        spec_hash,
        code_version,
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def lineage_tags(
    record: dict[str, Any], spec_hash: str, code_version: str, fp: str
) -> dict[str, str]:
    window = record["preprocess"]["window"]
    return {
        "run_date": record["run_date"],
        "data_window": f"{window[0]}..{window[-1]}",
        "spec_hash": spec_hash,
        "data_hash": record["preprocess"]["content_hash"],
        "code_version": code_version,
        "fingerprint": fp,
        "decision": record["evaluate"]["decision"],
        "gate_metric": record["evaluate"]["metric"],
        "gate_value": str(record["evaluate"]["candidate"][record["evaluate"]["metric"]]),
    }


def register(
    model: PipelineModel, ctx: RunContext, record: dict[str, Any], tags: dict[str, str]
) -> str:
    """Log the model with its params and metrics as one MLflow run; return the new version."""
    import mlflow

    evaluation = record["evaluate"]
    with mlflow.start_run(
        experiment_id=registry.experiment_id(ctx.spec.name),
        run_name=f"{ctx.spec.name}-{ctx.run_date}",
    ):
        mlflow.log_params({f"model.{k}": v for k, v in record["train"]["params"].items()})
        mlflow.log_metrics({k: v for k, v in evaluation["candidate"].items() if v is not None})
        mlflow.set_tags(tags)
        version = registry.log_signed_model(model, ctx.spec.registered_model_name)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(ctx.spec.registered_model_name, version, key, value)
    return version


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    record = read_run(ctx.spec.name, ctx.run_date)
    missing = [s for s in ("preprocess", "train", "evaluate") if s not in record]
    if missing or record.get("failed_stage"):
        raise RetrainError(
            f"the run record of {ctx.run_date} lacks a successful "
            f"{', '.join(missing) or record['failed_stage']} stage"
        )
    name, decision = ctx.spec.registered_model_name, record["evaluate"]["decision"]
    registry.configure()
    spec_hash, code_version = ctx.spec.fingerprint(), registry.code_version()
    fp = fingerprint(record, spec_hash, code_version)
    existing = registry.find_version(name, fp)
    if existing is not None:
        version = str(existing.version)
        log.info(
            "version %s of %s already holds this candidate; not registering again", version, name
        )
    else:
        model = PipelineModel.load(ctx.paths.candidate(ctx.run_date))
        version = register(model, ctx, record, lineage_tags(record, spec_hash, code_version, fp))
    champion = registry.champion_version(name)
    held_back = ctx.run_type == "backfill" and not ctx.spec.gate.backfill_moves_champion
    already = champion is not None and str(champion.version) == version
    moved = False
    if decision == "publish" and not held_back and not already:
        import mlflow

        mlflow.MlflowClient().set_registered_model_alias(name, registry.CHAMPION, version)
        moved = True
    elif decision == "publish" and held_back:
        log.info("backfill run: version %s registered, champion left as it is", version)
    champion_now = version if moved else (str(champion.version) if champion else None)
    return {
        "model": name,
        "version": version,
        "registered": existing is None,
        "champion_moved": moved,
        "champion_version": champion_now,
        "held_back": decision == "publish" and held_back,
    }


if __name__ == "__main__":
    main("publish", run)
