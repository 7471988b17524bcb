"""`retrain new-dataset`: a starting spec from a sample file, for a person to review.

The suggest-suite profiler reads the sample (types, nulls, distinct values, text lengths and word
counts), then each column gets a role: the id (unique and never empty), the label (by name, or
the last column with few values), personal data (by name: kept out of the features and
protected), or a feature of the type its values suggest. Every guess is written as a comment
beside the key it set, so the reviewer sees why.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
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

from retrain.lake import data_files, landed_days
from retrain.paths import lake_root, local_path
from retrain.spec import NAME_PATTERN, SpecError, parse_spec, quote
from retrain.tools.calibrate import Calibration, calibrate, with_thresholds
from retrain.tools.profile import profile, suggest_suites_from

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
SAMPLE_DAYS = 14  # days of a landing root profiled at most
TRUSTED_ROWS = 500  # fewer rows profiled: the type and role guesses are shaky


@dataclass(frozen=True)
class Sample:
    """What `--from` names: one file, or a landing root whose `ds=` days are sampled."""

    path: Path
    fmt: str
    files: list[str]  # the files profiled
    days: dict[date, str]  # every landed day's folder (none for a lone file)
    sampled_days: list[date]

    @property
    def missing_days(self) -> int:
        """Days between the first and the last landed one that have no partition."""
        return (max(self.days) - min(self.days)).days + 1 - len(self.days) if self.days else 0

    @property
    def label(self) -> str:
        if not self.days:
            return self.path.name
        return (
            f"{self.path.name} ({len(self.sampled_days)} of {len(self.days)} days, "
            f"{min(self.days)} .. {max(self.days)})"
        )


def find_sample(spark: SparkSession, path: Path) -> Sample:
    """The files to profile: the file itself, or up to SAMPLE_DAYS days spread over a folder's
    `ds=` partitions (first and last included), so the guesses see more than one day."""
    if path.is_dir():
        days = landed_days(str(path))
        if not days:
            raise SpecError(f"{path}: no ds=YYYY-MM-DD folders (a dataset's landing root)")
        every = list(days)
        step = max(1, math.ceil(len(every) / SAMPLE_DAYS))
        sampled = sorted({*every[::step], every[-1]})
        files = [f for d in sampled for f in data_files(spark, days[d])]
        if not files:
            raise SpecError(f"{path}: the sampled days hold no data files")
    elif path.is_file():
        days, sampled, files = {}, [], [str(path)]
    else:
        raise SpecError(f"{path}: no such file or folder")
    suffixes = {Path(f).suffix.lower() for f in files}
    formats = {FORMATS.get(x) for x in suffixes}
    if None in formats or len(formats) != 1:
        raise SpecError(
            f"{path}: cannot tell one format from {', '.join(sorted(suffixes))} "
            f"(use {', '.join(FORMATS)})"
        )
    return Sample(path, formats.pop(), files, days, sampled)


def inspect_csv(files: list[str]) -> tuple[bool, list[str]]:
    """(whether quoted values hold line breaks, a problem per file whose records do not all have
    the header's field count), read as Spark reads CSV with `escape: '"'` (quotes doubled)."""
    multiline, problems, header = False, [], None
    for file in files:
        local = file.removeprefix("file:")
        with open(local, newline="", encoding="utf-8", errors="replace") as stream:
            reader = csv.reader(stream)
            head = next(reader, [])
            if header is None:
                header = head
            elif head != header:
                raise SpecError(f"{local}: its header differs from {files[0]}'s")
            wrong, first = 0, 0
            for record in reader:
                multiline = multiline or any("\n" in v or "\r" in v for v in record)
                if record and len(record) != len(header):
                    wrong, first = wrong + 1, first or reader.line_num
        if wrong:
            problems.append(
                f"{Path(local).name}: {wrong} record(s) do not have the header's {len(header)} "
                f"fields (the first ends on line {first}); ingest will quarantine them"
            )
    return multiline, problems


def read_sample(
    spark: SparkSession, sample: Sample
) -> tuple[dict[str, Any], DataFrame, list[str]]:
    """(the spec's `source` for such files, the sample read with inferred types, problems
    found); CSV with a header, `multiLine` when quoted values hold line breaks."""
    options: dict[str, str] = {}
    problems: list[str] = []
    if sample.fmt == "csv":
        options = {"header": "true", "escape": '"'}
        multiline, problems = inspect_csv(sample.files)
        if multiline:
            options["multiLine"] = "true"
    reader = spark.read.options(**options)
    if sample.fmt == "csv":
        reader = reader.option("inferSchema", "true")
    frame = reader.format(sample.fmt).load(sample.files)
    if sample.fmt == "json" and "_corrupt_record" in frame.columns:
        raise SpecError(f"{sample.path}: not one JSON object per line")
    return {"format": sample.fmt, "options": options}, frame, problems


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


@dataclass(frozen=True)
class Scaffold:
    """What `retrain new-dataset` found and wrote: the spec, its suites, its drift thresholds."""

    sample: Sample
    rows: int  # profiled
    problems: list[str]  # what the reader found wrong in the files
    data: dict[str, Any]
    why: dict[str, str]
    suites: dict[str, dict[str, Any]]
    calibration: Calibration | None  # from a landing root's history

    def spec_text(self) -> str:
        text = spec_yaml(self.data, self.why)
        assert yaml.safe_load(text) == self.data  # the comments must not change the spec
        if self.calibration is not None:
            text = with_thresholds(text, self.calibration, f"the {self.data['name']} spec")
        return text


def scaffold(
    spark: SparkSession,
    name: str,
    path: Path,
    spec_file: Path,
    *,
    label: str | None = None,
    id_column: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Scaffold:
    """Read a sample file or landing root, guess the spec, suggest suites, calibrate drift."""
    sample = find_sample(spark, path)
    source, frame, problems = read_sample(spark, sample)
    data, why = scaffold_spec(name, path, frame, source=source, label=label, id_column=id_column)
    data["description"] = f"Scaffolded from {sample.label} by retrain new-dataset."
    if sample.days:
        data["start_date"] = min(sample.days).isoformat()  # the first day that landed
        if sample.missing_days:  # a feed with gaps: a day without data is not a failure
            data["source"]["empty_days"] = "skip"
        lake = lake_root()
        if "://" not in lake and path.is_relative_to(local_path(lake).resolve()):
            data["source"]["landing_path"] = str(path.relative_to(local_path(lake).resolve()))
    spec = parse_spec(data, str(spec_file))
    days = {d: (sample.days[d], data_files(spark, sample.days[d])) for d in sample.sampled_days}
    suites = suggest_suites_from(
        spark, spec, sample.label, days or {date.today(): (str(path), [str(path)])}
    )
    calibration = None
    if len(sample.days) > spec.drift.min_reference_days:
        progress(f"Calibrating drift on {len(sample.days)} landed days")
        try:
            calibration = calibrate(spark, spec, sample.days, progress)
        except SpecError as err:  # too little history: the default thresholds stay
            problems = [*problems, f"drift thresholds left at the defaults: {err}"]
    return Scaffold(sample, frame.count(), problems, data, why, suites, calibration)
