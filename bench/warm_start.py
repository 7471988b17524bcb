"""Cold vs warm-started training, side by side in one run (issue: model quality).

Day 1 and day 2 are two samples from the same fixed-seed teacher network. The day-2 model is
trained twice on the same rows: from random weights (cold) and from the day-1 model (warm).
Prints one JSON object: F1 on day 2's test rows, iterations and fit seconds of each, and their
ratios. Usage: python bench/warm_start.py [--rows 200000] [--features 64] [--dataset digits]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from pyspark.sql import DataFrame, SparkSession

from retrain.metrics import classification_metrics, prepare
from retrain.model import PREDICTED_LABEL, fit_pipeline, labels_of, loss_history
from retrain.spec import load_spec, parse_spec

CLASSES = 10


def teacher_sample(spark: SparkSession, rows: int, features: int, seed: int) -> DataFrame:
    """Rows labelled by a fixed random two-layer network (the same teacher for every seed)."""
    teacher = np.random.default_rng(0)
    w1, w2 = teacher.normal(size=(features, 32)), teacher.normal(size=(32, CLASSES))
    x = np.random.default_rng(seed).normal(size=(rows, features))
    labels = np.argmax(np.tanh(x @ w1) @ w2, axis=1)
    frame = {f"f{i}": x[:, i] for i in range(features)} | {"label": labels.astype(str)}
    import pandas as pd

    data = pd.DataFrame(frame)
    data.insert(0, "id", np.arange(rows) + seed * rows)
    return spark.createDataFrame(data)


def synthetic_spec(features: int):
    return parse_spec(
        {
            "name": "synthetic",
            "registered_model_name": "bench_synthetic",
            "schema": {"id": "long", "label": "string"}
            | {f"f{i}": "double" for i in range(features)},
            "id_column": "id",
            "label_column": "label",
            "feature_columns": [f"f{i}" for i in range(features)],
            "model": {"hidden_layers": [64], "max_iter": 100, "block_size": 128},
        },
        "bench",
    )


def digits_days(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    rows = [(i, str(labels[i]), *map(float, images[i])) for i in range(len(labels))]
    frame = spark.createDataFrame(rows, ["id", "label", *[f"p{i}" for i in range(64)]])
    return frame.filter("id % 2 = 0"), frame


def timed_fit(train: DataFrame, spec, warm_from=None) -> tuple:
    started = time.monotonic()
    model, warm = fit_pipeline(train, spec, warm_from=warm_from)
    return model, warm, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--dataset", choices=("synthetic", "digits"), default="synthetic")
    args = parser.parse_args()
    spark = (
        SparkSession.builder.master("local[*]")
        .config("spark.ui.enabled", "false")
        .config("spark.log.level", "ERROR")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "6g")
        .getOrCreate()
    )
    if args.dataset == "digits":
        spec = load_spec("digits")
        day1, day2 = digits_days(spark)
    else:
        spec = synthetic_spec(args.features)
        day1 = teacher_sample(spark, args.rows, args.features, seed=1)
        day2 = teacher_sample(spark, args.rows, args.features, seed=2)
    split = "pmod(xxhash64(id), 10) < 8"
    day1_train = day1.filter(split).cache()
    day2_train, day2_test = day2.filter(split).cache(), day2.filter(f"NOT ({split})").cache()
    day1_train.count(), day2_train.count(), day2_test.count()
    champion, _, _ = timed_fit(day1_train, spec)
    result = {"dataset": args.dataset, "train_rows": day2_train.count()}
    for name, warm_from in (("cold", None), ("warm", champion)):
        model, warm, seconds = timed_fit(day2_train, spec, warm_from)
        scored = prepare(model.transform(day2_test), "id", "label", PREDICTED_LABEL)
        metrics = classification_metrics(spark, scored, labels_of(model))
        result[name] = {
            "warm_started": warm,
            "weighted_f1": round(metrics["weighted_f1"], 4),
            "iterations": len(loss_history(model)),
            "fit_seconds": round(seconds, 1),
        }
    result["warm_over_cold_seconds"] = round(
        result["warm"]["fit_seconds"] / result["cold"]["fit_seconds"], 3
    )
    print(json.dumps(result))
    spark.stop()


if __name__ == "__main__":
    main()
