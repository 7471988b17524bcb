from __future__ import annotations

import pytest

from retrain.spark.model import ModelError, fit_pipeline, labels_of, training_history
from tests.helpers import toy_spec


def blobs(spark, n: int = 60, first_id: int = 0):
    """Two well separated classes, with a missing value to exercise the imputer."""
    rows = [(first_id + i, "left", -2.0 + (i % 5) * 0.1, 1.0) for i in range(n)]
    rows += [(first_id + n + i, "right", 2.0 + (i % 5) * 0.1, -1.0) for i in range(n)]
    rows.append((first_id + 2 * n, "left", None, 1.0))
    return spark.createDataFrame(rows, "id long, label string, x double, y double")


def test_pipeline_learns_and_keeps_label_names(spark):
    data = blobs(spark)
    model, warm = fit_pipeline(data, toy_spec())
    assert warm is False
    assert labels_of(model) == ["left", "right"]
    predictions = model.transform(data).select("label", "predicted_label").collect()
    accuracy = sum(p.label == p.predicted_label for p in predictions) / len(predictions)
    assert accuracy == 1.0
    history = training_history(model)
    assert history["unit"] == "epoch"
    assert len(history["train_loss"]) == toy_spec().model.max_epochs  # no validation rows
    assert history["train_loss"][-1] < history["train_loss"][0] / 5
    assert history["stopped"].startswith("max_epochs")


def test_validation_rows_stop_training_early(spark):
    spec = toy_spec(
        model={"hidden_layers": [4], "max_epochs": 500, "patience": 5, "tol": 0.01, "seed": 1}
    )
    model, _ = fit_pipeline(blobs(spark), spec, validation=blobs(spark, 20, first_id=500))
    history = training_history(model)
    trained = len(history["train_loss"])
    assert trained < 500
    assert history["stopped"].startswith("early stopping")
    # validation losses are of the weights after 0, 1, ... epochs: the kept epoch has the
    # lowest, and training stopped `patience` epochs after the last fall by more than tol
    losses = history["validation_loss"]
    assert min(losses) == losses[history["best_epoch"]]
    reference, last_fall = losses[0], 0
    for epoch, loss in enumerate(losses):
        if loss < reference - 0.01:
            reference, last_fall = loss, epoch
    assert last_fall > 0
    assert len(losses) - 1 - last_fall == 5


def test_validation_rows_of_unknown_classes_are_left_out(spark):
    validation = blobs(spark, 10, first_id=500).union(
        spark.createDataFrame(
            [(900, "middle", 0.0, 0.0)], "id long, label string, x double, y double"
        )
    )
    model, _ = fit_pipeline(blobs(spark), toy_spec(), validation=validation)
    assert training_history(model)["validation_rows"] == 21
    assert labels_of(model) == ["left", "right"]


def test_pipeline_scores_rows_without_a_label(spark):
    model, _ = fit_pipeline(blobs(spark), toy_spec())
    unlabeled = spark.createDataFrame(
        [(1, -2.0, 1.0), (2, 2.0, -1.0)], "id long, x double, y double"
    )
    assert [r.predicted_label for r in model.transform(unlabeled).orderBy("id").collect()] == [
        "left",
        "right",
    ]


@pytest.mark.parametrize("solver", ["adam", "l-bfgs"])
def test_same_seed_same_model(spark, solver):
    data, spec = blobs(spark), toy_spec(model={"hidden_layers": [4], "solver": solver})
    first = fit_pipeline(data, spec)[0].stages[-2].weights.toArray()
    second = fit_pipeline(data, spec)[0].stages[-2].weights.toArray()
    assert (first == second).all()


def test_single_class_is_refused(spark):
    data = blobs(spark).filter("label = 'left'")
    with pytest.raises(ModelError, match="1 class"):
        fit_pipeline(data, toy_spec())


def test_warm_start_continues_from_the_champion(spark):
    data, validation = blobs(spark), blobs(spark, 20, first_id=500)
    champion, _ = fit_pipeline(data, toy_spec(), validation=validation)
    warm_model, warm = fit_pipeline(data, toy_spec(), warm_from=champion, validation=validation)
    assert warm is True
    cold, hot = training_history(champion), training_history(warm_model)
    # epoch 0 of the warm fit is the champion's kept weights, already far below a cold start
    assert hot["validation_loss"][0] == pytest.approx(min(cold["validation_loss"]), rel=1e-5)
    assert hot["validation_loss"][0] < cold["validation_loss"][0] / 5


def test_lbfgs_warm_start_needs_fewer_iterations(spark):
    spec = toy_spec(model={"hidden_layers": [4], "solver": "l-bfgs", "max_iter": 100})
    champion, _ = fit_pipeline(blobs(spark), spec)
    warm_model, warm = fit_pipeline(blobs(spark), spec, warm_from=champion)
    assert warm is True
    cold, hot = (
        training_history(champion)["train_loss"],
        training_history(warm_model)["train_loss"],
    )
    assert len(hot) < len(cold)
    assert hot[0] < cold[0]


def test_warm_start_is_skipped_when_layers_differ(spark):
    data = blobs(spark)
    champion, _ = fit_pipeline(data, toy_spec())
    wider = toy_spec(model={"hidden_layers": [6], "seed": 1})
    _, warm = fit_pipeline(data, wider, warm_from=champion)
    assert warm is False
