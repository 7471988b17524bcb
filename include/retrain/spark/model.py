"""The model: one Spark PipelineModel from label index to label name.

Each feature type becomes stages of the pipeline (docs/spec.md, "Feature types"): numeric and
vector values are imputed and standardised, categories indexed and one-hot encoded (an unseen
or missing category gets a slot of its own), text tokenized into words and n-grams and counted
(TF-IDF by default). The transforms and the network are saved together, so scoring applies
exactly the training transforms, and the label mapping (index -> class name) travels inside.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyspark.ml import Estimator, Pipeline, PipelineModel, Transformer
from pyspark.ml.classification import MultilayerPerceptronClassifier
from pyspark.ml.feature import (
    IDF,
    CountVectorizer,
    Imputer,
    IndexToString,
    NGram,
    Normalizer,
    OneHotEncoder,
    RegexTokenizer,
    SQLTransformer,
    StandardScaler,
    StopWordsRemover,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from retrain.errors import DataRejected
from retrain.spark.trainer import AdamMLPClassifier
from retrain.spec import Spec, quote


class ModelError(DataRejected):
    """The training data cannot make a model (e.g. a single class): a retry would fail alike."""


LABEL_INDEX = "label_index"
PREDICTED_LABEL = "predicted_label"
FEATURES = "features"
IS_VALIDATION = "is_validation"  # the rows that stop training early, not fitted on


def vector_length(train: DataFrame, column: str) -> int:
    """A vector feature's length: its longest array in the training rows."""
    longest = train.agg(F.max(F.size(F.col(quote(column))))).first()[0]
    if not longest or longest < 1:
        raise ModelError(f"vector feature {column!r} has no values in the training rows")
    return longest


def _text_stages(spec: Spec, source: str, out: str) -> list:
    """Tokens -> (stop words out) -> n-grams -> term counts -> (IDF) -> unit length."""
    text = spec.text
    stages: list = [
        RegexTokenizer(
            inputCol=source,
            outputCol=f"{out}_tokens",
            pattern=text.token_pattern,
            minTokenLength=text.min_token_length,
        )
    ]
    words = f"{out}_tokens"
    if text.stop_words == "english":
        stages.append(StopWordsRemover(inputCol=words, outputCol=f"{out}_words"))
        words = f"{out}_words"
    grams = [words]
    for n in range(2, text.ngrams + 1):
        stages.append(NGram(n=n, inputCol=words, outputCol=f"{out}_{n}grams"))
        grams.append(f"{out}_{n}grams")
    counted = f"{out}_counts"
    stages += [
        SQLTransformer(
            statement=f"SELECT *, concat({', '.join(grams)}) AS {out}_terms FROM __THIS__"
        ),
        CountVectorizer(
            inputCol=f"{out}_terms",
            outputCol=counted,
            vocabSize=text.vocabulary_size,
            minDF=float(text.min_doc_freq),
        ),
    ]
    if text.weighting == "tfidf":
        stages.append(IDF(inputCol=counted, outputCol=f"{out}_tfidf"))
        counted = f"{out}_tfidf"
    stages.append(Normalizer(inputCol=counted, outputCol=out, p=2.0))
    return stages


def feature_stages(train: DataFrame, spec: Spec) -> list:
    """The unfitted stages from the spec's feature columns to one `features` vector.

    ML stages parse column names, so every spec column gets a plain alias first.
    """
    aliases, numbers, parts, stages = [], [], [], []
    for i, column in enumerate(spec.feature_columns):
        kind, name = spec.feature_type(column), quote(column)
        if kind == "numeric":
            aliases.append(f"{name} AS _num_{i}")
            numbers.append(f"_num_{i}")
        elif kind == "vector":
            # One number per position; a shorter array's missing positions are imputed.
            for k in range(vector_length(train, column)):
                aliases.append(f"try_element_at({name}, {k + 1}) AS _vec_{i}_{k}")
                numbers.append(f"_vec_{i}_{k}")
        elif kind == "categorical":
            aliases.append(f"{name} AS _cat_{i}")
            stages += [
                StringIndexer(
                    inputCol=f"_cat_{i}", outputCol=f"_cat_{i}_index", handleInvalid="keep"
                ),
                OneHotEncoder(
                    inputCol=f"_cat_{i}_index", outputCol=f"_cat_{i}_onehot", dropLast=False
                ),
            ]
            parts.append(f"_cat_{i}_onehot")
        else:  # text
            aliases.append(f"coalesce({name}, '') AS _text_{i}")
            stages += _text_stages(spec, f"_text_{i}", f"_text_{i}_vector")
            parts.append(f"_text_{i}_vector")
    if numbers:
        imputed = [f"{n}__imputed" for n in numbers]
        stages += [
            Imputer(inputCols=numbers, outputCols=imputed, strategy="mean"),
            VectorAssembler(inputCols=imputed, outputCol="_numbers_raw"),
            StandardScaler(inputCol="_numbers_raw", outputCol="_numbers", withMean=True),
        ]
        parts.insert(0, "_numbers")
    select = SQLTransformer(statement=f"SELECT *, {', '.join(aliases)} FROM __THIS__")
    return [select, *stages, VectorAssembler(inputCols=parts, outputCol=FEATURES)]


def input_layout(stages: list[Transformer]) -> list[list[str]]:
    """The fitted vocabularies and category lists: equal layouts give equal input positions."""
    layout = []
    for stage in stages:
        if hasattr(stage, "vocabulary"):
            layout.append(list(stage.vocabulary))
        elif hasattr(stage, "labels"):
            layout.append(list(stage.labels))
    return layout


def prepare(
    train: DataFrame, spec: Spec, validation: DataFrame | None = None
) -> tuple[PipelineModel, DataFrame]:
    """Fit the label index and the feature transforms on the training rows; return them and the
    network's input (label index, feature vector, validation flag).

    The input holds the training rows and, for the adam solver's early stopping, the validation
    rows of classes the training rows know. MLlib's solvers pass over the training rows
    hundreds of times, so theirs is cached with a partition per core; the caller unpersists it.
    """
    label_indexer = StringIndexer(
        inputCol=spec.label_column, outputCol=LABEL_INDEX, stringOrderType="alphabetAsc"
    )
    transforms = Pipeline(stages=[label_indexer, *feature_stages(train, spec)]).fit(train)
    labels = transforms.stages[0].labels
    if len(labels) < 2:
        raise ModelError(f"training rows of {spec.name} hold {len(labels)} class(es); need 2+")
    rows = train.withColumn(IS_VALIDATION, F.lit(False))
    if validation is not None and spec.model.solver == "adam":
        known = F.col(quote(spec.label_column)).cast("string").isin(list(labels))
        rows = rows.unionByName(validation.filter(known).withColumn(IS_VALIDATION, F.lit(True)))
    prepared = transforms.transform(rows).select(LABEL_INDEX, FEATURES, IS_VALIDATION)
    if spec.model.solver == "adam":
        return transforms, prepared  # the trainer reads it once, shuffled across its tasks
    # Every core works on each pass only if the input has a partition per core.
    cores = train.sparkSession.sparkContext.defaultParallelism
    if prepared.rdd.getNumPartitions() < cores:
        prepared = prepared.repartition(cores)
    return transforms, prepared.cache()


def network_for(spec: Spec, layers: list[int]) -> Estimator:
    """The network's estimator for the spec's solver; both fit MLlib's model."""
    model = spec.model
    if model.solver == "adam":
        return AdamMLPClassifier(
            labelCol=LABEL_INDEX,
            featuresCol=FEATURES,
            validationIndicatorCol=IS_VALIDATION,
            layers=layers,
            batchSize=model.batch_size,
            learningRate=model.learning_rate,
            maxEpochs=model.max_epochs,
            weightDecay=model.weight_decay,
            patience=model.patience,
            tol=model.tol,
            classWeights=model.class_weights,
            seed=model.seed,
        )
    return MultilayerPerceptronClassifier(
        labelCol=LABEL_INDEX,
        featuresCol=FEATURES,
        layers=layers,
        solver=model.solver,
        maxIter=model.max_iter,
        stepSize=model.step_size,
        tol=model.tol,
        blockSize=model.block_size,
        seed=model.seed,
    )


def assemble(transforms: PipelineModel, network: Transformer) -> PipelineModel:
    """The saved model: transforms, network, and the index -> class name mapping."""
    labels = list(transforms.stages[0].labels)
    to_names = IndexToString(inputCol="prediction", outputCol=PREDICTED_LABEL, labels=labels)
    return PipelineModel([*transforms.stages, network, to_names])


def fit_pipeline(
    train: DataFrame,
    spec: Spec,
    warm_from: PipelineModel | None = None,
    validation: DataFrame | None = None,
) -> tuple[PipelineModel, bool]:
    """Fit the whole pipeline on the training rows with the spec's model settings.

    `validation` rows stop the adam solver early (its best epoch is kept). With `warm_from`
    (the champion) of the same classes, layers and input layout, the network starts from its
    weights instead of random ones. Returns the model and whether it was warm-started.
    """
    transforms, prepared = prepare(train, spec, validation)
    try:
        labels = list(transforms.stages[0].labels)
        layers = [prepared.first()[FEATURES].size, *spec.model.hidden_layers, len(labels)]
        network = network_for(spec, layers)
        warm = (
            warm_from is not None
            and labels_of(warm_from) == labels
            and list(warm_from.stages[-2].getLayers()) == layers
            and input_layout(warm_from.stages[1:-2]) == input_layout(transforms.stages[1:])
        )
        if warm:
            network.setInitialWeights(warm_from.stages[-2].weights)
        fitted = network.fit(prepared)
    finally:
        prepared.unpersist()
    return assemble(transforms, fitted), warm


def training_history(model: PipelineModel) -> dict[str, Any]:
    """The loss per epoch (adam: training and validation, the kept epoch and why training
    stopped) or per L-BFGS/gd iteration, of a model fitted in this process."""
    network = model.stages[-2]
    history = getattr(network, "training_history", None)
    if history is not None:
        return {"unit": "epoch", **dataclasses.asdict(history)}
    losses = list(network.summary().objectiveHistory)
    return {"unit": "iteration", "train_loss": losses, "validation_loss": [],
            "best_epoch": None, "stopped": f"{len(losses)} iterations"}  # fmt: skip


def labels_of(model: PipelineModel) -> list[str]:
    """Class names in the order of the model's probability vector."""
    return list(model.stages[0].labels)
