"""The feature table of a training window, in Spark SQL: one row per id, with its split.

Rows are deduplicated by id (latest day wins), features typed by their feature type (numbers as
double, categories and text as text, vectors as arrays of double; nulls are left for the model
pipeline's imputer), and each id is assigned to train, validation or test by a salted hash
of the id, so an id keeps its split on every day.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.spec import Spec, quote

HASH_BUCKETS = 10_000
# Text that `typed_feature` reads as a vector: two or more numbers, optionally in brackets.
VECTOR_TEXT = r"^\[?\s*-?[0-9.eE+-]+([\s,;]+-?[0-9.eE+-]+)+\s*\]?$"


def typed_feature(spec: Spec, column: str) -> str:
    """The Spark SQL expression of a feature column as its feature type wants it."""
    name, kind = quote(column), spec.feature_type(column)
    if kind == "numeric":
        return f"CAST({name} AS DOUBLE)"
    if kind == "vector":
        # "1 2 3", "1,2,3" or "[1.0, 2.0, 3.0]"; a value that is not a number becomes null.
        numbers = rf"regexp_replace(trim({name}), '^\\[|\\]$', '')"
        return (
            f"CASE WHEN trim({name}) = '' THEN NULL ELSE "
            rf"transform(split(trim({numbers}), '[\\s,;]+'), v -> try_cast(v AS DOUBLE)) END"
        )
    return f"CAST({name} AS STRING)"


def _typed_features(spec: Spec) -> str:
    return ", ".join(f"{typed_feature(spec, c)} AS {quote(c)}" for c in spec.feature_columns)


def model_inputs(spark: SparkSession, rows: DataFrame, spec: Spec) -> DataFrame:
    """The id and the features of rows to be scored, typed as in training."""
    return spark.sql(
        f"SELECT {quote(spec.id_column)}, {_typed_features(spec)} FROM {{rows}}", rows=rows
    )


def build_features(spark: SparkSession, window: DataFrame, spec: Spec) -> DataFrame:
    """Dedupe by id, cast features and assign the split. `window` has the raw columns plus `ds`."""
    split = spec.split
    features = _typed_features(spec)
    bucket = f"pmod(xxhash64({split.seed}, {quote(spec.id_column)}), {HASH_BUCKETS})"
    train_cut = round(split.train * HASH_BUCKETS)
    validation_cut = round((split.train + split.validation) * HASH_BUCKETS)
    return spark.sql(
        f"""
        WITH ranked AS (
          SELECT *, row_number() OVER (PARTITION BY {quote(spec.id_column)}
                                       ORDER BY ds DESC) AS copy
          FROM {{window}}
          WHERE {quote(spec.label_column)} IS NOT NULL
        )
        SELECT {quote(spec.id_column)}, {quote(spec.label_column)}, {features}, ds AS source_ds,
               CASE WHEN {bucket} < {train_cut} THEN 'train'
                    WHEN {bucket} < {validation_cut} THEN 'validation'
                    ELSE 'test' END AS split
        FROM ranked WHERE copy = 1
        """,
        window=window,
    )


def augment_training(train: DataFrame, spec: Spec) -> DataFrame:
    """The training rows plus `augment.copies` shifted, noisy copies of each (spec `augment`).

    Written as Spark SQL array transforms: each copy moves the image by a whole number of
    pixels in x and y (the uncovered edge is 0) and adds uniform noise. Shifts and noise come
    from a hash of (seed, id, copy, pixel), so the same rows always give the same copies.
    """
    augment = spec.augment
    if not augment.column:
        return train
    height, width = augment.image_shape
    shift, seed, key = augment.max_shift, augment.seed, quote(spec.id_column)
    image = quote(augment.column)

    def offset(axis: str) -> F.Column:
        spread = f"pmod(xxhash64({seed}, {key}, __copy, '{axis}'), {2 * shift + 1})"
        return F.expr(f"CAST({spread} AS INT) - {shift}")

    row, col = f"CAST(floor(i / {width}) AS INT) - __dy", f"i % {width} - __dx"
    noise = f"(pmod(xxhash64({seed}, {key}, __copy, i), 2001) / 1000.0 - 1.0) * {augment.noise}"
    moved = (
        f"transform(sequence(0, {height * width - 1}), i -> "
        f"CASE WHEN {row} BETWEEN 0 AND {height - 1} AND {col} BETWEEN 0 AND {width - 1} "
        f"THEN try_element_at({image}, ({row}) * {width} + {col} + 1) ELSE 0D END + {noise})"
    )
    copies = (
        train.withColumn("__copy", F.explode(F.sequence(F.lit(1), F.lit(augment.copies))))
        .withColumn("__dx", offset("x"))
        .withColumn("__dy", offset("y"))
        .withColumn(augment.column, F.expr(moved))
        .drop("__copy", "__dx", "__dy")
    )
    return train.unionByName(copies)
