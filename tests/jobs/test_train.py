from __future__ import annotations

import pytest

from retrain.model import ModelError, fit_pipeline, labels_of, loss_history
from tests.helpers import toy_spec


def blobs(spark, n: int = 60):
    """Two well separated classes, with a missing value to exercise the imputer."""
    rows = [(i, "left", -2.0 + (i % 5) * 0.1, 1.0) for i in range(n)]
    rows += [(n + i, "right", 2.0 + (i % 5) * 0.1, -1.0) for i in range(n)]
    rows.append((2 * n, "left", None, 1.0))
    return spark.createDataFrame(rows, "id long, label string, x double, y double")


def test_pipeline_learns_and_keeps_label_names(spark):
    data = blobs(spark)
    model, warm = fit_pipeline(data, toy_spec())
    assert warm is False
    assert labels_of(model) == ["left", "right"]
    predictions = model.transform(data).select("label", "predicted_label").collect()
    accuracy = sum(p.label == p.predicted_label for p in predictions) / len(predictions)
    assert accuracy == 1.0
    losses = loss_history(model)
    assert len(losses) >= 2
    assert losses[-1] < losses[0]


def test_pipeline_scores_rows_without_a_label(spark):
    model, _ = fit_pipeline(blobs(spark), toy_spec())
    unlabeled = spark.createDataFrame(
        [(1, -2.0, 1.0), (2, 2.0, -1.0)], "id long, x double, y double"
    )
    assert [r.predicted_label for r in model.transform(unlabeled).orderBy("id").collect()] == [
        "left",
        "right",
    ]


def test_same_seed_same_model(spark):
    data = blobs(spark)
    first = fit_pipeline(data, toy_spec())[0].stages[-2].weights.toArray()
    second = fit_pipeline(data, toy_spec())[0].stages[-2].weights.toArray()
    assert (first == second).all()


def test_single_class_is_refused(spark):
    data = blobs(spark).filter("label = 'left'")
    with pytest.raises(ModelError, match="1 class"):
        fit_pipeline(data, toy_spec())


def test_warm_start_reuses_matching_champion_weights(spark):
    data = blobs(spark)
    champion, _ = fit_pipeline(data, toy_spec())
    cold_iterations = len(loss_history(champion))
    warm_model, warm = fit_pipeline(data, toy_spec(), warm_from=champion)
    assert warm is True
    # starting at the optimum, l-bfgs needs far fewer iterations than from random weights
    assert len(loss_history(warm_model)) < cold_iterations
    assert loss_history(warm_model)[0] < loss_history(champion)[0]


def test_warm_start_is_skipped_when_layers_differ(spark):
    data = blobs(spark)
    champion, _ = fit_pipeline(data, toy_spec())
    wider = toy_spec(model={"hidden_layers": [6], "max_iter": 100, "seed": 1})
    _, warm = fit_pipeline(data, wider, warm_from=champion)
    assert warm is False
