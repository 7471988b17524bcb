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
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from retrain import registry
from retrain.job import DataRejected, RetrainError, RunContext, is_complete, main
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
        return registry.log_signed_model(model, ctx.spec.registered_model_name, tags)


def hold_back_reason(ctx: RunContext, champion: Any | None) -> str | None:
    """Why a `publish` decision must leave the champion where it is, if it must."""
    gate = ctx.spec.gate
    if ctx.run_type == "backfill" and not gate.backfill_moves_champion:
        return "a backfill registers its model but leaves the champion"
    newest = champion.tags.get("run_date") if champion is not None else None
    if newest and newest > ctx.run_date.isoformat() and not gate.allow_older_champion:
        return (
            f"the champion (version {champion.version}) was trained on data up to {newest}, "
            f"newer than this run's {ctx.run_date}; gate.allow_older_champion allows it"
        )
    return None


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    record = read_run(ctx.spec.name, ctx.run_date)
    missing = [s for s in ("preprocess", "train", "evaluate") if s not in record]
    upstream_failure = record.get("failed_stage") not in (None, "publish")  # not our own retry
    if missing or upstream_failure:
        raise RetrainError(
            f"the run record of {ctx.run_date} lacks a successful "
            f"{', '.join(missing) or record['failed_stage']} stage"
        )
    name, evaluation = ctx.spec.registered_model_name, record["evaluate"]
    registry.configure()
    spec_hash, code_version = ctx.spec.fingerprint(), registry.code_version()
    fp = fingerprint(record, spec_hash, code_version)
    existing = registry.find_version(name, fp)
    if existing is not None:
        version = str(existing.version)
        with registry.verified_copy(name, version):  # refused (not retried) if tampered with
            log.info("version %s of %s already holds this candidate and verifies", version, name)
    else:
        if not is_complete(spark, ctx.paths.candidate(ctx.run_date)):
            raise RetrainError(f"the candidate model of {ctx.run_date} is missing; rerun train")
        model = PipelineModel.load(ctx.paths.candidate(ctx.run_date))
        version = register(model, ctx, record, lineage_tags(record, spec_hash, code_version, fp))
    champion = registry.champion_version(name)
    compared = evaluation.get("champion_version")
    current = int(champion.version) if champion is not None else None
    moved, held_back = False, None
    if evaluation["decision"] == "publish" and current != int(version):
        if current != compared:
            raise DataRejected(
                f"the champion is version {current}, not version {compared} that evaluate "
                f"compared this candidate with (another run moved it): rerun {ctx.run_date}"
            )
        held_back = hold_back_reason(ctx, champion)
        if held_back is None:
            import mlflow

            mlflow.MlflowClient().set_registered_model_alias(name, registry.CHAMPION, version)
            moved = True
        else:
            log.info("version %s registered, champion left as it is: %s", version, held_back)
    return {
        "model": name,
        "version": version,
        "registered": existing is None,
        "champion_moved": moved,
        "champion_version": version if moved else (str(current) if current else None),
        "held_back": held_back,
    }


if __name__ == "__main__":
    main("publish", run)
