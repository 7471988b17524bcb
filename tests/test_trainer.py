"""The Spark estimator: one job, averaging across tasks, early stopping, MLlib's model."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import MultilayerPerceptronClassifier
from pyspark.ml.linalg import Vectors
from sklearn.datasets import load_digits
from sklearn.metrics import f1_score

from retrain.spark.network import Network
from retrain.spark.trainer import AdamMLPClassifier, TrainingDiverged, to_mllib

LAYERS = [64, 24, 10]
SPLITS = ["train", "train", "train", "validation", "test"]


@pytest.fixture(scope="module")
def digits(spark):
    """scikit-learn's 8x8 digits (real scans): features scaled to [0, 1], a 60/20/20 split."""
    data = load_digits()
    rows = [
        (float(label), Vectors.dense(image / 16.0), SPLITS[i % 5])
        for i, (image, label) in enumerate(zip(data.data, data.target, strict=True))
    ]
    frame = spark.createDataFrame(rows, ["label", "features", "split"]).cache()
    return {
        "fit": frame.filter("split != 'test'").selectExpr(
            "label", "features", "split = 'validation' AS is_validation"
        ),
        "test": frame.filter("split = 'test'"),
    }


def fit(frame, initial=None, **params):
    settings = {"layers": LAYERS, "learningRate": 0.01, "maxEpochs": 60, "patience": 8,
                "validationIndicatorCol": "is_validation", "seed": 3} | params  # fmt: skip
    estimator = AdamMLPClassifier(**settings)
    if initial is not None:
        estimator.setInitialWeights(initial)
    return estimator.fit(frame)


def weighted_f1(model, test) -> float:
    rows = model.transform(test).select("label", "prediction").collect()
    return f1_score([r.label for r in rows], [r.prediction for r in rows], average="weighted")


def test_learns_digits_and_exports_mllibs_model(spark, digits):
    model = fit(digits["fit"], numTasks=1)
    history = model.training_history
    assert type(model).__name__ == "MultilayerPerceptronClassificationModel"
    assert list(model.getLayers()) == LAYERS
    assert history.tasks == 1
    assert history.train_rows + history.validation_rows == digits["fit"].count()
    assert weighted_f1(model, digits["test"]) > 0.93
    # the exported model's probabilities are the network's own forward pass on the same rows
    rows = model.transform(digits["test"]).select("features", "probability").collect()
    x = np.array([r.features.toArray() for r in rows])
    mllib = np.array([r.probability.toArray() for r in rows])
    ours = Network(LAYERS).probabilities(model.weights.toArray(), x)
    np.testing.assert_allclose(mllib, ours, rtol=0, atol=1e-12)


def test_two_tasks_average_to_the_one_task_f1(spark, digits):
    alone, together = fit(digits["fit"], numTasks=1), fit(digits["fit"], numTasks=2)
    assert (alone.training_history.tasks, together.training_history.tasks) == (1, 2)
    assert together.training_history.sync == "barrier"
    # each of two tasks takes half the steps an epoch; early stopping makes up with epochs
    assert weighted_f1(together, digits["test"]) >= weighted_f1(alone, digits["test"]) - 0.02


def test_one_job_per_epoch_computes_what_the_barrier_stage_does(spark, digits):
    barrier = fit(digits["fit"], numTasks=2, maxEpochs=4)
    jobs = fit(digits["fit"], numTasks=2, maxEpochs=4, syncMode="jobs")
    assert jobs.training_history.sync == "jobs"
    assert jobs.training_history.validation_loss == barrier.training_history.validation_loss
    assert (jobs.weights.toArray() == barrier.weights.toArray()).all()


def test_early_stopping_keeps_the_best_epoch(spark, digits):
    # a wide net with a high rate overfits 300 rows fast: the validation loss turns up
    small = digits["fit"].limit(400)
    model = fit(small, layers=[64, 64, 10], learningRate=0.05, weightDecay=0.0, patience=5)
    history = model.training_history
    losses = history.validation_loss
    assert history.stopped.startswith("early stopping")
    assert history.best_epoch < len(losses) - 1
    assert losses[history.best_epoch] == min(losses) < losses[-1]
    # the model holds the kept epoch's weights: its validation loss is the recorded minimum
    rows = model.transform(small.filter("is_validation")).select("label", "probability")
    log_loss = -np.mean([np.log(r.probability[int(r.label)]) for r in rows.collect()])
    assert log_loss == pytest.approx(min(losses), rel=1e-4)


def test_warm_start_begins_at_the_given_weights(spark, digits):
    champion = fit(digits["fit"], numTasks=1)
    warm = fit(digits["fit"], initial=champion.weights, numTasks=1, maxEpochs=2)
    first = warm.training_history.validation_loss[0]
    assert first == pytest.approx(min(champion.training_history.validation_loss), rel=1e-5)


def test_balanced_class_weights_lift_a_rare_class(spark):
    rng = np.random.default_rng(5)
    rows = []
    for i in range(3000):
        rare = i % 20 == 0
        center = 0.6 if rare else -0.6
        features = Vectors.dense(rng.normal(center, 1.0, 2))
        rows.append((1.0 if rare else 0.0, features, i % 5 == 1))
    frame = spark.createDataFrame(rows, ["label", "features", "is_validation"])

    def rare_recall(weights: str) -> float:
        model = fit(frame, layers=[2, 4, 2], classWeights=weights, maxEpochs=30)
        scored = model.transform(frame.filter("label = 1.0")).select("prediction").collect()
        return sum(r.prediction == 1.0 for r in scored) / len(scored)

    plain, balanced = rare_recall("none"), rare_recall("balanced")
    assert plain < 0.2
    assert balanced > 0.6


def test_fewer_rows_than_one_batch_still_train(spark):
    rows = [(float(i % 2), Vectors.dense([1.0 if i % 2 else -1.0, 0.5])) for i in range(6)]
    frame = spark.createDataFrame(rows, ["label", "features"])
    model = AdamMLPClassifier(layers=[2, 3, 2], learningRate=0.1, maxEpochs=100).fit(frame)
    assert model.training_history.train_rows == 6
    assert [r.prediction for r in model.transform(frame).collect()] == [r[0] for r in rows]


def test_divergence_stops_with_the_epoch_and_rate(spark):
    # beyond float32's range: the network computes inf - inf, and the loss becomes NaN
    huge = [(float(i % 2), Vectors.dense([1e300, -1e300])) for i in range(20)]
    frame = spark.createDataFrame(huge, ["label", "features"])
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch \d+.*learning_rate 0.5"):
        AdamMLPClassifier(layers=[2, 3, 2], learningRate=0.5, maxEpochs=5).fit(frame)


def test_export_equals_mllibs_zero_iteration_fit(spark):
    net = Network([3, 4, 2])
    weights = net.initial_weights(seed=7)
    ours = to_mllib(spark, (3, 4, 2), weights, "features", "label")
    frame = spark.createDataFrame(
        [(float(i % 2), Vectors.dense([i, -i, 0.5 * i])) for i in range(5)], ["label", "features"]
    )
    theirs = MultilayerPerceptronClassifier(
        layers=[3, 4, 2], maxIter=0, initialWeights=Vectors.dense(weights.astype(float))
    ).fit(frame)
    assert (ours.weights.toArray() == theirs.weights.toArray()).all()
    assert [r.probability for r in ours.transform(frame).collect()] == [
        r.probability for r in theirs.transform(frame).collect()
    ]
    with pytest.raises(ValueError, match="need 26"):
        to_mllib(spark, (3, 4, 2), weights[:-1], "features", "label")


def test_usable_as_a_pipeline_stage(spark, digits):
    pipeline = Pipeline(stages=[AdamMLPClassifier(layers=LAYERS, maxEpochs=3, seed=1)])
    model = pipeline.fit(digits["fit"])
    assert model.stages[0].training_history.train_rows == digits["fit"].count()
