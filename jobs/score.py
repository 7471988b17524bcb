"""Score: the champion's predictions for the run date's validated raw partition.

The champion is loaded from the registry only after its signature checks out (a tampered model
fails the task without a retry). Every prediction carries the model version that made it. The
partition is replaced whole, like every other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from retrain.errors import RetrainError
from retrain.lake import is_validated, read_partition, write_partition
from retrain.spark import registry
from retrain.spark.features import model_inputs
from retrain.spark.job import RunContext, main
from retrain.spark.model import PREDICTED_LABEL
from retrain.spec import quote


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, raw = ctx.spec, ctx.paths.raw(ctx.run_date)
    if not is_validated(spark, raw):
        raise RetrainError(
            f"no validated raw partition of {spec.name} for {ctx.run_date}: run "
            f"retrain_{spec.name} for that date first"
        )
    registry.configure()
    champion = registry.load_champion(spec.registered_model_name)
    if champion is None:
        raise RetrainError(f"{spec.registered_model_name} has no champion to score with yet")
    version, model = str(champion[0].version), champion[1]
    scored = model.transform(model_inputs(spark, read_partition(spark, raw), spec))
    predictions = scored.select(
        F.col(quote(spec.id_column)),
        F.col(PREDICTED_LABEL).alias("predicted_label"),
        F.array_max(vector_to_array("probability")).alias("confidence"),
        F.lit(version).alias("model_version"),
        F.lit(datetime.now(UTC).isoformat(timespec="seconds")).alias("scored_at"),
    )
    target = ctx.paths.predictions(ctx.run_date)
    write_partition(predictions, target)
    return {
        "rows": read_partition(spark, target).count(),
        "model_version": version,
        "predictions": target,
    }


if __name__ == "__main__":
    main("score", run)
