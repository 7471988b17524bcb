"""Train: fit the model pipeline (`retrain.spark.model`) on the run's training split and save it.

The validation split stops the adam solver early; the test split is never read here. The
candidate is written to the run date's candidate path, its loss history to the run folder.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from pyspark.sql import SparkSession

from retrain.errors import RetrainError
from retrain.lake import is_complete, read_partition, save_model
from retrain.spark import registry
from retrain.spark.features import augment_training
from retrain.spark.job import RunContext, main
from retrain.spark.model import fit_pipeline, labels_of, training_history


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, features = ctx.spec, ctx.paths.features(ctx.run_date)
    if not is_complete(spark, features):
        raise RetrainError(f"feature partition {features} is missing or incomplete")
    window = read_partition(spark, features)
    train, validation = window.filter("split = 'train'"), window.filter("split = 'validation'")
    rows = train.count()
    if rows == 0:
        raise RetrainError(f"no training rows in {features}")
    train = augment_training(train, spec).cache()
    champion = None
    if spec.model.warm_start:
        registry.configure()
        champion = registry.load_champion(spec.registered_model_name)
    started = time.monotonic()
    model, warm = fit_pipeline(
        train, spec, warm_from=champion[1] if champion else None, validation=validation
    )
    fit_seconds = time.monotonic() - started
    save_model(spark, model, ctx.paths.candidate(ctx.run_date))
    history = training_history(model)
    losses, validation_losses = history["train_loss"], history["validation_loss"]
    return {
        "train_rows": rows,
        "augmented_rows": train.count() - rows,
        "layers": model.stages[-2].getLayers(),
        "labels": labels_of(model),
        "solver": spec.model.solver,
        f"{history['unit']}s": len(losses),
        "kept_epoch": history["best_epoch"],
        "stopped": history["stopped"],
        "tasks": history.get("tasks"),
        "fit_seconds": round(fit_seconds, 2),
        "warm_started_from": int(champion[0].version) if warm else None,
        "final_loss": losses[-1] if losses else None,
        "best_validation_loss": min(validation_losses) if validation_losses else None,
        "model_path": ctx.paths.candidate(ctx.run_date),
        "params": dataclasses.asdict(spec.model),
        "loss": history,  # per epoch: evaluate's report and publish's step metrics read it here
    }


if __name__ == "__main__":
    main("train", run)
