"""Each feature type on inline data: typed by `build_features`, fitted by `fit_pipeline`."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from retrain.spark.drift import drift_stats
from retrain.spark.features import augment_training, build_features, model_inputs
from retrain.spark.model import fit_pipeline, labels_of
from tests.helpers import toy_spec

TICKETS = [
    ("refund", "I want my money back for order {n}"),
    ("refund", "please refund the charge on my card, order {n}"),
    ("delivery", "where is my parcel {n}, it has not arrived"),
    ("delivery", "the courier never delivered package {n}"),
    ("login", "cannot log in to my account since {n} tries"),
    ("login", "password reset link does not work, attempt {n}"),
]


def features_of(spark, rows, ddl: str, spec):
    """Rows as the preprocess stage types them, with their split."""
    window = spark.createDataFrame(rows, ddl).withColumn("ds", F.lit("2026-03-01"))
    return build_features(spark, window, spec)


def accuracy(model, frame) -> float:
    rows = model.transform(frame).select("label", "predicted_label").collect()
    return sum(r.label == r.predicted_label for r in rows) / len(rows)


def test_numeric_features_are_imputed_and_standardised(spark):
    spec = toy_spec()
    rows = [
        (i, "a" if i % 2 else "b", float(i % 2) * 4 + 1, None if i == 3 else 10.0 * i)
        for i in range(40)
    ]
    frame = features_of(spark, rows, "id long, label string, x double, y double", spec)
    model, _ = fit_pipeline(frame, spec)
    scaled = model.transform(frame).select("_numbers").collect()
    x_values = [r._numbers[0] for r in scaled]
    assert sum(x_values) / len(x_values) == pytest.approx(0.0, abs=1e-9)
    assert all(r._numbers[1] == r._numbers[1] for r in scaled)  # the missing y became a number
    assert accuracy(model, frame) == 1.0


def test_categorical_handles_unseen_and_missing_values(spark):
    spec = toy_spec(
        schema={"id": "long", "label": "string", "x": "double", "colour": "string"},
        feature_columns=["x", "colour"],
        feature_types={"colour": "categorical"},
    )
    ddl = "id long, label string, x double, colour string"
    # The colour decides the label; x is noise.
    rows = [
        (i, "warm" if i % 3 == 0 else "cold", float(i % 7), ["red", "blue", "green"][i % 3])
        for i in range(60)
    ]
    frame = features_of(spark, rows, ddl, spec)
    model, _ = fit_pipeline(frame, spec)
    assert accuracy(model, frame) == 1.0
    onehot = model.transform(frame).first()["_cat_1_onehot"]
    assert onehot.size == 4  # three colours and one slot for unseen or missing ones
    unseen = features_of(
        spark, [(100, "cold", 1.0, "purple"), (101, "cold", 2.0, None)], ddl, spec
    )
    scored = model.transform(unseen).select("_cat_1_index", "predicted_label").collect()
    assert [r._cat_1_index for r in scored] == [3.0, 3.0]
    assert {r.predicted_label for r in scored} <= {"warm", "cold"}


def test_text_becomes_words_and_pairs_weighted_by_tfidf(spark):
    spec = toy_spec(
        schema={"id": "long", "label": "string", "message": "string"},
        feature_columns=["message"],
        feature_types={"message": "text"},
        text={"vocabulary_size": 30, "min_doc_freq": 2, "ngrams": 2},
        model={"hidden_layers": [8], "seed": 1},
    )
    rows = [(i, label, text.format(n=i)) for i in range(120) for label, text in [TICKETS[i % 6]]]
    frame = features_of(spark, rows, "id long, label string, message string", spec)
    model, _ = fit_pipeline(frame, spec)
    counter = next(s for s in model.stages if hasattr(s, "vocabulary"))
    vocabulary = set(counter.vocabulary)
    assert len(vocabulary) == 30  # of 39 terms in 2+ rows; numbers appear once
    assert "the" not in vocabulary and "my" not in vocabulary  # English stop words are out
    assert "money back" in vocabulary  # word pairs are terms too
    assert accuracy(model, frame) == 1.0
    vector = model.transform(frame).first()["_text_0_vector"]
    assert sum(v * v for v in vector.toArray()) == pytest.approx(1.0)  # unit length
    new = features_of(
        spark,
        [
            (500, "refund", "Please REFUND my money back!"),
            (501, "login", ""),
            (502, "login", None),
        ],
        "id long, label string, message string",
        spec,
    )
    assert model.transform(new).first().predicted_label == "refund"
    assert model.transform(new).count() == 3  # empty and missing text score, not crash


def test_vector_features_parse_numbers_and_tolerate_short_arrays(spark):
    spec = toy_spec(
        schema={"id": "long", "label": "string", "pixels": "string"},
        feature_columns=["pixels"],
        feature_types={"pixels": "vector"},
    )
    ddl = "id long, label string, pixels string"
    rows = [(i, "on", f"{i % 3} 9 9 {i % 2}") for i in range(30)]
    rows += [(100 + i, "off", f"[{i % 3}.0, 0.0, 0.0, {i % 2}.0]") for i in range(30)]
    frame = features_of(spark, rows, ddl, spec)
    assert frame.filter("id = 100").first().pixels == [0.0, 0.0, 0.0, 0.0]
    model, _ = fit_pipeline(frame, spec)
    assert model.stages[-2].getLayers()[0] == 4
    assert accuracy(model, frame) == 1.0
    odd = features_of(spark, [(200, "on", "1,9,9"), (201, "off", "0 x 0 0 7")], ddl, spec)
    assert [r.predicted_label for r in model.transform(odd).collect()] == ["on", "off"]


def test_all_types_together_survive_save_and_load(spark, tmp_path):
    from pyspark.ml import PipelineModel

    spec = toy_spec(
        schema={
            "id": "long",
            "label": "string",
            "x": "double",
            "colour": "string",
            "note": "string",
            "pixels": "string",
        },
        feature_columns=["x", "colour", "note", "pixels"],
        feature_types={"colour": "categorical", "note": "text", "pixels": "vector"},
        text={"min_doc_freq": 1},
    )
    rows = [
        (i, "yes" if i % 2 else "no", float(i), ["a", "b"][i % 2], f"note {i % 2}", f"{i % 2} 1")
        for i in range(40)
    ]
    frame = features_of(
        spark,
        rows,
        "id long, label string, x double, colour string, note string, pixels string",
        spec,
    )
    model, _ = fit_pipeline(frame, spec)
    model.write().save(str(tmp_path / "model"))
    loaded = PipelineModel.load(str(tmp_path / "model"))
    unlabeled = model_inputs(
        spark,
        spark.createDataFrame(
            rows, "id long, label string, x double, colour string, note string, pixels string"
        ),
        spec,
    )
    before = [r.predicted_label for r in model.transform(unlabeled).orderBy("id").collect()]
    after = [r.predicted_label for r in loaded.transform(unlabeled).orderBy("id").collect()]
    assert before == after == [r[1] for r in rows]
    assert labels_of(loaded) == ["no", "yes"]


def test_warm_start_needs_the_same_vocabulary(spark):
    spec = toy_spec(
        schema={"id": "long", "label": "string", "message": "string"},
        feature_columns=["message"],
        feature_types={"message": "text"},
        text={"min_doc_freq": 1, "ngrams": 1},
    )
    ddl = "id long, label string, message string"
    day1 = features_of(
        spark, [(i, TICKETS[i % 6][0], TICKETS[i % 6][1]) for i in range(30)], ddl, spec
    )
    champion, _ = fit_pipeline(day1, spec)
    _, same = fit_pipeline(day1, spec, warm_from=champion)
    assert same is True
    changed = [
        (i, TICKETS[i % 6][0], TICKETS[i % 6][1].replace("order", "purchase")) for i in range(30)
    ]
    _, other = fit_pipeline(features_of(spark, changed, ddl, spec), spec, warm_from=champion)
    assert other is False  # same size, other words: the weights would mean other things


def image_spec(**augment: object):  # noqa: ANN201
    """A dataset of one image per row, in a vector feature `pixels`, augmented as given."""
    return toy_spec(
        schema={"id": "long", "label": "string", "pixels": "string"},
        feature_columns=["pixels"],
        feature_types={"pixels": "vector"},
        augment={"column": "pixels", **augment},
    )


def test_augmentation_shifts_images_of_the_training_rows(spark):
    spec = image_spec(image_shape=[3, 3], copies=4, max_shift=1)
    centre = "0 0 0 0 9 0 0 0 0"
    frame = features_of(
        spark,
        [(i, "dot", centre) for i in range(20)],
        "id long, label string, pixels string",
        spec,
    )
    augmented = augment_training(frame, spec).collect()
    assert len(augmented) == 20 * 5
    images = [r.pixels for r in augmented]
    assert all(len(p) == 9 and sorted(p) == [0.0] * 8 + [9.0] for p in images)  # moved, not lost
    assert len({tuple(p) for p in images}) > 4  # several different shifts
    assert augment_training(frame, spec).collect() == augmented  # reproducible


def test_augmentation_noise_stays_within_bounds(spark):
    spec = image_spec(image_shape=[2, 2], max_shift=0, noise=0.5)
    frame = features_of(
        spark,
        [(i, "x", "4 4 4 4") for i in range(10)],
        "id long, label string, pixels string",
        spec,
    )
    copies = [r.pixels for r in augment_training(frame, spec).collect()][10:]
    values = [v for p in copies for v in p]
    assert all(3.5 <= v <= 4.5 for v in values) and len(set(values)) > 10


def test_drift_measures_categories_and_text_length(spark):
    spec = toy_spec(
        schema={"id": "long", "label": "string", "colour": "string", "note": "string"},
        feature_columns=["colour", "note"],
        feature_types={"colour": "categorical", "note": "text"},
        drift={"min_rows": 10},
    )
    ddl = "id long, label string, colour string, note string"
    reference = spark.createDataFrame(
        [(i, "a", ["red", "blue"][i % 2], "word " * (1 + i % 4)) for i in range(200)], ddl
    )
    same = spark.createDataFrame(
        [(i, "a", ["red", "blue"][i % 2], "word " * (1 + i % 4)) for i in range(100)], ddl
    )
    moved = spark.createDataFrame(
        [(i, "a", "green", "a much longer note " * 5) for i in range(100)], ddl
    )
    steady = drift_stats(same, reference, spec, [200])["psi"]
    drifted = drift_stats(moved, reference, spec, [200])["psi"]
    assert steady["colour"] < 0.01 and steady["note"] < 0.01
    assert drifted["colour"] > 1 and drifted["note"] > 1
