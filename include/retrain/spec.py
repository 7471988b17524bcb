"""Dataset specs: one YAML file per dataset, parsed once into a frozen, typed object.

Every error names the file and the key, so a person can fix the spec without reading code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import types
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from retrain.errors import SpecError
from retrain.paths import REPO_ROOT

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
COLUMN_TYPES = ("string", "int", "long", "double", "float", "boolean", "date", "timestamp")
NUMERIC_TYPES = ("int", "long", "double", "float")
SOURCE_FORMATS = ("csv", "json", "parquet")
SOLVERS = ("adam", "l-bfgs", "gd")
# The model keys only some solvers read; every other model key applies to all.
SOLVER_KEYS = {
    **dict.fromkeys(
        ("batch_size", "learning_rate", "max_epochs", "weight_decay", "patience",
         "class_weights"), ("adam",)
    ),
    "max_iter": ("l-bfgs", "gd"),
    "step_size": ("gd",),
    "block_size": ("l-bfgs", "gd"),
}  # fmt: skip
CLASS_WEIGHTS = ("none", "balanced")
GATE_METRICS = ("weighted_f1", "macro_f1", "accuracy", "positive_f1")
GATE_MODES = {  # what each does, as the trigger form says it
    "enforce": "publish only a better model",
    "dry_run": "decide, never publish",
    "off": "always publish",
}
DRIFT_SEVERITIES = ("warning", "critical")
EMPTY_DAYS = ("fail", "skip")
PROTECTIONS = ("pseudonymize", "encrypt", "drop")
FEATURE_TYPES = ("numeric", "categorical", "text", "vector")
# Schema types each feature type can be read from. A vector is text holding numbers separated
# by spaces, commas or semicolons ("0 3 16 ..."; "[0.0, 3.0]" from JSON or Parquet arrays too).
FEATURE_SOURCES = {
    "numeric": NUMERIC_TYPES,
    "categorical": ("string", "int", "long", "boolean"),
    "text": ("string",),
    "vector": ("string",),
}
# Reader options a spec may set, by format, as Spark spells them; keys match case-insensitively
# (as Spark's do), so `Header` cannot slip past the header check. Options that change how bad
# rows are handled (mode, columnNameOfCorruptRecord) are retrain's to set.
SOURCE_OPTIONS = {
    "csv": ("header", "sep", "delimiter", "quote", "escape", "encoding", "charset", "multiLine",
            "comment", "nullValue", "emptyValue", "nanValue", "ignoreLeadingWhiteSpace",
            "ignoreTrailingWhiteSpace", "dateFormat", "timestampFormat", "lineSep", "locale",
            "unescapedQuoteHandling", "maxCharsPerColumn"),
    "json": ("encoding", "lineSep", "dateFormat", "timestampFormat", "locale"),
    "parquet": (),
}  # fmt: skip
STOP_WORDS = ("english", "none")
WEIGHTINGS = ("tfidf", "counts")
# What defines the dataset, where its model goes and how its personal data is protected cannot
# vary per run: a trigger Param must not switch protection off or publish elsewhere.
FIXED_KEYS = ("name", "schema", "source", "sensitive", "registered_model_name")
NOT_KEYS = ("file", "given")  # fields of a Spec that no spec file sets


Problem = tuple[bool, str, str]  # (broken, dotted key, what is wrong)


def one_of(value: str, choices: Iterable[str], key: str) -> Problem:
    return value not in choices, key, f"must be one of {', '.join(choices)}"


def at_least(value: float, low: float, key: str) -> Problem:
    return value < low, key, f"must be at least {low}" if low else "must be 0 or more"


def quote(column: str) -> str:
    """A spec column name as a Spark SQL identifier, whatever characters it holds."""
    return "`" + column.replace("`", "``") + "`"


@dataclass(frozen=True)
class Source:
    """Where the daily landing partitions are and how to read them."""

    format: str = "csv"
    # Relative to the lake root unless absolute or a URI; partitions are `<path>/ds=YYYY-MM-DD`.
    landing_path: str = ""
    options: dict[str, str] = field(default_factory=dict)
    # A day's partition may land until this time (UTC, HH:MM) of the next day: a run waits
    # for it (deferred, no worker slot held) until then, and fails "not landed by" after.
    landed_by: str = "06:00"
    # fail: a day with no data fails its run; skip: a feed that has no data on some days
    # (weekends, holidays) ends such a run successfully with the decision `no_data`.
    empty_days: str = "fail"

    def problems(self) -> list[Problem]:
        allowed = SOURCE_OPTIONS.get(self.format, ())
        return [
            (
                not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", self.landed_by),
                "source.landed_by",
                "must be a time of day, HH:MM (UTC)",
            ),
            one_of(self.empty_days, EMPTY_DAYS, "source.empty_days"),
            one_of(self.format, SOURCE_FORMATS, "source.format"),
            *[
                (
                    key not in allowed,
                    f"source.options.{key}",
                    f"is not a {self.format} reader option retrain allows (allowed: "
                    f"{', '.join(allowed) or 'none'})",
                )
                for key in self.options
            ],
            (
                not _inside_lake(self.landing_path),
                "source.landing_path",
                "must be a path inside the lake (relative, no '..') or an object-store URI "
                "(s3a://, hdfs://, ...)",
            ),
        ]


@dataclass(frozen=True)
class Split:
    """Fractions of ids per split; the split of an id is a hash of it, stable across days."""

    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    seed: int = 42

    @property
    def names(self) -> list[str]:
        """The splits a row can fall in: those with a share of the ids."""
        return [name for name in ("train", "validation", "test") if getattr(self, name) > 0]

    def problems(self) -> list[Problem]:
        total = self.train + self.validation + self.test
        return [
            (
                abs(total - 1.0) > 1e-9 or min(self.train, self.test) <= 0,
                "split",
                f"fractions must be positive and add up to 1 (they add up to {total})",
            )
        ]


@dataclass(frozen=True)
class Model:
    """The network (MLlib's multilayer perceptron: sigmoid hidden layers, softmax output) and
    how it is trained; input and output layers come from the data."""

    hidden_layers: tuple[int, ...] = (64,)
    # adam: mini-batch Adam in one Spark job, early-stopped on the validation split
    # (retrain.spark.trainer); l-bfgs and gd: MLlib's own full-batch solvers.
    solver: str = "adam"
    # adam: rows per step at most; small data takes smaller batches (20+ steps an epoch)
    batch_size: int = 256
    learning_rate: float = 0.01  # adam: step size
    max_epochs: int = 200  # adam: passes over the training rows at most
    weight_decay: float = 1e-4  # adam: decoupled L2 shrinkage of the weights per step (AdamW)
    patience: int = 10  # adam: epochs without a lower validation loss before stopping
    class_weights: str = "none"  # adam: none | balanced (rare classes weigh more)
    max_iter: int = 200  # l-bfgs, gd: iterations
    step_size: float = 0.03  # gd: step size
    # adam: the least fall of the validation loss that counts; l-bfgs, gd: convergence
    tol: float = 1e-6
    # l-bfgs, gd: rows stacked per matrix product (same gradient); 1024 measured slower.
    block_size: int = 128
    seed: int = 42
    # Start from the champion's weights when its layers match: daily data changes little.
    warm_start: bool = False

    def problems(self) -> list[Problem]:
        return [
            one_of(self.solver, SOLVERS, "model.solver"),
            at_least(self.max_iter, 1, "model.max_iter"),
            at_least(self.batch_size, 1, "model.batch_size"),
            (
                not 0 < self.learning_rate <= 1,
                "model.learning_rate",
                "must be above 0 and at most 1",
            ),
            at_least(self.max_epochs, 1, "model.max_epochs"),
            at_least(self.weight_decay, 0, "model.weight_decay"),
            (
                not 1 <= self.patience <= self.max_epochs,
                "model.patience",
                f"must be between 1 and model.max_epochs ({self.max_epochs})",
            ),
            one_of(self.class_weights, CLASS_WEIGHTS, "model.class_weights"),
            at_least(self.tol, 0, "model.tol"),
            at_least(self.block_size, 1, "model.block_size"),
            (
                any(n < 1 for n in self.hidden_layers),
                "model.hidden_layers",
                "sizes must be at least 1",
            ),
        ]

    def ignored(self, given: Iterable[str]) -> list[Problem]:
        """Keys set in the spec (or a run's overrides) that this model's solver never reads."""
        return [
            (
                self.solver not in solvers,
                f"model.{key}",
                f"applies to solver {' or '.join(solvers)}, not to this spec's {self.solver}: "
                "remove it, or set model.solver",
            )
            for key, solvers in SOLVER_KEYS.items()
            if f"model.{key}" in given
        ]


@dataclass(frozen=True)
class Text:
    """How every `text` feature becomes numbers: tokens, n-grams, then counts or TF-IDF."""

    token_pattern: str = r"[^\p{L}\p{N}']+"  # Java regex of what separates tokens
    min_token_length: int = 1
    stop_words: str = "english"  # english (Spark's list) | none
    ngrams: int = 2  # 1: words; 2: words and word pairs; 3: also triples
    vocabulary_size: int = 2000  # the most frequent terms of the training rows
    min_doc_freq: int = 2  # a term in fewer training rows is not in the vocabulary
    weighting: str = "tfidf"  # tfidf | counts; each row's vector is then scaled to length 1

    def problems(self) -> list[Problem]:
        return [
            one_of(self.stop_words, STOP_WORDS, "text.stop_words"),
            one_of(self.weighting, WEIGHTINGS, "text.weighting"),
            (not 1 <= self.ngrams <= 5, "text.ngrams", "must be between 1 and 5"),
            at_least(self.vocabulary_size, 1, "text.vocabulary_size"),
            at_least(self.min_doc_freq, 1, "text.min_doc_freq"),
            at_least(self.min_token_length, 1, "text.min_token_length"),
            (not _is_regex(self.token_pattern), "text.token_pattern", "is not a valid regex"),
        ]


@dataclass(frozen=True)
class Augment:
    """Shifted, noisy copies of the training rows' images (a vector feature); off by default.

    Only the training split is enlarged: validation and test rows stay as they came.
    """

    column: str = ""  # the vector feature holding the image; empty: no augmentation
    image_shape: tuple[int, ...] = ()  # (height, width), row-major
    copies: int = 1  # extra copies per training row
    max_shift: int = 1  # each copy moves by up to this many pixels in x and y (filled with 0)
    noise: float = 0.0  # plus uniform noise in [-noise, noise] on every value
    seed: int = 42


@dataclass(frozen=True)
class Gate:
    """When a candidate may replace the champion (docs/training.md, "The gate")."""

    mode: str = "enforce"  # enforce | dry_run (decide, never publish) | off (always publish)
    metric: str = "weighted_f1"
    min_f1: float = 0.9  # absolute floor for the gate metric
    max_regression: float = 0.0  # a candidate further below the champion is rejected outright
    min_test_rows: int = 30
    # Paired bootstrap of (candidate - champion) on the same test rows; 0 turns it off. With it
    # on, the candidate must be better beyond noise: the interval's lower bound above
    # `min_improvement`, so a daily retrain does not swap the champion back and forth on luck.
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    min_improvement: float = 0.0
    seed: int = 42
    positive_class: str = ""  # binary datasets: the class whose F1 is `positive_f1`
    # A backfill re-creates the past: it registers and records, but the champion stays unless
    # this is on (for a first history, or a deliberate rebuild).
    backfill_moves_champion: bool = False
    # Any run: a model whose data ends before the champion's never replaces it, unless this is
    # on (e.g. to roll back to a model of an earlier day on purpose).
    allow_older_champion: bool = False

    def problems(self) -> list[Problem]:
        return [
            one_of(self.metric, GATE_METRICS, "gate.metric"),
            one_of(self.mode, GATE_MODES, "gate.mode"),
            at_least(self.bootstrap_resamples, 0, "gate.bootstrap_resamples"),
            (not 0.5 <= self.confidence < 1, "gate.confidence", "must be in [0.5, 1)"),
            (
                self.metric == "positive_f1" and not self.positive_class,
                "gate.positive_class",
                "must name the positive class when gate.metric is positive_f1",
            ),
        ]


@dataclass(frozen=True)
class Drift:
    """How far a day may move from the training window (docs/validation.md)."""

    bins: int = 10  # quantile bins of the window per feature for the PSI
    psi_warning: float = 0.1
    psi_critical: float = 0.25
    # Per column [warning, critical] PSI instead of the two above; `retrain calibrate` sets
    # them from the feed's own day-to-day history.
    psi_by_column: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # warning: label drift is reported, the evaluation gate protects the model; critical:
    # it fails the day like feature drift.
    label: str = "warning"
    # Feature drift and volume fail a day only against at least this many reference days;
    # against fewer they are warnings (one or two days say little about an ordinary day).
    min_reference_days: int = 3
    min_rows: int = 100  # fewer rows on either side: PSI is noise, so it is skipped
    # The day's rows over the window's daily median rows: [low, high].
    volume_warning: tuple[float, ...] = (0.8, 1.25)
    volume_critical: tuple[float, ...] = (0.5, 2.0)

    def psi_bands(self, column: str) -> tuple[float, float]:
        """(warning, critical) PSI for a column."""
        warning, critical = self.psi_by_column.get(column, (self.psi_warning, self.psi_critical))
        return warning, critical

    def problems(self) -> list[Problem]:
        return [
            *[
                (
                    len(band) != 2 or not 0 <= band[0] < band[1],
                    f"drift.{key}",
                    "must be [low, high] with 0 <= low < high",
                )
                for key, band in (
                    ("volume_warning", self.volume_warning),
                    ("volume_critical", self.volume_critical),
                )
            ],
            (
                not 0 < self.psi_warning <= self.psi_critical,
                "drift.psi_warning",
                "must be above 0 and at most drift.psi_critical",
            ),
            *[
                (
                    len(band) != 2 or not 0 < band[0] <= band[1],
                    f"drift.psi_by_column.{column}",
                    "must be [warning, critical] with 0 < warning <= critical",
                )
                for column, band in self.psi_by_column.items()
            ],
            one_of(self.label, DRIFT_SEVERITIES, "drift.label"),
            at_least(self.min_reference_days, 1, "drift.min_reference_days"),
            at_least(self.bins, 2, "drift.bins"),
        ]


@dataclass(frozen=True)
class Spec:
    """A dataset: its source, schema, features, model and gate."""

    name: str
    schema: dict[str, str]
    id_column: str
    label_column: str
    feature_columns: tuple[str, ...]
    registered_model_name: str
    # column -> numeric | categorical | text | vector; numeric columns default to numeric
    feature_types: dict[str, str] = field(default_factory=dict)
    text: Text = field(default_factory=Text)
    augment: Augment = field(default_factory=Augment)
    source: Source = field(default_factory=Source)
    description: str = ""
    schedule: str = "0 0 * * *"
    start_date: str = "2026-01-01"
    window_days: int = 7
    max_bad_fraction: float = 0.05
    # Rows with no label (e.g. an outcome not known yet) are kept for scoring, skipped by
    # training, and limited apart from bad rows: a larger share fails the day.
    max_unlabelled_fraction: float = 0.5
    split: Split = field(default_factory=Split)
    model: Model = field(default_factory=Model)
    gate: Gate = field(default_factory=Gate)
    drift: Drift = field(default_factory=Drift)
    # column -> pseudonymize | encrypt | drop, applied before anything is written
    # (retrain.spark.pii)
    sensitive: dict[str, str] = field(default_factory=dict)
    file: str = field(default="", compare=False)
    # The dotted keys the file and a run's overrides set (the rest are defaults).
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def landing_path(self) -> str:
        return self.source.landing_path or f"landing/{self.name}"

    @property
    def stored_columns(self) -> list[str]:
        """The schema's columns that are kept in the lake (dropped sensitive ones are not)."""
        return [c for c in self.schema if self.sensitive.get(c) != "drop"]

    def feature_type(self, column: str) -> str:
        default = "numeric" if self.schema.get(column) in NUMERIC_TYPES else ""
        return self.feature_types.get(column, default)

    def features_of(self, kind: str) -> list[str]:
        """The feature columns of one feature type, in spec order."""
        return [c for c in self.feature_columns if self.feature_type(c) == kind]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for not_a_key in NOT_KEYS:
            data.pop(not_a_key)
        return data

    def fingerprint(self) -> str:
        """Hash of everything that shapes a model (not the file's location)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: dict[str, Any]) -> Spec:
        """Return a copy with dotted keys (`model.max_iter`) replaced, each value type-checked."""
        data = self.to_dict()
        for key, value in overrides.items():
            *sections, leaf = key.split(".")
            node = data
            for section in sections:
                node = node.get(section) if isinstance(node, dict) else None
            if key.split(".")[0] in FIXED_KEYS or not isinstance(node, dict) or leaf not in node:
                raise SpecError(f"{self.file}: unknown override key '{key}'")
            # Text from a CLI or form is parsed as YAML ("50" -> 50, "[32, 16]" -> a list), but
            # never for a text key: "off" must stay "off", not YAML 1.1's False.
            typed = isinstance(value, str) and not isinstance(node[leaf], str)
            node[leaf] = yaml.safe_load(value) if typed else value
        return parse_spec(data, self.file, given=self.given | set(overrides))


def _convert(tp: Any, value: Any, key: str, file: str) -> Any:
    """Check `value` against the annotation `tp`, converting lists to tuples."""
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.", file)
    origin = get_origin(tp)
    if origin is tuple:
        (item_type, _) = get_args(tp)
        if not isinstance(value, list | tuple):
            raise SpecError(f"{file}: key '{key}' must be a list, got {value!r}")
        return tuple(_convert(item_type, v, f"{key}[{i}]", file) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{file}: key '{key}' must be a mapping, got {value!r}")
        (_, value_type) = get_args(tp)
        return {str(k): _convert(value_type, v, f"{key}.{k}", file) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise SpecError(
            f"{file}: key '{key}' must be {tp.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _build(cls: type, data: Any, prefix: str, file: str) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{file}: '{prefix.rstrip('.') or 'spec'}' must be a mapping")
    hints = get_type_hints(cls, globalns=globals() | {"types": types})
    fields = [f for f in dataclasses.fields(cls) if f.name not in NOT_KEYS]
    known = {f.name for f in fields}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(
            f"{file}: unknown key '{prefix}{unknown[0]}' (allowed: {', '.join(sorted(known))})"
        )
    kwargs = {}
    for f in fields:
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SpecError(f"{file}: missing required key '{prefix}{f.name}'")
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], prefix + f.name, file)
    return cls(**kwargs)


def _problems(spec: Spec) -> list[tuple[str, str]]:
    """(key, what is wrong) for every rule the spec breaks: each section's own, then the rules
    that tie sections together."""
    rules = [
        *spec.source.problems(),
        *spec.text.problems(),
        *spec.split.problems(),
        *spec.drift.problems(),
        *spec.model.problems(),
        *spec.model.ignored(spec.given),
        *spec.gate.problems(),
        *_column_problems(spec),
        *_augment_problems(spec),
        (spec.window_days < 1, "window_days", "must be at least 1"),
        *[
            (not 0 <= value <= 1, key, "must be between 0 and 1")
            for key, value in (
                ("max_bad_fraction", spec.max_bad_fraction),
                ("max_unlabelled_fraction", spec.max_unlabelled_fraction),
            )
        ],
        (
            not re.fullmatch(r"\d{4}-\d{2}-\d{2}", spec.start_date),
            "start_date",
            "must be a date, YYYY-MM-DD",
        ),
    ]
    return [(key, why) for broken, key, why in rules if broken]


def _column_problems(spec: Spec) -> list[Problem]:
    """The rules that tie the columns of the schema to the roles, features and protections."""
    return [
        (not NAME_PATTERN.fullmatch(spec.name), "name", f"must match {NAME_PATTERN.pattern}"),
        *[
            (
                kind not in COLUMN_TYPES,
                f"schema.{column}",
                f"has unknown type {kind!r} (use one of {', '.join(COLUMN_TYPES)})",
            )
            for column, kind in spec.schema.items()
        ],
        (spec.id_column not in spec.schema, "id_column", "is not a column in 'schema'"),
        (spec.label_column not in spec.schema, "label_column", "is not a column in 'schema'"),
        (not spec.feature_columns, "feature_columns", "must list at least one column"),
        *[
            (
                column not in spec.schema,
                "feature_columns",
                f"names {column!r}, which is not a column in 'schema'",
            )
            for column in spec.feature_columns
        ],
        (
            spec.label_column in spec.feature_columns,
            "feature_columns",
            f"names the label {spec.label_column!r}: a model cannot learn from its answer",
        ),
        *[
            (
                column in spec.schema and not spec.feature_type(column),
                f"feature_types.{column}",
                f"is needed: {column!r} is a {spec.schema.get(column)} column, so say "
                f"{' or '.join(_types_for(spec.schema.get(column, '')))}",
            )
            for column in spec.feature_columns
        ],
        *[
            (broken, f"feature_types.{column}", why)
            for column, kind in spec.feature_types.items()
            for broken, _, why in (
                one_of(kind, FEATURE_TYPES, ""),
                (column not in spec.feature_columns, "", "is not in 'feature_columns'"),
                (
                    kind in FEATURE_TYPES
                    and spec.schema.get(column, "string") not in FEATURE_SOURCES[kind],
                    "",
                    f"cannot be {kind}: a {kind} feature needs a "
                    f"{' or '.join(FEATURE_SOURCES.get(kind, ()))} column",
                ),
            )
        ],
        *[
            (
                column not in (spec.label_column, *spec.feature_columns),
                f"drift.psi_by_column.{column}",
                "is neither the label nor a feature",
            )
            for column in spec.drift.psi_by_column
        ],
        *[
            (broken, f"sensitive.{column}", why)
            for column, action in spec.sensitive.items()
            for broken, _, why in (
                one_of(action, PROTECTIONS, ""),
                (column not in spec.schema, "", "is not a column in 'schema'"),
                (spec.schema.get(column, "string") != "string", "", "must be a string column"),
                (
                    column == spec.label_column or column in spec.feature_columns,
                    "",
                    "is the label or a feature: a model cannot learn from a protected value",
                ),
                (
                    column == spec.id_column and action != "pseudonymize",
                    "",
                    "is the id column: only pseudonymize keeps ids joinable",
                ),
            )
        ],
    ]


def _types_for(column_type: str) -> list[str]:
    """The feature types a schema type can be read as."""
    return [t for t in FEATURE_TYPES if column_type in FEATURE_SOURCES[t]]


def _is_regex(pattern: str) -> bool:
    try:
        re.compile(pattern.replace(r"\p{L}", "a").replace(r"\p{N}", "0"))
    except re.error:
        return False
    return bool(pattern)


def _augment_problems(spec: Spec) -> list[tuple[bool, str, str]]:
    augment = spec.augment
    if not augment.column:
        return []
    shape = augment.image_shape
    return [
        (
            spec.feature_type(augment.column) != "vector",
            "augment.column",
            f"must be a vector feature (feature_types.{augment.column}: vector)",
        ),
        (
            len(shape) != 2 or min(shape) < 1,
            "augment.image_shape",
            "must be [height, width] of the image in the vector",
        ),
        (augment.copies < 1, "augment.copies", "must be at least 1"),
        (augment.max_shift < 0, "augment.max_shift", "must be 0 or more"),
        (augment.noise < 0, "augment.noise", "must be 0 or more"),
    ]


def _inside_lake(path: str) -> bool:
    if "://" in path:
        return not path.lower().startswith("file:")
    return not path.startswith(("/", "~")) and ".." not in Path(path).parts


def _canonical_options(source: Source) -> Source:
    """Reader option keys as Spark spells them (Spark matches them case-insensitively)."""
    spelled = {o.lower(): o for o in SOURCE_OPTIONS.get(source.format, ())}
    options = {spelled.get(k.lower(), k): v for k, v in source.options.items()}
    return dataclasses.replace(source, options=options)


def parse_spec(data: Any, file: str, given: Iterable[str] | None = None) -> Spec:
    """Build and check a Spec from already-loaded YAML data (`given`: the dotted keys set, if
    not all of `data`'s, as after overrides)."""
    spec = _build(Spec, data, "", file)
    given = frozenset(_dotted_keys(data) if given is None else given)
    model = spec.model
    if "model.patience" not in given:  # the default follows a smaller max_epochs
        model = dataclasses.replace(model, patience=min(model.patience, model.max_epochs))
    spec = dataclasses.replace(
        spec, file=file, source=_canonical_options(spec.source), model=model, given=given
    )
    problems = [f"key '{key}' {why}" for key, why in _problems(spec)]
    if problems:  # every problem at once: one edit, one retry
        raise SpecError(f"{file}: {'; '.join(problems)}")
    return spec


def _dotted_keys(data: dict[str, Any]) -> set[str]:
    """The keys of a spec's data, a section's as `section.key`."""
    return {
        f"{key}.{inner}" if isinstance(value, dict) else key
        for key, value in data.items()
        for inner in (value if isinstance(value, dict) else [None])
    }


def spec_dirs() -> list[Path]:
    """The bundled spec folder, then any folders listed in RETRAIN_DATASETS_PATH."""
    extra = os.environ.get("RETRAIN_DATASETS_PATH", "")
    return [REPO_ROOT / "include" / "datasets"] + [Path(p) for p in extra.split(os.pathsep) if p]


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: YAML alone keeps the last
    one in silence, so an edit (or a tool) that added a key again would not be the one read."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges keys in; it is not a key of its own
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # YAML's own check below says what is wrong with it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_spec_text(text: str, where: str) -> Any:
    """A spec file's YAML, with no key given twice; SpecError naming `where` otherwise."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        raise SpecError(f"{where}: not valid YAML: {err}") from None


def load_spec_file(path: Path) -> Spec:
    spec = parse_spec(read_spec_text(path.read_text(), str(path)), str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: key 'name' is {spec.name!r} but the file is named {path.name}")
    return spec


def load_all_specs(broken: dict[str, str] | None = None) -> dict[str, Spec]:
    """Every spec on the spec path, by name; a name defined twice is an error. With `broken`,
    a spec that does not load is put there (dataset name -> error) instead of raising, so one
    broken spec costs only its own dataset."""
    specs: dict[str, Spec] = {}
    for folder in spec_dirs():
        for path in sorted(folder.glob("*.yaml")):
            try:
                spec = load_spec_file(path)
                if spec.name in specs:
                    raise SpecError(
                        f"{path}: dataset {spec.name!r} is also defined in {specs[spec.name].file}"
                    )
            except SpecError as err:
                if broken is None:
                    raise
                broken[path.stem] = str(err)
                continue
            specs[spec.name] = spec
    return specs


def load_spec(name: str) -> Spec:
    if not NAME_PATTERN.fullmatch(name):
        raise SpecError(f"dataset name {name!r} must match {NAME_PATTERN.pattern}")
    broken: dict[str, str] = {}
    specs = load_all_specs(broken)
    if name in broken:
        raise SpecError(broken[name])
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise SpecError(
            f"no dataset spec named {name!r} (known: {known}; searched "
            f"{', '.join(str(d) for d in spec_dirs())})"
        )
    return specs[name]
