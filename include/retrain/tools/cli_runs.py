"""`retrain run`, `backfill`, `status` and `verify`: a dataset's runs and its models."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from retrain.errors import EXIT_FAILED
from retrain.lake import landed_days
from retrain.paths import DatasetPaths
from retrain.runs import SUCCESS
from retrain.spec import Spec, load_spec
from retrain.tools import local_runs
from retrain.tools.cli_common import (
    CliError,
    add_json_option,
    add_param_option,
    add_verbose_option,
    date_arg,
    parse_params,
    print_json,
    say_to,
)


def landing_dates(spec: Spec) -> list[date]:
    return list(landed_days(DatasetPaths.for_spec(spec).landing))


def cmd_run(args: argparse.Namespace) -> int:
    spec = load_spec(args.dataset)
    overrides = parse_params(args.param)
    spec.with_overrides(overrides)  # refuse bad keys or values before Airflow or Spark start
    dates = list(args.date)
    if args.latest:
        dates += landing_dates(spec)[-args.latest :]
    if not dates:
        raise CliError(
            f"nothing to run: give --date YYYY-MM-DD or --latest N (no landing "
            f"partitions found for {spec.name})"
            if args.latest
            else "give --date YYYY-MM-DD (repeatable) or --latest N"
        )
    return _run(args, spec, sorted(set(dates)), overrides)


def cmd_backfill(args: argparse.Namespace) -> int:
    """A history in one go: ingest and validate every landed day of the range in one Spark
    application per stage, then train, evaluate and publish once, for the last day."""
    spec = load_spec(args.dataset)
    overrides = parse_params(args.param)
    spec.with_overrides(overrides)  # refuse bad keys or values before Airflow or Spark start
    landed = landing_dates(spec)
    end = args.end or (landed[-1] if landed else None)
    if end is None:
        raise CliError(
            f"nothing has landed for {spec.name} in {DatasetPaths.for_spec(spec).landing}"
        )
    if args.start > end:
        raise CliError(f"--from {args.start} is after --to {end}")
    days = [d for d in landed if args.start <= d <= end]
    say_to(args)(f"Backfilling {spec.name}: {len(days)} landed day(s) from {args.start} to {end}")
    return _run(args, spec, [end], overrides, history_from=args.start)


def _run(
    args: argparse.Namespace,
    spec: Spec,
    dates: list[date],
    overrides: dict[str, Any],
    history_from: date | None = None,
) -> int:
    """Run the dates, then say how each went: one JSON document, or a few lines per date."""
    say = say_to(args)
    runs = local_runs.run_dates(
        spec, dates, overrides, verbose=args.verbose, say=say, history_from=history_from,
        progress_fd=2 if args.json else 1,
    )  # fmt: skip
    succeeded = sum(run["state"] == SUCCESS == run["dag_run_state"] for run in runs)
    if args.json:
        print_json({"dataset": spec.name, "runs": runs, "succeeded": succeeded})
    else:
        for run in runs:
            _say_run(say, run)
    say(f"{succeeded} of {len(runs)} date(s) succeeded")
    return 0 if succeeded == len(runs) else EXIT_FAILED


def _say_run(say: Any, run: dict[str, Any]) -> None:
    """A run in a few lines: its state and decision, why, and where its results are."""
    say(
        f"  {run['run_date']}  {run['state']:<8} {run['decision'] or '-':<8} {run['reason'] or ''}"
    )
    if run["version"] is not None:
        say(f"      model version: {run['version']}")
    say(f"      run folder: {run['run_folder']}")
    links = run["links"]
    if run["report"]:
        say(f"      decision report: {links.get('report')}  ({run['report']})")
    for suite, page in run["data_docs"].items():
        say(f"      Data Docs ({suite}): {links.get(suite) or page}")


def cmd_status(args: argparse.Namespace) -> int:
    result = local_runs.status(args.dataset)
    if args.json:
        print_json(result)
        return 0
    champion = result["champion"]
    if champion:
        print(
            f"{args.dataset}: champion is {champion['model']} version {champion['version']} "
            f"({champion['metric']} {champion['f1']:.4f} on its test rows, data up to "
            f"{champion['run_date']})"
        )
    elif result.get("champion_unknown"):
        print(f"{args.dataset}: champion unknown: {result['champion_unknown']}")
    else:
        print(f"{args.dataset}: no champion published yet")
    for run in result["runs"]:
        _say_run(print, run)
    print(
        "Open the UIs: `make airflow` (Airflow, http://127.0.0.1:8080, and the reports and Data "
        "Docs above) and `make mlflow` (MLflow registry, http://127.0.0.1:5000)."
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check registered versions against their integrity manifests (HMAC-signed file digests;
    not MLflow's model signature, the input and output schema); 1 if any is refused."""
    from retrain.spark import integrity, registry

    spec = load_spec(args.dataset)
    registry.configure()
    name = spec.registered_model_name
    versions = [v["version"] for v in registry.version_history(name)]
    if args.version is not None:
        if args.version not in versions:
            raise CliError(f"{name} has no version {args.version} (it has {versions or 'none'})")
        versions = [args.version]
    refused = 0
    for version in versions:
        try:
            with registry.verified_copy(name, str(version)) as folder:
                files = len(integrity.digests(folder))
            print(
                f"{name} version {version}: integrity manifest (HMAC) and {files} files verified"
            )
        except integrity.ModelRefused as err:
            refused += 1
            print(f"REFUSED {err}")
    if not versions:
        print(f"{name} has no registered versions")
    return EXIT_FAILED if refused else 0


def add_commands(commands: Any) -> None:
    run = commands.add_parser("run", help="run a dataset's DAG for dates (Airflow dag.test)")
    run.add_argument("dataset")
    run.add_argument(
        "--date", type=date_arg, action="append", default=[], help="date to process (repeatable)"
    )
    run.add_argument(
        "--latest", type=int, default=0, metavar="N",
        help="also process the N most recent landing partitions",
    )  # fmt: skip
    fill = commands.add_parser(
        "backfill",
        help="ingest and validate a history of landed days in one go, then train on the last",
    )
    fill.add_argument("dataset")
    fill.add_argument("--from", dest="start", type=date_arg, required=True, help="first day")
    fill.add_argument(
        "--to", dest="end", type=date_arg, help="last day (default: the last landed)"
    )
    for parser, command in ((run, cmd_run), (fill, cmd_backfill)):
        add_param_option(parser)
        add_verbose_option(parser)
        add_json_option(parser)
        parser.set_defaults(func=command)
    stat = commands.add_parser("status", help="champion and runs of a dataset")
    stat.add_argument("dataset")
    add_json_option(stat)
    stat.set_defaults(func=cmd_status)
    check = commands.add_parser(
        "verify", help="check published models' files against their integrity manifests"
    )
    check.add_argument("dataset")
    check.add_argument("--version", type=int, help="one version (default: all)")
    check.set_defaults(func=cmd_verify)
