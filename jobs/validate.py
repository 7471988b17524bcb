"""Validate: run the dataset's Great Expectations suite on the raw partition, inside Spark.

The suite is GX 1.x JSON under `expectations/<dataset>/raw.json`; each expectation may carry
`meta.severity` (`critical`, the default, fails the run; `warning` is recorded only). The result
JSON and the GX Data Docs page of every run are kept under the retrain home.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from retrain.job import RetrainError, RunContext, is_complete, main
from retrain.paths import REPO_ROOT
from retrain.runs import update_run

# GX must not phone home from a pipeline.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

log = logging.getLogger(__name__)


def suite_path(dataset: str, suite: str) -> Path:
    return REPO_ROOT / "expectations" / dataset / f"{suite}.json"


def load_suite(dataset: str, suite: str) -> dict[str, Any]:
    path = suite_path(dataset, suite)
    if not path.exists():
        raise RetrainError(f"no expectation suite for {dataset}: {path} is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RetrainError(f"{path} is not valid JSON: {err}") from None


def run_suite(
    frame: DataFrame, suite_json: dict[str, Any], gx_root: Path, run_name: str
) -> tuple[dict[str, Any], str | None]:
    """Validate the frame against the suite in one checkpoint run; (result, Data Docs page)."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(gx_root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # keep task logs clean
    suite = context.suites.add_or_update(ExpectationSuite(**suite_json))
    source = context.data_sources.add_or_update_spark("spark")
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
            actions=[UpdateDataDocsAction(name="data_docs")],
            # SUMMARY would add a Spark job per expectation; details are not needed to decide.
            result_format="BOOLEAN_ONLY",
        )
    )
    outcome = checkpoint.run(
        batch_parameters={"dataframe": frame}, run_id=gx.RunIdentifier(run_name=run_name)
    )
    ((identifier, result),) = outcome.run_results.items()
    urls = context.get_docs_sites_urls(resource_identifier=identifier)
    page = urls[0]["site_url"].removeprefix("file://") if urls else None
    return result.to_json_dict(), page


def failures(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(critical, warning) descriptions of the expectations that failed."""
    critical, warning = [], []
    for item in result["results"]:
        if item["success"]:
            continue
        config = item["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        text = f"{config['type']}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        if (config.get("meta") or {}).get("severity", "critical") == "warning":
            warning.append(text)
        else:
            critical.append(text)
    return critical, warning


def run(spark: SparkSession, ctx: RunContext) -> dict[str, Any]:
    spec, raw = ctx.spec, ctx.paths.raw(ctx.run_date)
    if not is_complete(spark, raw):
        raise RetrainError(f"raw partition {raw} is missing or incomplete; run ingest first")
    frame = spark.read.parquet(raw).cache()  # one scan serves every expectation
    result, docs = run_suite(
        frame, load_suite(spec.name, "raw"), ctx.paths.gx_root(), ctx.run_date.isoformat()
    )
    run_dir = ctx.paths.run_dir(ctx.run_date)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "validation_raw.json").write_text(json.dumps(result, indent=2, default=str))
    log.info("Data Docs for this validation: %s", docs)
    critical, warning = failures(result)
    section = {
        "suite": "raw",
        "success": not critical,
        "evaluated": result["statistics"]["evaluated_expectations"],
        "failed_critical": critical,
        "failed_warning": warning,
        "data_docs": docs,
    }
    if critical:
        update_run(spec.name, ctx.run_date, validate=section)
        raise RetrainError(f"validation of {raw} failed: {'; '.join(critical)}")
    return section


if __name__ == "__main__":
    main("validate", run)
