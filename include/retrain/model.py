"""The model: one Spark PipelineModel from label index to label name.

Preprocessing (imputation, scaling) and the network are fitted and saved together, so scoring
applies exactly the training transforms, and the label mapping (index -> class name) travels
inside the model.
"""

from __future__ import annotations

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import MultilayerPerceptronClassifier
from pyspark.ml.feature import (
    Imputer,
    IndexToString,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import DataFrame

from retrain.spec import Spec


class ModelError(ValueError):
    """The training data cannot make a model (e.g. a single class)."""


LABEL_INDEX = "label_index"
PREDICTED_LABEL = "predicted_label"


def fit_pipeline(train: DataFrame, spec: Spec) -> PipelineModel:
    """Fit the whole pipeline on the training rows with the spec's model settings."""
    indexer = StringIndexer(
        inputCol=spec.label_column, outputCol=LABEL_INDEX, stringOrderType="alphabetAsc"
    ).fit(train)
    labels = indexer.labels
    if len(labels) < 2:
        raise ModelError(f"training rows of {spec.name} hold {len(labels)} class(es); need 2+")
    columns = list(spec.feature_columns)
    imputed = [f"{c}__imputed" for c in columns]
    model = spec.model
    stages = [
        indexer,
        Imputer(inputCols=columns, outputCols=imputed, strategy="mean"),
        VectorAssembler(inputCols=imputed, outputCol="raw_features"),
        StandardScaler(inputCol="raw_features", outputCol="features", withMean=True),
        MultilayerPerceptronClassifier(
            labelCol=LABEL_INDEX,
            layers=[len(columns), *model.hidden_layers, len(labels)],
            solver=model.solver,
            maxIter=model.max_iter,
            stepSize=model.step_size,
            tol=model.tol,
            blockSize=model.block_size,
            seed=model.seed,
        ),
        IndexToString(inputCol="prediction", outputCol=PREDICTED_LABEL, labels=labels),
    ]
    return Pipeline(stages=stages).fit(train)


def loss_history(model: PipelineModel) -> list[float]:
    """The MLP's objective per iteration."""
    return list(model.stages[-2].summary().objectiveHistory)


def labels_of(model: PipelineModel) -> list[str]:
    """Class names in the order of the model's probability vector."""
    return list(model.stages[0].labels)
