"""`retrain new-dataset`: a starting spec from a sample file, for a person to review.

The suggest-suite profiler reads the sample (types, nulls, distinct values, text lengths and word
counts), then each column gets a role: the id (unique and never empty), the label (by name, or
the last column with few values), personal data (by name: kept out of the features and
protected), or a feature of the type its values suggest. Every guess is written as a comment
beside the key it set, so the reviewer sees why.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    TimestampType,
)

from retrain.profile import profile
from retrain.spec import NAME_PATTERN, SpecError, quote

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPEC_TYPES: list[tuple[type[DataType], str]] = [
    (BooleanType, "boolean"),
    (ShortType, "int"),
    (IntegerType, "int"),
    (LongType, "long"),
    (FloatType, "float"),
    (DoubleType, "double"),
    (DecimalType, "double"),
    (DateType, "date"),
    (TimestampType, "timestamp"),
]
LABEL_NAMES = ("label", "target", "class", "y", "intent", "category", "species", "outcome")
# Column names that usually hold personal data, and the protection to start from.
PERSONAL = [
    (re.compile(r"e_?mail"), "encrypt"),
    (re.compile(r"(^|_)(first_|last_|full_|customer_|user_)?name$"), "pseudonymize"),
    (re.compile(r"phone|mobile|address|street|birth|ssn|passport|iban"), "drop"),
]
MAX_CATEGORIES = 50  # a text column with more distinct values is text or an identifier
TEXT_WORDS = 3.0  # average words per value from which a text column is free text


def read_sample(spark: SparkSession, sample: Path) -> tuple[dict[str, Any], DataFrame]:
    """(the spec's `source` for such files, frame) of a sample; CSV with a header, types
    inferred."""
    fmt = FORMATS.get(sample.suffix.lower())
    if fmt is None:
        raise SpecError(f"{sample}: cannot tell the format (use {', '.join(FORMATS)})")
    if not sample.is_file():
        raise SpecError(f"{sample}: no such file")
    options = {"header": "true", "escape": '"'} if fmt == "csv" else {}
    reader = spark.read.options(**options)
    if fmt == "csv":
        reader = reader.option("inferSchema", "true")
    frame = reader.format(fmt).load(str(sample))
    if fmt == "json" and "_corrupt_record" in frame.columns:
        raise SpecError(f"{sample}: not one JSON object per line")
    return {"format": fmt, "options": options}, frame


def _spec_type(kind: DataType) -> str:
    return next((name for cls, name in SPEC_TYPES if isinstance(kind, cls)), "string")


def profile_columns(frame: DataFrame) -> tuple[int, dict[str, dict[str, Any]]]:
    """Rows, and per column the profile suggest-suite uses, with the spec type. The distinct
    count is exact where it decides uniqueness (the id): the profile's is approximate, and
    read ~5% low it once hid a real id column."""
    stats = profile(frame)
    rows = stats.pop("__rows")
    near_unique = [n for n, c in stats.items() if c["nulls"] == 0 and c["distinct"] >= rows * 0.9]
    if near_unique:
        exact = frame.agg(*[F.countDistinct(F.col(quote(n))).alias(n) for n in near_unique])
        stats = stats | {n: stats[n] | {"distinct": v} for n, v in exact.first().asDict().items()}
    kinds = {field.name: _spec_type(field.dataType) for field in frame.schema}
    return rows, {name: column | {"type": kinds[name]} for name, column in stats.items()}


def _guess_id(rows: int, columns: dict[str, dict[str, Any]], chosen: str | None) -> str:
    if chosen:
        return chosen
    unique = [
        name
        for name, c in columns.items()
        if c["nulls"] == 0 and c["distinct"] == rows and c["type"] in ("int", "long", "string")
    ]
    named = [n for n in unique if n.lower() == "id" or n.lower().endswith("_id")]
    if not (named or unique):
        raise SpecError(
            "no column identifies a row (unique and never empty): add one to the data, or name "
            "it with --id"
        )
    return (named or unique)[0]


def _guess_label(columns: dict[str, dict[str, Any]], id_column: str, chosen: str | None) -> str:
    if chosen:
        return chosen
    candidates = [n for n in columns if n != id_column]
    named = [n for n in candidates if n.lower() in LABEL_NAMES]
    # Classes are text, whole numbers or booleans; never measurements, dates or vectors.
    discrete = [
        n
        for n in candidates
        if columns[n]["type"] in ("string", "int", "long", "boolean") and not columns[n]["vector"]
    ]
    few = [n for n in discrete if 2 <= columns[n]["distinct"] <= MAX_CATEGORIES]
    if not (named or few):
        raise SpecError("no column looks like a label (2 to 50 classes): name it with --label")
    return (named or few[::-1])[0]


def _protection(column: str) -> str | None:
    return next((action for pattern, action in PERSONAL if pattern.search(column.lower())), None)


def _feature_type(info: dict[str, Any], rows: int) -> tuple[str | None, str]:
    """(feature type or None, why) for one column."""
    kind = info["type"]
    rules = [
        (kind in ("int", "long", "float", "double"), "numeric", "a number"),
        (kind == "boolean", "categorical", "true/false"),
        (
            kind in ("date", "timestamp"),
            None,
            f"a {kind}: derive numbers from it (day of week, age) if they matter",
        ),
        (info["vector"], "vector", "every value is a list of numbers"),
        (info["distinct"] <= MAX_CATEGORIES, "categorical", f"{info['distinct']} distinct values"),
        (info["words"] >= TEXT_WORDS, "text", f"{info['words']:.1f} words per value"),
    ]
    return next(
        ((feature, why) for hit, feature, why in rules if hit),
        (None, f"{info['distinct']} distinct short values in {rows} rows: looks like a code"),
    )


def _roles(
    columns: dict[str, dict[str, Any]], rows: int, key: str, target: str
) -> tuple[list[str], dict[str, str], dict[str, str], dict[str, str]]:
    """(features, feature_types, sensitive, why) for every column but the id and the label."""
    why = {key: "id: unique and never empty", target: "label"}
    features, feature_types, sensitive = [], {}, {}
    for column, info in columns.items():
        if column in (key, target):
            continue
        protection = _protection(column) if info["type"] == "string" else None
        if protection:
            sensitive[column] = protection
            why[column] = f"personal data by its name: {protection}, kept out of the features"
            continue
        kind, reason = _feature_type(info, rows)
        why[column] = f"{kind} feature: {reason}" if kind else f"not a feature: {reason}"
        if kind:
            features.append(column)
            if kind != "numeric":
                feature_types[column] = kind
    return features, feature_types, sensitive, why


def scaffold_spec(
    name: str,
    sample: Path,
    frame: DataFrame,
    *,
    source: dict[str, Any],
    label: str | None = None,
    id_column: str | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """(spec data, why each column got its role) for a sample already read."""
    if not NAME_PATTERN.fullmatch(name):
        raise SpecError(f"dataset name {name!r} must match {NAME_PATTERN.pattern}")
    rows, columns = profile_columns(frame)
    if rows == 0:
        raise SpecError(f"{sample}: no rows to learn the columns from")
    for chosen, flag in ((label, "--label"), (id_column, "--id")):
        if chosen and chosen not in columns:
            raise SpecError(
                f"{flag} {chosen!r} is not a column of {sample} ({', '.join(columns)})"
            )
    key = _guess_id(rows, columns, id_column)
    target = _guess_label(columns, key, label)
    features, feature_types, sensitive, why = _roles(columns, rows, key, target)
    if not features:
        raise SpecError(f"{sample}: no column can be a feature ({'; '.join(why.values())})")
    schema = {c: info["type"] for c, info in columns.items()}
    if schema[key] == "int":
        schema[key] = "long"  # ids outgrow int
    data: dict[str, Any] = {
        "name": name,
        "description": f"Scaffolded from {sample.name} ({rows} rows) by retrain new-dataset.",
        "registered_model_name": f"retrain_{name}",
        "source": {**source, "landing_path": f"landing/{name}"},
        "schema": schema,
        "id_column": key,
        "label_column": target,
        "feature_columns": features,
        "feature_types": feature_types,
        "sensitive": sensitive,
        "window_days": 7,
        "split": {"train": 0.7, "validation": 0.1, "test": 0.2, "seed": 42},
        "model": {"hidden_layers": [64], "solver": "adam", "seed": 42},
        "gate": {"metric": "weighted_f1", "min_f1": 0.8, "min_test_rows": 30},
    }
    return {k: v for k, v in data.items() if v != {}}, why


def spec_yaml(data: dict[str, Any], why: dict[str, str]) -> str:
    """The spec as YAML, each schema column commented with the reason for its role."""
    head = {k: v for k, v in data.items() if k != "schema"}
    schema_lines = [
        f"  {yaml.safe_dump({c: t}, default_flow_style=True).strip()[1:-1]:<40} # {why.get(c, '')}"
        for c, t in data["schema"].items()
    ]
    body = yaml.safe_dump(head, sort_keys=False, default_flow_style=None, width=99)
    header = (
        f"# Scaffolded by `retrain new-dataset {data['name']}`: review every key (README, "
        '"Add your dataset"),\n# above all the label, the features, the sensitive columns and '
        "the gate.\n"
    )
    return header + body + "schema:\n" + "\n".join(schema_lines) + "\n"
