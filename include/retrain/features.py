"""The feature table of a training window, in Spark SQL: one row per id, with its split.

Rows are deduplicated by id (latest day wins), features cast to double (nulls are left for the
model pipeline's imputer), and each id is assigned to train, validation or test by a salted hash
of the id, so an id keeps its split on every day.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from retrain.spec import Spec, quote

HASH_BUCKETS = 10_000


def _typed_features(spec: Spec) -> str:
    return ", ".join(f"CAST({quote(c)} AS DOUBLE) AS {quote(c)}" for c in spec.feature_columns)


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
