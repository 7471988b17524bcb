"""Reading a landing partition: check its shape, cast its values, find the unusable rows.

The files must have the spec's columns (CSV header, JSON keys, Parquet schema); a mismatch is one
message naming the file and the column. Values are read as text and cast to the spec's types, so
a value that does not parse is named, not silently nulled. `check_rows` gives every row a problem
(malformed, unparseable, missing id, or breaking a critical row rule of the raw suite) or none.
A row without a label is not a problem: it is unlabelled (ingest counts it; training skips
it, scoring scores it).
"""

from __future__ import annotations

import csv
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from retrain.errors import DataRejected
from retrain.lake import first_line
from retrain.spark.pii import protect
from retrain.spark.rules import RowRule, first_broken, mark_duplicates, suite_rules
from retrain.spec import Spec, quote

CORRUPT_COLUMN = "_corrupt_record"
SOURCE_FILE = "_source_file"
PROBLEM = "_problem"
# Parquet types a spec type accepts: the same, or narrower numbers that widen without loss.
WIDENS_TO = {"long": {"int"}, "double": {"int", "long", "float"}, "float": {"int"}}
SPARK_TYPE_NAMES = {"int": "int", "long": "bigint", "double": "double", "float": "float"}


def _text_schema(spec: Spec) -> StructType:
    """Every spec column as text, plus the column Spark fills with lines it cannot split."""
    fields = [StructField(name, StringType()) for name in spec.schema]
    return StructType([*fields, StructField(CORRUPT_COLUMN, StringType())])


def _mismatch(file: str, expected: list[str], found: list[str]) -> str | None:
    """Words for how a file's columns differ from the spec's, or None if they match."""
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    short = file.rsplit("/", 1)[-1]
    if len(missing) == 1 and len(extra) == 1:
        renamed = f"column '{missing[0]}' is missing and '{extra[0]}' is not in the spec"
        return f"{short}: {renamed} (renamed?)"
    if missing:
        return f"{short}: column(s) {', '.join(map(repr, missing))} missing"
    if extra:
        return f"{short}: column(s) {', '.join(map(repr, extra))} not in the spec"
    if found != expected:
        return f"{short}: columns are in a different order than the spec ({', '.join(found)})"
    return None


def check_csv_headers(spark: SparkSession, spec: Spec, files: list[str]) -> None:
    if spec.source.options.get("header", "false").lower() != "true":
        return  # no header to check: the column count is checked row by row
    sep = spec.source.options.get("sep") or spec.source.options.get("delimiter") or ","
    for file in files:
        header = next(csv.reader([first_line(spark, file)], delimiter=sep), [])
        problem = _mismatch(file, list(spec.schema), [h.strip() for h in header])
        if problem:
            raise DataRejected(f"schema mismatch in {problem}")


def check_json_keys(text: DataFrame, spec: Spec) -> None:
    """Keys that are in no row of a file, or in some row but not the spec, are a mismatch."""
    keys = (
        text.select(SOURCE_FILE, F.explode(F.json_object_keys("value")).alias("key"))
        .groupBy(SOURCE_FILE)
        .agg(F.collect_set("key").alias("keys"))
        .collect()
    )
    for row in sorted(keys, key=lambda r: r[SOURCE_FILE]):
        found = [k for k in spec.schema if k in row["keys"]] + sorted(
            set(row["keys"]) - set(spec.schema)
        )
        problem = _mismatch(row[SOURCE_FILE], list(spec.schema), found)
        if problem:
            raise DataRejected(f"schema mismatch in {problem}")


def check_parquet_schema(spark: SparkSession, spec: Spec, files: list[str]) -> None:
    for file in files:
        try:
            fields = {f.name: f.dataType.simpleString() for f in spark.read.parquet(file).schema}
        except Exception as err:  # Spark raises several kinds for a damaged footer
            raise DataRejected(f"cannot read {file}: {first_error_line(err)}") from None
        problem = _mismatch(file, list(spec.schema), list(fields))
        if problem and "different order" not in problem:  # Parquet columns are read by name
            raise DataRejected(f"schema mismatch in {problem}")
        for name, kind in spec.schema.items():
            found, wanted = fields[name], SPARK_TYPE_NAMES.get(kind, kind)
            if found != wanted and found not in WIDENS_TO.get(kind, set()):
                raise DataRejected(
                    f"schema mismatch in {file.rsplit('/', 1)[-1]}: column '{name}' is {found}, "
                    f"the spec says {kind}"
                )


def first_error_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(err).__name__


def read_landing(
    spark: SparkSession, spec: Spec, path: str | list[str], files: list[str]
) -> DataFrame:
    """The partition with every spec column as text, the corrupt-line column and the file;
    sensitive columns already protected, so no check, suite or partition sees their values."""
    return protect(_read_text(spark, spec, path, files), spec)


def _read_text(
    spark: SparkSession, spec: Spec, path: str | list[str], files: list[str]
) -> DataFrame:
    """`path`: a partition folder, a file, or a list of them (several days at once)."""
    fmt, options = spec.source.format, spec.source.options
    if fmt == "parquet":
        check_parquet_schema(spark, spec, files)
        frame = spark.read.options(**options).parquet(*([path] if isinstance(path, str) else path))
        return frame.select(
            *[F.col(quote(c)).cast("string").alias(c) for c in spec.schema],
            F.lit(None).cast("string").alias(CORRUPT_COLUMN),
            F.col("_metadata.file_path").alias(SOURCE_FILE),
        )
    if fmt == "csv":
        check_csv_headers(spark, spec, files)
        frame = (
            spark.read.schema(_text_schema(spec))
            .options(**options)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
            .csv(path)
        )
        return frame.select("*", F.col("_metadata.file_path").alias(SOURCE_FILE))
    text = (
        spark.read.text(path)
        .where(F.trim("value") != "")
        .select("value", F.col("_metadata.file_path").alias(SOURCE_FILE))
    )
    check_json_keys(text, spec)
    parse = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN}
    return text.select(
        F.from_json("value", _text_schema(spec), parse).alias("row"), SOURCE_FILE
    ).select("row.*", SOURCE_FILE)


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def check_rows(text: DataFrame, spec: Spec, suite: dict[str, Any]) -> DataFrame:
    """Typed spec columns plus `_problem` (reason, column, value; null for a usable row)."""
    shown: dict[str, Column] = {c: F.col(f"`_text_{i}`") for i, c in enumerate(spec.schema)}
    typed = text.select(
        *[F.col(quote(c)).try_cast(kind).alias(c) for c, kind in spec.schema.items()],
        *[F.col(quote(c)).alias(f"_text_{i}") for i, c in enumerate(spec.schema)],
        CORRUPT_COLUMN,
        SOURCE_FILE,
    )
    row_rules, unique = suite_rules(suite)
    options = {k.lower(): v for k, v in spec.source.options.items()}
    encoding = options.get("encoding") or options.get("charset") or "UTF-8"
    rules = [
        RowRule(None, F.col(CORRUPT_COLUMN).isNotNull(), "malformed record: fields do not match"),
        # Bytes that are not text in the encoding are read as U+FFFD: the value is lost.
        *[
            RowRule(c, F.contains(shown[c], F.lit("\ufffd")), f"{c} is not valid {encoding} text")
            for c in spec.schema
        ],
        *[
            RowRule(
                c, shown[c].isNotNull() & F.col(quote(c)).isNull(), f"{c} is not {_article(k)} {k}"
            )
            for c, k in spec.schema.items()
        ],
        RowRule(
            spec.id_column, F.col(quote(spec.id_column)).isNull(), f"{spec.id_column} is missing"
        ),
        *row_rules,
    ]
    checked = typed.withColumn(PROBLEM, first_broken(rules, shown))
    return mark_duplicates(checked, spec, unique, PROBLEM)


def usable_rows(
    spark: SparkSession, spec: Spec, path: str | list[str], files: list[str], day: bool = False
) -> DataFrame:
    """The rows of `files` that ingest would keep (without the raw suite's row rules), typed;
    with `day`, also the `ds` of the partition each came from."""
    checked = check_rows(read_landing(spark, spec, path, files), spec, {"expectations": []})
    ds = F.regexp_extract(SOURCE_FILE, r"ds=(\d{4}-\d{2}-\d{2})", 1).alias("ds")
    return checked.where(F.col(PROBLEM).isNull()).select(
        *[quote(c) for c in spec.stored_columns], *([ds] if day else [])
    )


def quarantine_rows(checked: DataFrame, spec: Spec) -> DataFrame:
    """Bad rows as they were read, with the reason, the column and the value at fault (the
    record and value encrypted when the spec has sensitive columns)."""
    as_read = F.to_json(
        F.struct(*[F.col(f"`_text_{i}`").alias(c) for i, c in enumerate(spec.schema)])
    )
    held = checked.where(F.col(PROBLEM).isNotNull()).select(
        F.coalesce(F.col(CORRUPT_COLUMN), as_read).alias("raw_record"),
        F.col(f"{PROBLEM}.reason").alias("reason"),
        F.col(f"{PROBLEM}.column").alias("column"),
        F.col(f"{PROBLEM}.value").alias("value"),
        F.col(SOURCE_FILE).alias("source_file"),
    )
    # A line that is cut or shifted can carry a sensitive value in any column: with sensitive
    # columns, what was read is kept encrypted (the reason and column stay readable).
    return protect(held, spec, whole_lines=("raw_record", "value"))


def explain(reasons: list[dict[str, Any]], limit: int = 3) -> str:
    """The commonest reasons, each with an example: what a person needs to fix the feed."""
    parts = []
    for item in reasons[:limit]:
        example = (
            f" (e.g. {item['value']!r} in {item['file']})"
            if item["value"] is not None
            else (f" (e.g. in {item['file']})")
        )
        parts.append(f"{item['count']} x {item['reason']}{example}")
    more = len(reasons) - limit
    return "; ".join(parts) + (f"; and {more} more reasons" if more > 0 else "")
