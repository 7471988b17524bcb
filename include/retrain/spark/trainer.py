"""A Spark ML estimator that trains `retrain.spark.network` by mini-batch Adam and returns MLlib's
`MultilayerPerceptronClassificationModel`, so saving, scoring, signing and warm start are
MLlib's own.

The whole fit is one Spark job where the cluster allows it: a barrier stage in which each task
holds its share of the rows (shuffled across tasks first), runs an epoch of Adam on it, then the
tasks average their weights and Adam's moments (`BarrierTaskContext.allGather`) and measure the
averaged weights' loss on their validation rows. Every task sees the same averages, so all
take the same early-stopping decision. Where barrier mode is refused (dynamic allocation), the
same rounds run as one Spark job per epoch with the averaging on the driver. Small data is one
task, which is plain sequential Adam.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Estimator
from pyspark.ml.classification import MultilayerPerceptronClassificationModel
from pyspark.ml.common import _py2java
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import Vector, Vectors
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasFeaturesCol,
    HasLabelCol,
    HasSeed,
    HasTol,
    HasValidationIndicatorCol,
)
from pyspark.ml.util import Identifiable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.errors import DataRejected
from retrain.spark.exchange import Alone, ExchangeError, Peers, Relay, Ticket
from retrain.spark.network import (
    DTYPE,
    Adam,
    Network,
    Rows,
    Settings,
    adam_epoch,
    balanced_class_weights,
)

log = logging.getLogger(__name__)
# Fewer rows than this per task and averaging costs more accuracy than the second core gains.
ROWS_PER_TASK = 100_000
MIN_STEPS_PER_EPOCH = 20
# validation loss, weight, rows; training loss, weight, rows; Adam's step; epoch seconds
_SCALARS = 8
_RESULT_SCHEMA = "weights binary, history string"


class TrainingDiverged(DataRejected):
    """The weights stopped being finite numbers: the learning rate is too high for the data
    (with fixed seeds a retry diverges the same way)."""


@dataclass
class History:
    """What the fit did, epoch by epoch: the run record and the report show it."""

    train_loss: list[float] = field(default_factory=list)  # per epoch, measured while training
    validation_loss: list[float] = field(default_factory=list)  # after 0, 1, ... epochs
    best_epoch: int = 0
    stopped: str = ""
    train_rows: int = 0
    validation_rows: int = 0
    tasks: int = 1
    sync: str = "barrier"  # one task | barrier (one job) | jobs (one job per epoch)
    diverged: bool = False
    epoch_seconds: float = 0.0  # in Adam's epochs (the slowest task's), not data or sync


@dataclass(frozen=True)
class _Config:
    """Everything a task needs, pickled into the Spark job."""

    layers: tuple[int, ...]
    settings: Settings
    max_epochs: int
    patience: int
    tol: float
    seed: int
    class_weights: tuple[float, ...] | None


class _EarlyStopping:
    """Keeps the weights of the lowest validation loss; stops after `patience` epochs in which
    the loss did not fall by more than `tol` (as Keras' EarlyStopping with restored weights)."""

    def __init__(self, config: _Config, history: History) -> None:
        self.config, self.history = config, history
        self.best_loss, self.best_weights = math.inf, None
        self.reference, self.improved_at = math.inf, 0

    def observe(
        self, epoch: int, validation: float | None, train: float | None, weights: np.ndarray
    ) -> bool:
        """Record the round that measured `weights` (after `epoch` epochs) and trained once
        more; True when training should stop."""
        history, config = self.history, self.config
        if train is not None:
            history.train_loss.append(train)
        if validation is not None:
            history.validation_loss.append(validation)
        for value in (validation, train):
            if value is not None and not math.isfinite(value):
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1}: the loss became {value} with "
                    f"learning_rate {config.settings.learning_rate}; lower model.learning_rate "
                    "or look for extreme feature values"
                )
        if validation is None:  # no validation rows: the last weights are the model
            self.best_weights, history.best_epoch = weights, epoch
        else:
            if validation < self.best_loss:
                self.best_loss, self.best_weights, history.best_epoch = validation, weights, epoch
            if validation < self.reference - config.tol:
                self.reference, self.improved_at = validation, epoch
            if epoch - self.improved_at >= config.patience:
                history.stopped = (
                    f"early stopping: validation loss did not fall by more than {config.tol:g} "
                    f"for {config.patience} epochs; kept epoch {history.best_epoch}"
                )
                return True
        if epoch >= config.max_epochs:
            history.stopped = f"max_epochs ({config.max_epochs}) reached; kept epoch " + str(
                history.best_epoch
            )
            return True
        return False


def _pack(scalars: list[float], state: Adam) -> bytes:
    vectors = np.concatenate([state.weights, state.m, state.v])
    return np.asarray(scalars, np.float64).tobytes() + vectors.tobytes()


def _unpack(message: bytes) -> tuple[np.ndarray, np.ndarray]:
    cut = _SCALARS * 8
    return np.frombuffer(message[:cut], np.float64), np.frombuffer(message[cut:], DTYPE)


def _combine(messages: list[bytes], size: int) -> tuple[float | None, float | None, Adam, dict]:
    """Sum the tasks' losses, average their weights and moments (equal shares, in task order so
    every task computes the same floats)."""
    scalars, vectors = zip(*(_unpack(m) for m in messages), strict=True)
    totals = np.sum(scalars, axis=0)
    mean = np.mean(np.stack(vectors), axis=0, dtype=np.float64).astype(DTYPE)
    state = Adam(mean[:size].copy(), mean[size : 2 * size].copy(), mean[2 * size :].copy())
    state.step = int(round(totals[6] / len(messages)))
    validation = float(totals[0] / totals[1]) if totals[1] else None
    train = float(totals[3] / totals[4]) if totals[4] else None
    counts = {
        "validation_rows": int(totals[2]),
        "train_rows": int(totals[5]),
        "seconds": float(max(s[7] for s in scalars)),
    }
    return validation, train, state, counts


def batch_size_for(config: _Config, rows: int) -> int:
    """The spec's batch size, smaller for small data: every epoch takes at least
    MIN_STEPS_PER_EPOCH steps, so early stopping has something to stop and a few hundred rows
    still learn."""
    return max(1, min(config.settings.batch_size, math.ceil(rows / MIN_STEPS_PER_EPOCH)))


def _local_round(
    config: _Config, state: Adam, parts: dict[str, Rows], *, epoch: int, task: int
) -> bytes:
    """The loss of `state`'s weights on this task's validation rows, then (unless the epochs are
    used up) one epoch of Adam from them on its training rows; packed for averaging."""
    net, validation, train = Network(config.layers), parts["validation"], parts["train"]
    v_loss, v_weight = net.loss(state.weights, validation)
    t_loss = t_weight = 0.0
    state = Adam(state.weights.copy(), state.m.copy(), state.v.copy(), state.step)
    started = time.perf_counter()
    if epoch < config.max_epochs and len(train):
        rng = np.random.default_rng([config.seed, task, epoch])
        settings = replace(config.settings, batch_size=batch_size_for(config, len(train)))
        t_loss, t_weight = adam_epoch(net, state, train, settings, rng)
    seconds = time.perf_counter() - started
    return _pack(
        [v_loss, v_weight, len(validation), t_loss, t_weight, len(train), state.step, seconds],
        state,
    )


def _rounds(
    config: _Config, initial: np.ndarray, round_of: Callable[[Adam, int], list[bytes]]
) -> tuple[np.ndarray, History]:
    """Epochs until early stopping or max_epochs; `round_of(state, epoch)` gives every task's
    packed round. Returns the best weights and the history."""
    net, history = Network(config.layers), History()
    stopping, state = _EarlyStopping(config, history), Adam.start(initial)
    try:
        for epoch in range(config.max_epochs + 1):
            validation, train, averaged, counts = _combine(round_of(state, epoch), net.size)
            history.train_rows = counts["train_rows"]
            history.validation_rows = counts["validation_rows"]
            history.epoch_seconds += counts["seconds"]
            if stopping.observe(epoch, validation, train, state.weights):
                break
            if not np.all(np.isfinite(averaged.weights)):
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1}: the weights are no longer finite "
                    f"with learning_rate {config.settings.learning_rate}; lower "
                    "model.learning_rate"
                )
            state = averaged
    except TrainingDiverged as err:  # every task diverges alike: report it, do not crash
        history.stopped, history.diverged = str(err), True
        return np.zeros(0, DTYPE), history
    return stopping.best_weights, history


def _task_data(batches: Iterator[Any], config: _Config) -> dict[str, Rows]:
    """This task's rows as float32 matrices: training and validation apart."""
    xs, ys, flags = [], [], []
    width = config.layers[0]
    for batch in batches:
        if batch.num_rows:
            xs.append(batch.column(1).flatten().to_numpy(zero_copy_only=False))
            ys.append(batch.column(0).to_numpy(zero_copy_only=False))
            flags.append(batch.column(2).to_numpy(zero_copy_only=False))
    x = np.concatenate(xs).astype(DTYPE, copy=False).reshape(-1, width) if xs else None
    y = np.concatenate(ys).astype(np.int64) if ys else np.zeros(0, np.int64)
    is_validation = np.concatenate(flags).astype(bool) if flags else np.zeros(0, bool)
    if x is None:
        x = np.zeros((0, width), DTYPE)
    weights = np.asarray(config.class_weights, DTYPE) if config.class_weights else None
    parts = {}
    for name, rows in (("train", ~is_validation), ("validation", is_validation)):
        part_y = y[rows]
        parts[name] = Rows(x[rows], part_y, weights[part_y] if weights is not None else None)
    return parts


def _result_batch(weights: np.ndarray, history: History) -> Any:
    import pyarrow as pa

    return pa.RecordBatch.from_pydict(
        {"weights": [weights.tobytes()], "history": [json.dumps(asdict(history))]},
        schema=pa.schema([("weights", pa.binary()), ("history", pa.string())]),
    )


def _message_size(config: _Config) -> int:
    """Bytes of one task's packed round (`_pack`): the scalars, then weights and both moments."""
    return _SCALARS * 8 + 3 * Network(config.layers).size * np.dtype(DTYPE).itemsize


def _fit_in_tasks(
    config: _Config, initial: np.ndarray, ticket: Ticket | None
) -> Callable[[Iterator[Any]], Iterator]:
    """The whole fit in each task; the tasks exchange rounds through the driver's relay."""

    def fit_in_task(batches: Iterator[Any]) -> Iterator[Any]:
        from pyspark import TaskContext
        from threadpoolctl import threadpool_limits

        task = TaskContext.get().partitionId()
        peers = Peers(ticket, task) if ticket else Alone()
        try:
            with threadpool_limits(1):  # Spark runs a task per core; BLAS threads would fight
                parts = _task_data(batches, config)
                weights, history = _rounds(
                    config,
                    initial,
                    lambda state, epoch: peers.all_gather(
                        _local_round(config, state, parts, epoch=epoch, task=task)
                    ),
                )
            peers.finish()  # every task stops in the same round: the relay's sign of success
        finally:
            peers.close()
        if task == 0:
            yield _result_batch(weights, history)

    return fit_in_task


def _epoch_job(config: _Config, state: Any, epoch: int) -> Callable[[Iterator[Any]], Iterator]:
    def round_in_task(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            parts = _task_data(batches, config)
            task = TaskContext.get().partitionId()
            message = _local_round(config, state.value, parts, epoch=epoch, task=task)
        yield pa.RecordBatch.from_pydict({"message": [message]})

    return round_in_task


class AdamMLPClassifier(
    Estimator, HasFeaturesCol, HasLabelCol, HasSeed, HasTol, HasValidationIndicatorCol
):
    """Mini-batch Adam for MLlib's multilayer perceptron (sigmoid hidden layers, softmax output).

    `fit` returns a `MultilayerPerceptronClassificationModel` holding the weights of the epoch
    with the lowest validation loss (rows where `validationIndicatorCol` is true; without it,
    the last epoch's), and the fit's `History` as its `training_history` attribute.
    """

    layers = Param(Params._dummy(), "layers", "sizes of all layers, input to output",
                   TypeConverters.toListInt)  # fmt: skip
    batchSize = Param(Params._dummy(), "batchSize", "rows per Adam step", TypeConverters.toInt)
    learningRate = Param(Params._dummy(), "learningRate", "Adam's step size",
                         TypeConverters.toFloat)  # fmt: skip
    maxEpochs = Param(Params._dummy(), "maxEpochs", "passes over the training rows at most",
                      TypeConverters.toInt)  # fmt: skip
    weightDecay = Param(Params._dummy(), "weightDecay", "decoupled L2 weight decay (AdamW)",
                        TypeConverters.toFloat)  # fmt: skip
    patience = Param(Params._dummy(), "patience",
                     "epochs without a better validation loss before stopping",
                     TypeConverters.toInt)  # fmt: skip
    classWeights = Param(Params._dummy(), "classWeights", "none | balanced",
                         TypeConverters.toString)  # fmt: skip
    initialWeights = Param(Params._dummy(), "initialWeights", "start here, in MLlib's layout",
                           TypeConverters.toListFloat)  # fmt: skip
    numTasks = Param(Params._dummy(), "numTasks", "tasks that train together; 0: by rows",
                     TypeConverters.toInt)  # fmt: skip
    syncMode = Param(Params._dummy(), "syncMode",
                     "auto | barrier | jobs (one Spark job per epoch)",
                     TypeConverters.toString)  # fmt: skip

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        layers: list[int] | None = None,
        batchSize: int = 256,
        learningRate: float = 0.01,
        maxEpochs: int = 200,
        weightDecay: float = 1e-4,
        patience: int = 10,
        tol: float = 1e-6,
        classWeights: str = "none",
        seed: int = 42,
        validationIndicatorCol: str | None = None,
        initialWeights: list[float] | None = None,
        numTasks: int = 0,
        syncMode: str = "auto",
    ) -> None:
        super().__init__()
        self._setDefault(batchSize=256, learningRate=0.01, maxEpochs=200, weightDecay=1e-4,
                         patience=10, tol=1e-6, classWeights="none", seed=42, numTasks=0,
                         syncMode="auto")  # fmt: skip
        self._set(**self._input_kwargs)

    def setInitialWeights(self, value: Vector | list[float]) -> AdamMLPClassifier:  # noqa: N802
        """Start from these weights (a champion's, in MLlib's layout) instead of random ones."""
        values = value.toArray() if isinstance(value, Vector) else value
        return self._set(initialWeights=[float(v) for v in values])

    def _fit(self, dataset: DataFrame) -> MultilayerPerceptronClassificationModel:
        started = time.monotonic()
        layers = tuple(self.getOrDefault(self.layers))
        net = Network(layers)
        if self.isSet(self.initialWeights):
            initial = np.asarray(self.getOrDefault(self.initialWeights), DTYPE)
            if initial.shape != (net.size,):
                raise ValueError(f"initialWeights has {initial.size} values; {layers} needs "
                                 f"{net.size}")  # fmt: skip
        else:
            initial = net.initial_weights(self.getOrDefault(self.seed))
        frame = self._rows(dataset)
        spark = dataset.sparkSession
        config = _Config(
            layers=layers,
            settings=Settings(
                self.getOrDefault(self.batchSize),
                self.getOrDefault(self.learningRate),
                self.getOrDefault(self.weightDecay),
            ),  # fmt: skip
            max_epochs=self.getOrDefault(self.maxEpochs),
            patience=self.getOrDefault(self.patience),
            tol=self.getOrDefault(self.tol),
            seed=self.getOrDefault(self.seed),
            class_weights=self._class_weights(frame, layers[-1]),
        )
        tasks = self.getOrDefault(self.numTasks) or self._tasks_for(frame)
        # One task reads every partition in turn (no shuffle); several get a round-robin share
        # of every partition (a barrier stage needs its own partitions, made by a shuffle).
        frame = frame.coalesce(1) if tasks == 1 else frame.repartition(tasks)
        mode = self.getOrDefault(self.syncMode)
        if mode == "auto":
            dynamic = spark.conf.get("spark.dynamicAllocation.enabled", "false") == "true"
            mode = "jobs" if dynamic else "barrier"  # barrier stages refuse dynamic allocation
        if mode == "barrier":
            weights, history = self._fit_in_one_job(frame, config, initial, tasks)
        else:
            weights, history = self._fit_by_jobs(frame, config, initial)
        history.tasks = tasks
        history.sync = "one task" if tasks == 1 and mode == "barrier" else mode
        if history.diverged:
            raise TrainingDiverged(history.stopped)
        model = to_mllib(spark, layers, weights, self.getFeaturesCol(), self.getLabelCol())
        model.training_history = history
        log.info("trained %s in %.1f s with %d task(s) (%s): %s", list(layers),
                 time.monotonic() - started, tasks, history.sync, history.stopped)  # fmt: skip
        return model

    def _rows(self, dataset: DataFrame) -> DataFrame:
        """label index, features as float32 array, validation flag: what the tasks read."""
        flag = (
            F.col(self.getValidationIndicatorCol()).cast("boolean")
            if self.isDefined(self.validationIndicatorCol)
            and self.getOrDefault(self.validationIndicatorCol)
            else F.lit(False)
        )
        return dataset.select(
            F.col(self.getLabelCol()).cast("int").alias("y"),
            vector_to_array(F.col(self.getFeaturesCol()), "float32").alias("x"),
            flag.alias("is_validation"),
        )

    def _tasks_for(self, frame: DataFrame) -> int:
        cores = frame.sparkSession.sparkContext.defaultParallelism
        return max(1, min(cores, frame.count() // ROWS_PER_TASK))

    def _class_weights(self, frame: DataFrame, classes: int) -> tuple[float, ...] | None:
        choice = self.getOrDefault(self.classWeights)
        if choice == "none":
            return None
        if choice != "balanced":
            raise ValueError(f"classWeights must be none or balanced, got {choice!r}")
        counts = np.zeros(classes)
        for row in frame.filter(~F.col("is_validation")).groupBy("y").count().collect():
            counts[row["y"]] = row["count"]
        return tuple(balanced_class_weights(counts))

    def _fit_in_one_job(
        self, frame: DataFrame, config: _Config, initial: np.ndarray, tasks: int
    ) -> tuple[np.ndarray, History]:
        """One Spark job: a barrier stage (its tasks run together) exchanging through a relay;
        one task alone needs neither."""
        if tasks == 1:
            fit = frame.mapInArrow(_fit_in_tasks(config, initial, None), _RESULT_SCHEMA)
            return _result(fit.collect())
        with _relay(frame.sparkSession, tasks, _message_size(config)) as relay:
            fit = frame.mapInArrow(
                _fit_in_tasks(config, initial, relay.ticket), _RESULT_SCHEMA, barrier=True
            )
            try:
                return _result(fit.collect())
            except Exception as err:
                if relay.error:  # the cause, where Spark's error shows only its effects
                    raise ExchangeError(
                        f"the {tasks} training tasks could not finish their exchange: "
                        f"{relay.error}"
                    ) from err
                raise

    def _fit_by_jobs(
        self, frame: DataFrame, config: _Config, initial: np.ndarray
    ) -> tuple[np.ndarray, History]:
        """The same rounds as the barrier stage, one Spark job per epoch, averaged here."""
        frame = frame.cache()
        context = frame.sparkSession.sparkContext

        def round_of(state: Adam, epoch: int) -> list[str]:
            shared = context.broadcast(state)
            try:
                job = frame.mapInArrow(_epoch_job(config, shared, epoch), "message binary")
                return [row.message for row in job.collect()]
            finally:
                shared.unpersist()

        try:
            return _rounds(config, initial, round_of)
        finally:
            frame.unpersist()


def _result(rows: list[Any]) -> tuple[np.ndarray, History]:
    """The weights and history task 0 returned."""
    (row,) = rows
    return np.frombuffer(row.weights, DTYPE), History(**json.loads(row.history))


def _relay(spark: SparkSession, tasks: int, message_size: int) -> Relay:
    """A relay listening only where the tasks reach the driver: loopback for a local master,
    else the driver's bind address (as Spark's own driver endpoints)."""
    context = spark.sparkContext
    if context.master.startswith("local"):
        return Relay(tasks, "127.0.0.1", "127.0.0.1", message_size)
    conf = context.getConf()
    host = conf.get("spark.driver.host")
    return Relay(tasks, conf.get("spark.driver.bindAddress", host), host, message_size)


def to_mllib(
    spark: SparkSession, layers: tuple[int, ...], weights: np.ndarray, features: str, label: str
) -> MultilayerPerceptronClassificationModel:
    """MLlib's model holding exactly these weights.

    Built with the constructor MLlib's own reader uses to load a saved model: no Spark job,
    where a zero-iteration `MultilayerPerceptronClassifier(initialWeights=...).fit` costs
    ~0.6 s of jobs (a test holds the two equal). MLlib never checks the weights' length
    against the layers, so it is checked here.
    """
    expected = Network(layers).size
    if weights.shape != (expected,):
        raise ValueError(f"{len(weights)} weights for layers {list(layers)}; need {expected}")
    context = spark.sparkContext
    java_model = (
        context._jvm.org.apache.spark.ml.classification.MultilayerPerceptronClassificationModel(
            Identifiable._randomUID(), _py2java(context, Vectors.dense(weights.astype(np.float64)))
        )
    )
    model = MultilayerPerceptronClassificationModel(java_model)
    model._set(layers=list(layers), featuresCol=features, labelCol=label)
    model._transfer_params_to_java()
    return model
