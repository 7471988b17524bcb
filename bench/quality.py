"""retrain's model against scikit-learn on public datasets, on retrain's own split.

Each dataset goes the way a user's would: its CSV is scaffolded by the same code as
`retrain new-dataset` (types, label, feature types), typed and split by retrain's preprocess
(`build_features`: the id hash), and the spec's model is fitted by the train stage's
`fit_pipeline` on the train split, early-stopped on the validation split. scikit-learn's
LogisticRegression and MLPClassifier(early_stopping=True) are fitted by hand the usual way
(impute and scale numbers, one-hot categories, TF-IDF text) on the train and validation rows
together, and every model is scored on the same test rows.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.metrics import f1_score, log_loss

from bench import public

DAY = date(2026, 3, 2)


def _spec(spark: SparkSession, name: str, csv: Path, model: dict[str, Any]):  # noqa: ANN202
    """The spec `retrain new-dataset NAME --from CSV --label label --id id` writes, with
    `model` keys overriding the scaffold's (none by default)."""
    from retrain.spec import parse_spec
    from retrain.tools.scaffold import find_sample, read_sample, scaffold_spec

    source, frame, _ = read_sample(spark, find_sample(spark, csv))
    data, _ = scaffold_spec(name, csv, frame, source=source, label="label", id_column="id")
    data["model"] = data["model"] | model
    return parse_spec(data, f"{name}.yaml")


def _splits(spark: SparkSession, spec, csv: Path) -> dict[str, Any]:  # noqa: ANN001
    """train, validation and test frames as the preprocess stage makes them."""
    from retrain.spark.features import build_features
    from retrain.spec import quote

    ddl = ", ".join(f"{quote(c)} {t}" for c, t in spec.schema.items())
    raw = spark.read.options(**spec.source.options).schema(ddl).csv(str(csv))
    features = build_features(spark, raw.withColumn("ds", F.lit(DAY.isoformat())), spec).cache()
    return {s: features.filter(F.col("split") == s) for s in ("train", "validation", "test")}


def _sklearn_pipeline(spec, model):  # noqa: ANN001, ANN202
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    for column in spec.feature_columns:
        kind = spec.feature_type(column)
        if kind == "numeric":
            steps = make_pipeline(SimpleImputer(), StandardScaler())
            parts.append((column, steps, [column]))
        elif kind == "categorical":
            steps = make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"),
                OneHotEncoder(handle_unknown="ignore"),
            )
            parts.append((column, steps, [column]))
        else:  # text
            text = spec.text
            tfidf = TfidfVectorizer(
                ngram_range=(1, text.ngrams),
                stop_words="english" if text.stop_words == "english" else None,
                max_features=text.vocabulary_size,
                min_df=text.min_doc_freq,
            )
            parts.append((column, tfidf, column))
    return make_pipeline(ColumnTransformer(parts), model)


def _scores(truth: list[str], probabilities: np.ndarray, labels: list[str]) -> dict[str, float]:
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    return {
        "weighted_f1": round(float(f1_score(truth, predicted, average="weighted")), 4),
        "log_loss": round(float(log_loss(truth, probabilities, labels=labels)), 4),
    }


def compare(spark: SparkSession, name: str, folder: Path, model: dict[str, Any]) -> dict:
    """One dataset: retrain's candidate and scikit-learn's two on the same test rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from retrain.spark.model import fit_pipeline, labels_of, training_history

    csv = public.write_csv(name, folder)
    spec = _spec(spark, name, csv, model)
    splits = _splits(spark, spec, csv)
    started = time.perf_counter()
    fitted, _ = fit_pipeline(splits["train"], spec, validation=splits["validation"])
    seconds = time.perf_counter() - started
    labels = labels_of(fitted)
    scored = fitted.transform(splits["test"]).select("label", "probability").collect()
    truth = [str(r.label) for r in scored]
    history = training_history(fitted)
    result: dict[str, Any] = {
        "rows": {s: frame.count() for s, frame in splits.items()},
        "feature_types": {c: spec.feature_type(c) for c in spec.feature_columns},
        "retrain": _scores(truth, np.array([r.probability.toArray() for r in scored]), labels)
        | {
            "seconds": round(seconds, 2),
            "epochs": len(history["train_loss"]),
            "stopped": history["stopped"],
        },  # fmt: skip
    }
    columns = [spec.id_column, spec.label_column, *list(spec.feature_columns)]
    train = splits["train"].unionByName(splits["validation"]).select(*columns).toPandas()
    test = splits["test"].select(*columns).toPandas()
    for key, estimator in (
        ("logistic_regression", LogisticRegression(max_iter=5000)),
        ("mlp", MLPClassifier(early_stopping=True, max_iter=500, random_state=0)),
    ):
        pipeline = _sklearn_pipeline(spec, estimator)
        started = time.perf_counter()
        pipeline.fit(train[list(spec.feature_columns)], train[spec.label_column].astype(str))
        seconds = time.perf_counter() - started
        probabilities = pipeline.predict_proba(test[list(spec.feature_columns)])
        classes = [str(c) for c in pipeline.classes_]
        result[key] = _scores(
            [str(v) for v in test[spec.label_column]], probabilities, classes
        ) | {"seconds": round(seconds, 2)}
    best_f1 = max(result[k]["weighted_f1"] for k in ("logistic_regression", "mlp"))
    best_loss = min(result[k]["log_loss"] for k in ("logistic_regression", "mlp"))
    result["f1_vs_best_sklearn"] = round(result["retrain"]["weighted_f1"] - best_f1, 4)
    result["log_loss_ratio"] = round(result["retrain"]["log_loss"] / best_loss, 3)
    for frame in splits.values():
        frame.unpersist()
    return result
