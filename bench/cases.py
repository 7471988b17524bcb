"""One benchmark case per process: `python -m bench.cases CASE --data FILE ...` prints a JSON line.

Every case measures with time.perf_counter around the work only (data already written, Spark
session started, input cached where the method under test caches it), so the numbers compare
methods, not start-up; start-up is what the `dag` case measures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import public
from bench.teacher import CLASSES, FEATURES

HIDDEN = [64]  # every student: 64 -> 64 (sigmoid) -> 10 (softmax), MLlib's architecture
CHUNK = 10  # Spark students: L-BFGS iterations between two F1 checks
MAX_SECONDS = 420  # a student that has not reached the target by then is reported as not reached
FEATURE_NAMES = [f"f{i}" for i in range(FEATURES)]


def layer_flops() -> int:
    """Multiply-adds of one row through the network, forward: sum of l_i * l_(i+1)."""
    sizes = [FEATURES, *HIDDEN, CLASSES]
    return sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


def load_numpy(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    x = np.column_stack([table[c].to_numpy() for c in FEATURE_NAMES])
    return x, table["label"].to_numpy(), table["id"].to_numpy()


def split(path: str) -> tuple[np.ndarray, ...]:
    """The same 80/20 split for every method: ids divisible by 5 are the test rows."""
    x, y, ids = load_numpy(path)
    test = ids % 5 == 0
    return x[~test], y[~test], x[test], y[test]


def weighted_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="weighted"))


def race(step, evaluate, target: float, spent: float = 0.0, limit: float = MAX_SECONDS) -> dict:  # noqa: ANN001
    """Call `step` (one unit of training) until `evaluate` reaches `target` or `limit` seconds
    are spent; only steps timed, on top of `spent` (set-up that training needs, such as fitting
    the transforms)."""
    curve = []
    while spent < limit:
        started = time.perf_counter()
        step()
        spent += time.perf_counter() - started
        score = evaluate()
        curve.append([round(spent, 2), round(score, 4)])
        if score >= target:
            return {"seconds": round(spent, 2), "f1": round(score, 4), "curve": curve}
    return {"seconds": None, "f1": curve[-1][1], "curve": curve, "not_reached": True}


def spark_session(java_blas: bool = False):  # noqa: ANN201
    """A local session on every core, run as the DAG's jobs are: native BLAS one thread per task.
    `java_blas` names a library that does not exist, so dev.ludovic.netlib falls back to Java."""
    from pyspark.sql import SparkSession

    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # inherited by the JVM pyspark starts
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python tasks: this venv
    builder = (
        SparkSession.builder.master(f"local[{os.cpu_count()}]")
        .appName("retrain-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "6g")
        .config("spark.sql.shuffle.partitions", str(os.cpu_count()))
    )
    if java_blas:
        builder = builder.config("spark.driver.extraJavaOptions",
                                 "-Ddev.ludovic.netlib.blas.nativeLib=no-native-blas")  # fmt: skip
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_split(spark, path: str):  # noqa: ANN001, ANN201
    frame = spark.read.parquet(path)
    return frame.where("id % 5 != 0"), frame.where("id % 5 = 0")


def bench_spec(max_iter: int, warm: bool = False, solver: str = "l-bfgs"):  # noqa: ANN201
    from retrain.spec import parse_spec

    model = {"hidden_layers": HIDDEN, "solver": solver, "warm_start": warm}
    if solver != "adam":  # MLlib's solvers' iterations; adam stops on its validation loss
        model["max_iter"] = max_iter
    return parse_spec(
        {
            "name": "bench_teacher",
            "registered_model_name": "retrain_bench_teacher",
            "schema": {"id": "long", "label": "int", **dict.fromkeys(FEATURE_NAMES, "double")},
            "id_column": "id",
            "label_column": "label",
            "feature_columns": FEATURE_NAMES,
            "model": model,
        },
        "bench",
    )


# --- cases -------------------------------------------------------------------------------------


def case_gemm(args: argparse.Namespace) -> dict[str, Any]:
    """numpy's GEMM rate on all cores at `--dtype` precision: the machine's practical peak."""
    n = args.n
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(n, n)).astype(args.dtype) for _ in range(2))
    a @ b  # warm up threads and caches
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - started) / 1e9)
    return {"gemm_peak_gflops": round(float(np.median(rates)), 2), "n": n, "runs": rates,
            "dtype": args.dtype}  # fmt: skip


def case_mlp_pass(args: argparse.Namespace) -> dict[str, Any]:
    """FLOP rate of MLlib training passes on retrain's prepared input (scaled, cached).

    `--block-size`, `--partitions` and `--java-blas` give the variants measured side by side
    (as shipped: the spec's block size, a partition per core as `retrain.spark.model.prepare`
    makes, and the system's native BLAS).
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import MultilayerPerceptronClassifier

    from retrain.spark.model import FEATURES as VECTOR
    from retrain.spark.model import feature_stages

    spark = spark_session(java_blas=args.java_blas)
    train, _ = spark_split(spark, args.data)
    spec = bench_spec(args.iterations)
    prepared = Pipeline(stages=feature_stages(train, spec)).fit(train).transform(train)
    prepared = prepared.selectExpr("CAST(label AS DOUBLE) AS label", VECTOR)
    if args.partitions:
        prepared = prepared.repartition(args.partitions)
    prepared = prepared.cache()
    rows = prepared.count()
    block = args.block_size or spec.model.block_size
    network = MultilayerPerceptronClassifier(
        layers=[FEATURES, *HIDDEN, CLASSES], maxIter=args.iterations, tol=0.0, seed=1,
        blockSize=block,
    )  # fmt: skip
    started = time.perf_counter()
    model = network.fit(prepared)
    seconds = time.perf_counter() - started
    passes = len(model.summary().objectiveHistory)
    # forward 2 FLOPs per multiply-add, backward twice the forward
    flops = rows * passes * 6 * layer_flops()
    return {
        "mlp_pass_gflops": round(flops / seconds / 1e9, 3),
        "rows": rows,
        "passes": passes,
        "seconds": round(seconds, 2),
        "block_size": block,
        "partitions": prepared.rdd.getNumPartitions(),
        "blas": blas_in_use(spark),
    }


def blas_in_use(spark) -> str:  # noqa: ANN001
    jvm = spark.sparkContext._jvm
    return str(jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getName())


def case_retrain(args: argparse.Namespace) -> dict[str, Any]:
    """retrain's train stage as shipped (retrain.spark.model: transforms fitted once, input
    cached a partition per core, the spec's block size), its network continued in chunks of CHUNK
    iterations so F1 can be checked in between. `--warm FILE`: the network starts from a
    champion fitted on another day's data, as `model.warm_start` does."""
    from retrain.spark.model import FEATURES as VECTOR
    from retrain.spark.model import assemble, fit_pipeline, network_for, prepare

    spark = spark_session()
    train, test = spark_split(spark, args.data)
    train, test = train.cache(), test.cache()
    train.count()
    truth = np.array([r.label for r in test.select("label").collect()])
    state: dict[str, Any] = {"weights": None}
    if args.warm:
        previous, _ = spark_split(spark, args.warm)
        champion, _ = fit_pipeline(previous, bench_spec(args.warm_iterations))
        state["weights"] = champion.stages[-2].weights
    started = time.perf_counter()
    transforms, prepared = prepare(train, bench_spec(CHUNK))
    layers = [prepared.first()[VECTOR].size, *HIDDEN, CLASSES]
    prepare_seconds = time.perf_counter() - started

    def step() -> None:
        network = network_for(bench_spec(CHUNK), layers)
        if state["weights"] is not None:
            network.setInitialWeights(state["weights"])
        state["network"] = network.fit(prepared)
        state["weights"] = state["network"].weights

    def evaluate() -> float:
        model = assemble(transforms, state["network"])
        predicted = model.transform(test).select("predicted_label").collect()
        return weighted_f1(truth, np.array([int(r.predicted_label) for r in predicted]))

    outcome = race(step, evaluate, args.target, prepare_seconds, args.max_seconds)
    return outcome | {"prepare_seconds": round(prepare_seconds, 2), "blas": blas_in_use(spark)}


def case_trainer(args: argparse.Namespace) -> dict[str, Any]:
    """retrain's adam trainer (`AdamMLPClassifier`) on retrain's prepared input (transforms
    fitted, input cached, as the train stage makes it). Each attempt is a fresh fit of E epochs
    (E = 1, 2, ...), timed from the fit call to MLlib's model in hand; the first that reaches
    the target F1 counts. `--warm FILE`: every fit starts from a champion fitted (with early
    stopping) on another day's data, as `model.warm_start` does."""
    from pyspark.sql import functions as F

    from retrain.spark.model import IS_VALIDATION, assemble, fit_pipeline, prepare
    from retrain.spark.trainer import AdamMLPClassifier

    spark = spark_session()
    train, test = spark_split(spark, args.data)
    spec = bench_spec(1, solver="adam")
    transforms, prepared = prepare(train, spec)
    prepared = prepared.cache()
    rows = prepared.count()
    truth = np.array([r.label for r in test.select("label").collect()])
    test = test.cache()
    test.count()
    initial = None
    if args.warm:
        previous, _ = spark_split(spark, args.warm)
        held_out = F.col("id") % 10 == 1  # the champion's own validation rows
        champion, _ = fit_pipeline(
            previous.where(~held_out), spec, validation=previous.where(held_out)
        )
        initial = champion.stages[-2].weights
    attempts = []
    for epochs in range(1, args.max_epochs + 1):
        estimator = AdamMLPClassifier(
            labelCol="label_index", featuresCol="features", validationIndicatorCol=IS_VALIDATION,
            layers=[FEATURES, *HIDDEN, CLASSES], maxEpochs=epochs, patience=epochs,
            numTasks=args.tasks, seed=1,
        )  # fmt: skip
        if initial is not None:
            estimator.setInitialWeights(initial)
        started = time.perf_counter()
        network = estimator.fit(prepared)
        seconds = time.perf_counter() - started
        predicted = assemble(transforms, network).transform(test).select("predicted_label")
        f1 = weighted_f1(truth, np.array([int(r.predicted_label) for r in predicted.collect()]))
        history = network.training_history
        attempts.append({"epochs": epochs, "seconds": round(seconds, 2), "f1": round(f1, 4),
                         "epoch_seconds": round(history.epoch_seconds, 3),
                         "tasks": history.tasks})  # fmt: skip
        if f1 >= args.target:
            break
    reached = attempts[-1] if attempts[-1]["f1"] >= args.target else None
    flops = 6 * rows * attempts[-1]["epochs"] * layer_flops()
    return {
        "seconds": reached["seconds"] if reached else None,
        "f1": attempts[-1]["f1"],
        "epochs": attempts[-1]["epochs"],
        "tasks": attempts[-1]["tasks"],
        "rows": rows,
        # FLOPs of the epochs (forward and backward) over the time in them, all tasks together
        "epoch_gflops": round(flops / attempts[-1]["epoch_seconds"] / 1e9, 2),
        "attempts": attempts,
        **({} if reached else {"not_reached": True}),
    }


def case_mllib_default(args: argparse.Namespace) -> dict[str, Any]:
    """A typical hand-rolled job: VectorAssembler + MultilayerPerceptronClassifier with its
    defaults (no scaling, no caching), continued in chunks of CHUNK iterations."""
    from pyspark.ml.classification import MultilayerPerceptronClassifier
    from pyspark.ml.feature import VectorAssembler

    spark = spark_session()
    train, test = spark_split(spark, args.data)
    assemble = VectorAssembler(inputCols=FEATURE_NAMES, outputCol="features")
    train = assemble.transform(train).withColumn("label", train["label"].cast("double"))
    test_vectors = assemble.transform(test)
    truth = np.array([r.label for r in test.select("label").collect()])
    state: dict[str, Any] = {"model": None}

    def step() -> None:
        network = MultilayerPerceptronClassifier(
            layers=[FEATURES, *HIDDEN, CLASSES], maxIter=CHUNK
        )
        if state["model"] is not None:
            network.setInitialWeights(state["model"].weights)
        state["model"] = network.fit(train)

    def evaluate() -> float:
        predicted = state["model"].transform(test_vectors).select("prediction").collect()
        return weighted_f1(truth, np.array([int(r.prediction) for r in predicted]))

    return race(step, evaluate, args.target, limit=args.max_seconds)


def case_sklearn(args: argparse.Namespace) -> dict[str, Any]:
    """scikit-learn's MLPClassifier (adam, batches of 256), scaled input, one epoch per step."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x, y, x_test, y_test = split(args.data)
    scaler = StandardScaler().fit(x)
    x, x_test = scaler.transform(x), scaler.transform(x_test)
    model = MLPClassifier(hidden_layer_sizes=tuple(HIDDEN), activation="logistic",
                          batch_size=256, learning_rate_init=0.01, random_state=1)  # fmt: skip
    classes = np.arange(CLASSES)
    return race(
        lambda: model.partial_fit(x, y, classes=classes),
        lambda: weighted_f1(y_test, model.predict(x_test)),
        args.target,
        limit=args.max_seconds,
    )


def case_torch(args: argparse.Namespace) -> dict[str, Any]:
    """PyTorch on the CPU, the same layers and threads as cores, Adam, batches of 256."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(1)
    x, y, x_test, y_test = split(args.data)
    mean, std = x.mean(axis=0), x.std(axis=0)
    inputs = torch.tensor((x - mean) / std, dtype=torch.float32)
    labels = torch.tensor(y, dtype=torch.long)
    test_inputs = torch.tensor((x_test - mean) / std, dtype=torch.float32)
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN[0]),
        torch.nn.Sigmoid(),
        torch.nn.Linear(HIDDEN[0], CLASSES),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = torch.nn.CrossEntropyLoss()

    def epoch() -> None:
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), 256):
            batch = order[start : start + 256]
            optimizer.zero_grad()
            loss(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()

    def evaluate() -> float:
        with torch.no_grad():
            return weighted_f1(y_test, model(test_inputs).argmax(dim=1).numpy())

    return race(epoch, evaluate, args.target, limit=args.max_seconds) | {
        "torch": torch.__version__
    }


def case_quality(args: argparse.Namespace) -> dict[str, Any]:
    """retrain's model against scikit-learn's on public datasets (bench/quality.py)."""
    from bench.quality import compare

    spark = spark_session()
    with tempfile.TemporaryDirectory() as folder:
        results = {
            name: compare(spark, name, Path(folder), {}) for name in args.datasets.split(",")
        }
    return {
        "datasets": results,
        "f1_vs_best_sklearn_min": min(r["f1_vs_best_sklearn"] for r in results.values()),
        "log_loss_ratio_max": max(r["log_loss_ratio"] for r in results.values()),
    }


def case_gx(args: argparse.Namespace) -> dict[str, Any]:
    """retrain's validate (GX suite in Spark, results and Data Docs) vs one hand-written Spark
    aggregate computing the same checks, on the same partition."""
    from pyspark.sql import functions as F

    from bench.suites import aggregate_checks, bench_suite
    from retrain.spark.validation import validate

    spark = spark_session()
    frame = spark.read.parquet(args.data).cache()  # as the validate stage does
    rows = frame.count()
    suite = bench_suite()
    gx_times, aggregate_times = [], []
    with tempfile.TemporaryDirectory() as gx_root:
        for run in range(args.repeats):
            started = time.perf_counter()
            checked = validate(frame, suite, Path(gx_root), f"bench-{run}")
            gx_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            passed = aggregate_checks(frame, F)
            aggregate_times.append(time.perf_counter() - started)
    assert checked["success"] and all(passed.values()), (checked["failed_critical"], passed)
    gx, aggregate = float(np.median(gx_times)), float(np.median(aggregate_times))
    return {
        "gx_vs_aggregate_ratio": round(gx / aggregate, 2),
        "gx_seconds": round(gx, 2),
        "aggregate_seconds": round(aggregate, 2),
        "expectations": len(suite["expectations"]),
        "rows": rows,
        "runs": len(gx_times),
    }


CASES = {
    "gemm": case_gemm,
    "mlp_pass": case_mlp_pass,
    "retrain": case_retrain,
    "trainer": case_trainer,
    "quality": case_quality,
    "mllib_default": case_mllib_default,
    "sklearn": case_sklearn,
    "torch": case_torch,
    "gx": case_gx,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--data")
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--warm", help="another day's data for the champion to start from")
    parser.add_argument("--warm-iterations", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--block-size", type=int, default=0, help="mlp_pass: default the spec's")
    parser.add_argument("--partitions", type=int, default=0, help="mlp_pass: default as read")
    parser.add_argument("--java-blas", action="store_true", help="mlp_pass: without native BLAS")
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--dtype", default="float64", help="gemm: float64 or float32")
    parser.add_argument("--tasks", type=int, default=0, help="trainer: 0 = as the trainer picks")
    parser.add_argument("--max-epochs", type=int, default=30, help="trainer: attempts at most")
    parser.add_argument("--datasets", default=",".join(public.NAMES), help="quality: which")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS,
                        help="students: stop when not at the target by then")  # fmt: skip
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    result = CASES[args.case](args)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
