"""Ingest: read the run date's landing partition with the spec's explicit schema.

Valid rows go to the raw partition; malformed rows (unparseable, short, missing id or label)
go to the quarantine partition with their raw text and a reason. Every row read lands in
exactly one of the two, and too many bad rows fail the run instead of training on a broken day.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, _parse_datatype_string

from retrain.job import RetrainError, RunContext, exists, main
from retrain.spec import Spec, quote

CORRUPT_COLUMN = "_corrupt_record"


def landing_schema(spec: Spec) -> StructType:
    """The spec's columns in order, plus the column Spark fills with unparseable lines."""
    fields = [
        StructField(name, _parse_datatype_string(kind)) for name, kind in spec.schema.items()
    ]
    return StructType([*fields, StructField(CORRUPT_COLUMN, StringType())])


def read_landing(spark: SparkSession, spec: Spec, path: str) -> DataFrame:
    if spec.source.format == "parquet":
        return (
            spark.read.options(**spec.source.options)
            .parquet(path)
            .withColumn(CORRUPT_COLUMN, F.lit(None).cast("string"))
        )
    reader = (
        spark.read.schema(landing_schema(spec))
        .options(**spec.source.options)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
    )
    return reader.csv(path) if spec.source.format == "csv" else reader.json(path)


def with_reject_reason(frame: DataFrame, spec: Spec) -> DataFrame:
    """Add `reason`: why a row cannot be used, or null for a good row."""
    id_col, label_col = F.col(quote(spec.id_column)), F.col(quote(spec.label_column))
    reason = (
        F.when(F.col(CORRUPT_COLUMN).isNotNull(), F.lit("malformed record: does not match schema"))
        .when(id_col.isNull(), F.lit(f"missing id column {spec.id_column!r}"))
        .when(label_col.isNull(), F.lit(f"missing label column {spec.label_column!r}"))
    )
    return frame.withColumn("reason", reason)


def split_rows(frame: DataFrame, spec: Spec) -> tuple[DataFrame, DataFrame]:
    """(valid rows in the spec's columns, quarantined rows as raw text with a reason)."""
    checked = with_reject_reason(frame, spec)
    valid = checked.filter(F.col("reason").isNull()).select(*[quote(c) for c in spec.schema])
    data_columns = F.struct(*[F.col(quote(c)) for c in spec.schema])
    quarantined = checked.filter(F.col("reason").isNotNull()).select(
        F.coalesce(F.col(CORRUPT_COLUMN), F.to_json(data_columns)).alias("raw_record"),
        F.col("reason"),
    )
    return valid, quarantined


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, source = ctx.spec, ctx.paths.landing_partition(ctx.run_date)
    if not exists(spark, source):
        raise RetrainError(f"no landing partition for {spec.name} on {ctx.run_date}: {source}")
    # Spark can only query the corrupt-record column of a cached parse.
    parsed = read_landing(spark, spec, source).cache()
    rows_read = parsed.count()
    if rows_read == 0:
        raise RetrainError(f"landing partition {source} of {spec.name} is empty")
    valid, quarantined = split_rows(parsed, spec)
    reasons = {r["reason"]: r["count"] for r in quarantined.groupBy("reason").count().collect()}
    rows_quarantined = sum(reasons.values())
    bad_fraction = rows_quarantined / rows_read
    quarantined.coalesce(1).write.mode("overwrite").parquet(ctx.paths.quarantine(ctx.run_date))
    if bad_fraction > spec.max_bad_fraction:
        raise RetrainError(
            f"{rows_quarantined} of {rows_read} rows in {source} are malformed "
            f"({bad_fraction:.1%} > max_bad_fraction {spec.max_bad_fraction:.1%}); "
            f"see {ctx.paths.quarantine(ctx.run_date)}"
        )
    valid.write.mode("overwrite").parquet(ctx.paths.raw(ctx.run_date))
    return {
        "source": source,
        "rows_read": rows_read,
        "rows_valid": rows_read - rows_quarantined,
        "rows_quarantined": rows_quarantined,
        "quarantine_reasons": reasons,
    }


if __name__ == "__main__":
    main("ingest", run)
