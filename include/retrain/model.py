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
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import DataFrame

from retrain.spec import Spec, quote


class ModelError(ValueError):
    """The training data cannot make a model (e.g. a single class)."""


LABEL_INDEX = "label_index"
PREDICTED_LABEL = "predicted_label"


def fit_pipeline(
    train: DataFrame, spec: Spec, warm_from: PipelineModel | None = None
) -> tuple[PipelineModel, bool]:
    """Fit the whole pipeline on the training rows with the spec's model settings.

    With `warm_from` (the champion) of the same layers and classes, the network starts from its
    weights instead of random ones. Returns the model and whether it was warm-started.
    """
    indexer = StringIndexer(
        inputCol=spec.label_column, outputCol=LABEL_INDEX, stringOrderType="alphabetAsc"
    ).fit(train)
    labels = indexer.labels
    if len(labels) < 2:
        raise ModelError(f"training rows of {spec.name} hold {len(labels)} class(es); need 2+")
    # ML stages parse column names, so spec names with dots or backticks get plain aliases.
    aliases = [f"_feature_{i}" for i in range(len(spec.feature_columns))]
    select = ", ".join(
        f"{quote(c)} AS {a}" for c, a in zip(spec.feature_columns, aliases, strict=True)
    )
    imputed = [f"{a}__imputed" for a in aliases]
    model = spec.model
    layers = [len(aliases), *model.hidden_layers, len(labels)]
    network = MultilayerPerceptronClassifier(
        labelCol=LABEL_INDEX,
        layers=layers,
        solver=model.solver,
        maxIter=model.max_iter,
        stepSize=model.step_size,
        tol=model.tol,
        blockSize=model.block_size,
        seed=model.seed,
    )
    warm = (
        warm_from is not None
        and labels_of(warm_from) == labels
        and list(warm_from.stages[-2].getLayers()) == layers
    )
    if warm:
        network.setInitialWeights(warm_from.stages[-2].weights)
    stages = [
        indexer,
        SQLTransformer(statement=f"SELECT *, {select} FROM __THIS__"),
        Imputer(inputCols=aliases, outputCols=imputed, strategy="mean"),
        VectorAssembler(inputCols=imputed, outputCol="raw_features"),
        StandardScaler(inputCol="raw_features", outputCol="features", withMean=True),
        network,
        IndexToString(inputCol="prediction", outputCol=PREDICTED_LABEL, labels=labels),
    ]
    return Pipeline(stages=stages).fit(train), warm


def loss_history(model: PipelineModel) -> list[float]:
    """The MLP's objective per iteration."""
    return list(model.stages[-2].summary().objectiveHistory)


def labels_of(model: PipelineModel) -> list[str]:
    """Class names in the order of the model's probability vector."""
    return list(model.stages[0].labels)
