"""Great Expectations suites: where they live, running one inside a Spark job, reading results.

A dataset has two GX 1.x suites as JSON, `raw.json` (the ingested partition) and
`features.json` (the preprocessed window). Each expectation may carry GX's own `severity`:
`critical` (GX's default) fails the run, `warning` and `info` are recorded and shown only.
`meta.severity`, the field this project used before GX had one, is read as an alias.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrain.paths import REPO_ROOT
from retrain.spec import SpecError, spec_dirs

# GX must not phone home from a pipeline.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

SUITES = ("raw", "features")
CRITICAL, WARNING, INFO = "critical", "warning", "info"  # GX's FailureSeverity values
SEVERITIES = (CRITICAL, WARNING, INFO)
# The parsers GX applies as a column expression (the second is an old name of the first).
GX_PARSERS = ("great_expectations", "great_expectations__experimental__")
# GX 1.x expectations that hand a query from the suite to the engine as SQL.
QUERY_TYPES = ("unexpected_rows_expectation", "expect_query_results_to_match_comparison")


def suite_dirs(dataset: str) -> list[Path]:
    """`expectations/<dataset>/` in the project, then beside every extra spec folder."""
    extra = [folder / "expectations" / dataset for folder in spec_dirs()[1:]]
    return [REPO_ROOT / "expectations" / dataset, *extra]


def suite_path(dataset: str, suite: str) -> Path:
    candidates = [folder / f"{suite}.json" for folder in suite_dirs(dataset)]
    return next((p for p in candidates if p.exists()), candidates[0])


# The expectations ingest turns into row rules: a breaking row goes to quarantine.
ROW_RULE_TYPES = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_value_lengths_to_be_between",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_be_unique",
)


def load_suite(dataset: str, suite: str) -> dict[str, Any]:
    path = suite_path(dataset, suite)
    if not path.exists():
        searched = ", ".join(str(folder) for folder in suite_dirs(dataset))
        raise SpecError(
            f"no '{suite}' expectation suite for {dataset}: {path.name} not in {searched}"
        )
    try:
        suite_json = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SpecError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(suite_json, dict) or not isinstance(suite_json.get("expectations"), list):
        raise SpecError(f"{path}: a GX suite needs a 'name' and a list of 'expectations'")
    suite_json = with_native_severity(suite_json, str(path))
    for index, item in enumerate(suite_json["expectations"]):
        where = f"{path}: expectation {index} ({item.get('type')})"
        if (item.get("kwargs") or {}).get("row_condition") and is_row_rule(item):
            raise SpecError(
                f"{where} is a critical row rule with a row_condition, but quarantine applies "
                "row rules to every row: make it a 'warning' (GX then checks it with the "
                "condition) or drop the condition"
            )
    return suite_json


def is_row_rule(expectation: dict[str, Any]) -> bool:
    """A critical per-row expectation that ingest applies to every row (`retrain.spark.rules`)."""
    kwargs = expectation.get("kwargs") or {}
    return (
        expectation.get("type") in ROW_RULE_TYPES
        and severity_of(expectation) == CRITICAL
        and kwargs.get("column") is not None
        and kwargs.get("mostly", 1) >= 1
    )


def severity_of(expectation: dict[str, Any]) -> str:
    """GX's `severity` of an expectation (or of a result's `expectation_config`), else the
    `meta.severity` alias, else GX's default, critical."""
    return expectation.get("severity") or (expectation.get("meta") or {}).get("severity", CRITICAL)


def sql_problem(expectation: dict[str, Any]) -> str | None:
    """Why an expectation would make Spark run text from the suite as SQL, or None: a query
    expectation, or a `row_condition` GX does not read with its own parser."""
    kwargs = expectation.get("kwargs") or {}
    queries = sorted(key for key in kwargs if key.endswith("query"))
    if expectation.get("type") in QUERY_TYPES or queries:
        return (
            f"runs SQL from the suite ({', '.join(queries) or 'a query'}), which Spark would "
            "execute as written; express the check with GX's column and table expectations"
        )
    return row_condition_problem(expectation)


def row_condition_problem(expectation: dict[str, Any]) -> str | None:
    """Why GX would not read an expectation's `row_condition` with its own parser, or None.

    GX 1.x hands any condition it does not parse itself to Spark as raw SQL (`data.filter(
    text)`): a string with no `condition_parser` or another one, a `pass_through` object, even a
    number. A suite is data, so only text in GX's own grammar is taken, all of it (GX would drop
    what follows a valid start in silence): `col("x") > 0`, `col("s") == "a"`,
    `col("x").notNull()`.
    """
    if "row_condition" in expectation or "condition_parser" in expectation:
        return "has row_condition or condition_parser beside its kwargs; put them in kwargs"
    kwargs = expectation.get("kwargs") or {}
    condition, parser = kwargs.get("row_condition"), kwargs.get("condition_parser")
    how = (
        "GX would run it as raw Spark SQL; write it for condition_parser 'great_expectations', "
        'e.g. col("x") > 0'
    )
    if parser is not None and parser not in GX_PARSERS:
        return f"has condition_parser {parser!r}: {how}"
    if condition is None:
        return None
    if parser is None:
        return f"has a row_condition without a condition_parser: {how}"
    if not isinstance(condition, str):
        return f"has a row_condition that is a {type(condition).__name__}, not text: {how}"
    return _grammar_problem(condition)


def _grammar_problem(condition: str) -> str | None:
    """Why GX's own grammar (a pyparsing expression; loaded only for a suite that has a
    condition) does not read all of `condition`, or None."""
    from great_expectations.compatibility.pyparsing import ParseException, parse_string
    from great_expectations.expectations.legacy_row_conditions import condition as grammar

    try:
        parse_string(grammar, condition, parse_all=True)
    except ParseException as err:
        return (
            f"has row_condition {condition!r}, which GX's 'great_expectations' parser does not "
            f'read (from character {err.loc}); e.g. col("x") > 0 or col("x").notNull()'
        )
    return None


def with_native_severity(suite_json: dict[str, Any], where: str) -> dict[str, Any]:
    """The suite with each expectation's severity in GX's own field, so that GX's results carry
    it, and `meta.severity` dropped; the two must not disagree where both are given. No
    expectation may make Spark run text from the suite as SQL (`sql_problem`)."""
    expectations = []
    for index, item in enumerate(suite_json["expectations"]):
        if not isinstance(item, dict):
            raise SpecError(f"{where}: expectation {index} is not an object: {item!r:.80}")
        what = f"{where}: expectation {index} ({item.get('type')})"
        problem = sql_problem(item)
        if problem:
            raise SpecError(f"{what} {problem}")
        meta = dict(item.get("meta") or {})
        native, alias = item.get("severity"), meta.pop("severity", None)
        if native and alias and native != alias:
            raise SpecError(
                f"{what} has severity {native!r} and meta.severity {alias!r}: keep GX's "
                "'severity' only"
            )
        severity = native or alias or CRITICAL
        if severity not in SEVERITIES:
            allowed = ", ".join(repr(s) for s in SEVERITIES)
            raise SpecError(f"{what} has severity {severity!r}; use one of {allowed}")
        expectations.append(item | {"severity": severity, "meta": meta})
    return suite_json | {"expectations": expectations}


# (GX root, suite name) -> (what it was set up for, context, checkpoint): see `_checkpoint`.
_CHECKPOINTS: dict[tuple[str, str], tuple[tuple[Any, ...], Any, Any]] = {}


def _checkpoint(
    gx_root: str, suite_json: dict[str, Any], is_spark: bool, result_format: str, docs: bool
) -> tuple[Any, Any]:
    """(GX context, checkpoint) for a suite, set up once and reused while nothing about it
    changes, as a history validates the same raw suite day after day (the setup writes GX's
    config files: ~0.4 s each time). Anything else rebuilds it: GX refuses to run a checkpoint
    whose stored suite or settings changed since it was loaded."""
    setup = (json.dumps(suite_json, sort_keys=True), is_spark, result_format, docs)
    key = (gx_root, suite_json["name"])
    cached = _CHECKPOINTS.get(key)
    if cached and cached[0] == setup:
        return cached[1], cached[2]
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=gx_root)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # keep task logs clean
    suite = context.suites.add_or_update(ExpectationSuite(**suite_json))
    source = (
        context.data_sources.add_or_update_spark("spark")
        if is_spark
        else context.data_sources.add_or_update_pandas("pandas")
    )
    name = suite.name
    asset = next((a for a in source.assets if a.name == name), None) or source.add_dataframe_asset(
        name
    )
    batch = next(
        iter(asset.batch_definitions), None
    ) or asset.add_batch_definition_whole_dataframe("whole")
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs")] if docs else [],
            result_format=result_format,
        )
    )
    _CHECKPOINTS[key] = (setup, context, checkpoint)
    return context, checkpoint


def run_suite(
    frame: Any,
    suite_json: dict[str, Any],
    gx_root: Path,
    run_name: str,
    result_format: str = "BOOLEAN_ONLY",
    *,
    deferred_docs: list[Any] | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Validate a Spark or pandas frame against a suite in one checkpoint run.

    Returns the result as JSON and the path of its Data Docs page. BOOLEAN_ONLY costs about one
    Spark pass for the whole suite; SUMMARY adds a job per expectation, so callers ask for it
    only to explain a failure. With `deferred_docs`, the page is not built now: the result's
    identifier is added to the list, for one `build_docs` of many results (a history).
    """
    import great_expectations as gx

    suite_json = with_native_severity(suite_json, suite_json["name"])
    is_spark = type(frame).__module__.startswith("pyspark")
    context, checkpoint = _checkpoint(
        str(gx_root), suite_json, is_spark, result_format, deferred_docs is None
    )
    outcome = checkpoint.run(
        batch_parameters={"dataframe": frame},
        # An explicit run time keeps every validation (GX would read a date-like name as one).
        run_id=gx.RunIdentifier(run_name=run_name, run_time=datetime.now(UTC)),
    )
    ((identifier, result),) = outcome.run_results.items()
    if deferred_docs is not None:
        deferred_docs.append(identifier)
    urls = context.get_docs_sites_urls(resource_identifier=identifier, only_if_exists=False)
    page = urls[0]["site_url"].removeprefix("file://") if urls else None
    return result.to_json_dict(), page


def build_docs(gx_root: Path, identifiers: list[Any]) -> None:
    """Build the Data Docs pages of results validated with `deferred_docs`, and the index once
    (building it per result costs a second a day, growing with the site)."""
    import great_expectations as gx

    if identifiers:
        gx.get_context(mode="file", project_root_dir=str(gx_root)).build_data_docs(
            resource_identifiers=identifiers
        )


def describe(item: dict[str, Any]) -> str:
    """One line for a failed expectation: what was expected and, where GX says, what was seen."""
    config = item["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    result = item.get("result") or {}
    check = (config.get("meta") or {}).get("check")
    if check:  # a generated check (drift) says what it measures in words
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        allowed = f"at most {high}" if low is None else f"between {low} and {high}"
        return f"{check}: {result.get('observed_value', '?')}, allowed {allowed}"
    text = f"{config['type']}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    if "observed_value" in result:
        text += f": observed {result['observed_value']!r}"
    elif result.get("unexpected_count"):
        examples = ", ".join(repr(v) for v in (result.get("partial_unexpected_list") or [])[:3])
        text += f": {result['unexpected_count']} unexpected rows (e.g. {examples})"
    return text


def failures(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(critical, other) descriptions of the expectations that failed, by the severity GX
    reports in each result (warning and info are both only reported)."""
    critical: list[str] = []
    other: list[str] = []
    for item in result["results"]:
        if not item["success"]:
            is_critical = severity_of(item["expectation_config"]) == CRITICAL
            (critical if is_critical else other).append(describe(item))
    return critical, other


def validate(
    frame: Any,
    suite_json: dict[str, Any],
    gx_root: Path,
    run_name: str,
    deferred_docs: list[Any] | None = None,
) -> dict[str, Any]:
    """Run a suite cheaply; if anything failed, once more with SUMMARY to say what and why.

    Returns the record section: success (no critical failure), counts, failures, Data Docs page.
    """
    result, page = run_suite(frame, suite_json, gx_root, run_name, deferred_docs=deferred_docs)
    if not result["success"]:
        result, page = run_suite(
            frame, suite_json, gx_root, run_name, "SUMMARY", deferred_docs=deferred_docs
        )
    critical, warning = failures(result)
    return {
        "suite": suite_json["name"],
        "success": not critical,
        "evaluated": result["statistics"]["evaluated_expectations"],
        "failed_critical": critical,
        "failed_warning": warning,
        "data_docs": page,
        "result": result,
    }
