"""The `retrain` command: demo data, runs of the real DAG, and status."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from retrain.airflow.local_airflow import airflow_env, ensure_airflow_db
from retrain.errors import RetrainError
from retrain.lake import landed_days
from retrain.paths import REPO_ROOT, DatasetPaths, home, lake_root, local_path, parse_date
from retrain.spark.validation import SUITES
from retrain.spec import Spec, SpecError, load_spec
from retrain.tools import local_runs


def _parse_params(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"--param {pair!r} must look like key=value (e.g. model.max_iter=50)")
        overrides[key] = value
    return overrides


def cmd_demo_data(args: argparse.Namespace) -> int:
    from retrain.tools.demo import DEMOS

    unknown = sorted(set(args.datasets) - set(DEMOS))
    if unknown:
        raise SpecError(f"no demo named {unknown[0]!r} (demos: {', '.join(DEMOS)})")
    for name in args.datasets or ["digits"]:
        write, default_days = DEMOS[name]
        landing = local_path(DatasetPaths.for_spec(load_spec(name)).landing)
        written = write(landing, args.end, args.days or default_days)
        first, last = min(written), max(written)
        extra = (
            f"; malformed rows: {sum(written.values())}"
            if name == "digits"
            else f"; {sum(written.values())} rows"
        )
        print(
            f"Wrote {len(written)} daily partitions of {name} ({first} .. {last}) "
            f"to {landing}{extra}"
        )
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def _landing_dates(spec: Spec) -> list[date]:
    return list(landed_days(DatasetPaths.for_spec(spec).landing))


def cmd_run(args: argparse.Namespace) -> int:
    spec = load_spec(args.dataset)
    overrides = _parse_params(args.param)
    spec.with_overrides(overrides)  # refuse bad keys or values before Airflow or Spark start
    dates = list(args.date)
    if args.latest:
        dates += _landing_dates(spec)[-args.latest :]
    if not dates:
        raise SpecError(
            f"nothing to run: give --date YYYY-MM-DD or --latest N (no landing "
            f"partitions found for {spec.name})"
            if args.latest
            else "give --date YYYY-MM-DD (repeatable) or --latest N"
        )
    return local_runs.run_dates(
        spec, sorted(set(dates)), overrides, verbose=args.verbose, say=_say
    )


def cmd_backfill(args: argparse.Namespace) -> int:
    """A history in one go: ingest and validate every landed day of the range in one Spark
    application per stage, then train, evaluate and publish once, for the last day."""
    spec = load_spec(args.dataset)
    overrides = _parse_params(args.param)
    spec.with_overrides(overrides)  # refuse bad keys or values before Airflow or Spark start
    landed = _landing_dates(spec)
    end = args.end or (landed[-1] if landed else None)
    if end is None:
        raise SpecError(
            f"nothing has landed for {spec.name} in {DatasetPaths.for_spec(spec).landing}"
        )
    if args.start > end:
        raise SpecError(f"--from {args.start} is after --to {end}")
    days = [d for d in landed if args.start <= d <= end]
    print(f"Backfilling {spec.name}: {len(days)} landed day(s) from {args.start} to {end}")
    return local_runs.run_dates(
        spec, [end], overrides, verbose=args.verbose, say=_say, history_from=args.start
    )


def cmd_status(args: argparse.Namespace) -> int:
    result = local_runs.status(args.dataset)
    if args.json:
        print(json.dumps(result, indent=2))
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
        print(
            f"  {run['run_date']}  {run['state']:<8} {run['decision'] or '-':<8} "
            f"{run['reason'] or ''}"
        )
        print(f"      run folder: {run['run_folder']}")
        links = run["links"]
        if run["report"]:
            print(f"      decision report: {links.get('report')}  ({run['report']})")
        for suite, page in run["data_docs"].items():
            print(f"      Data Docs ({suite}): {links.get(suite) or page}")
    print(
        "Open the UIs: `make airflow` (Airflow, http://127.0.0.1:8080, and the reports and Data "
        "Docs above) and `make mlflow` (MLflow registry, http://127.0.0.1:5000)."
    )
    return 0


def write_suggested_suites(
    dataset: str, run_date: date, spec_folder: Path | None, force: bool
) -> list[Path]:
    """Profile one landing partition and write starting raw and features suites where the
    dataset's spec (or a spec in `spec_folder`) finds them."""
    from retrain.spark.job import spark_session
    from retrain.tools.profile import suggest_suites

    spec = load_spec(dataset)
    folder = _suite_folder(spec_folder or Path(spec.file).parent, spec.name)
    existing = [str(folder / f"{s}.json") for s in SUITES if (folder / f"{s}.json").exists()]
    if existing and not force:
        raise SpecError(f"{', '.join(existing)} already exist; pass --force to replace them")
    spark = spark_session(f"retrain-{dataset}-suggest-suite")
    try:
        suites = suggest_suites(spark, spec, run_date)
    except RetrainError as err:
        raise SpecError(str(err)) from None
    finally:
        spark.stop()
    folder.mkdir(parents=True, exist_ok=True)
    for name, suite in suites.items():
        (folder / f"{name}.json").write_text(json.dumps(suite, indent=2) + "\n")
    return [folder / f"{name}.json" for name in suites]


def _suite_folder(spec_folder: Path, dataset: str) -> Path:
    """Where the suites of a spec in `spec_folder` belong: the project's `expectations/` for the
    project's specs, else `expectations/<dataset>/` beside the spec. Both `--output`s use it."""
    if spec_folder.resolve() == (REPO_ROOT / "include" / "datasets").resolve():
        return REPO_ROOT / "expectations" / dataset
    return spec_folder / "expectations" / dataset


def cmd_suggest_suite(args: argparse.Namespace) -> int:
    written = write_suggested_suites(args.dataset, args.date, args.output, args.force)
    for path in written:
        suite = json.loads(path.read_text())
        print(f"wrote {path} ({len(suite['expectations'])} expectations)")
    print(
        "These are a starting point profiled from one day: review every expectation and its "
        "severity (critical fails or quarantines, warning only reports), then commit them."
    )
    return 0


def cmd_new_dataset(args: argparse.Namespace) -> int:
    from retrain.spark.job import spark_session
    from retrain.spec import load_all_specs
    from retrain.tools.scaffold import scaffold

    folder = args.output or REPO_ROOT / "include" / "datasets"
    spec_file = folder / f"{args.name}.yaml"
    broken: dict[str, str] = {}
    known = load_all_specs(broken)  # another dataset's broken spec is no reason to refuse
    if args.name in known and not args.force:
        raise SpecError(f"dataset {args.name!r} already exists: {known[args.name].file}")
    if args.name in broken and not args.force:
        raise SpecError(f"dataset {args.name!r} already exists (and does not load): "
                        f"{broken[args.name]}")  # fmt: skip
    if spec_file.exists() and not args.force:
        raise SpecError(f"{spec_file} already exists; pass --force to replace it")
    spark = spark_session(f"retrain-{args.name}-new-dataset")
    try:
        result = scaffold(
            spark, args.name, args.sample.resolve(), spec_file, label=args.label,
            id_column=args.id, progress=lambda line: print(line, flush=True),
        )  # fmt: skip
    finally:
        spark.stop()
    folder.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(result.spec_text())
    suite_folder = _suite_folder(folder, args.name)
    suite_folder.mkdir(parents=True, exist_ok=True)
    for name, suite in result.suites.items():
        (suite_folder / f"{name}.json").write_text(json.dumps(suite, indent=2) + "\n")
    _print_scaffold(result, spec_file, suite_folder)
    landing = local_path(lake_root()) / result.data["source"]["landing_path"]
    extra = (
        f"RETRAIN_DATASETS_PATH={folder} " if folder != REPO_ROOT / "include" / "datasets" else ""
    )
    days = result.sample.days
    if days and not args.sample.resolve().is_relative_to(local_path(lake_root()).resolve()):
        print(f"Copy the ds= folders of {args.sample} to {landing}/: retrain reads only the lake.")
    then = (
        f"retrain backfill {args.name} --from {min(days)} --to {max(days)}"
        if days
        else f"retrain run {args.name} --latest 1"
    )
    print(
        'Review the spec and the suites (README, "Add your dataset"), then land daily files in '
        f"{landing}/ds=YYYY-MM-DD/ and run: {extra}{then}"
    )
    return 0


def _print_scaffold(result: Any, spec_file: Path, suite_folder: Path) -> None:
    """What new-dataset read, guessed and wrote, with every doubt it has."""
    from retrain.tools.scaffold import TRUSTED_ROWS

    print(f"Profiled {result.rows} rows of {result.sample.label}")
    for problem in result.problems:
        print(f"  warning: {problem}")
    if result.sample.missing_days:
        print(
            f"  {result.sample.missing_days} day(s) between the first and the last have no "
            "partition: source.empty_days is skip (such a day's run ends as no_data; say fail "
            "if every day must land)"
        )
    if "multiLine" in result.data["source"]["options"]:
        print("  quoted values hold line breaks: the spec reads the files with multiLine")
    if result.rows < TRUSTED_ROWS:
        print(
            f"  warning: {result.rows} rows are too few to trust the guessed types and roles "
            "(text or categorical, the id, the label); check each, or scaffold from more days"
        )
    print(f"wrote {spec_file}")
    for column, reason in result.why.items():
        print(f"  {column}: {reason}")
    for name, suite in result.suites.items():
        print(f"wrote {suite_folder / f'{name}.json'} ({len(suite['expectations'])} expectations)")
    calibration = result.calibration
    if calibration is not None:
        from retrain.spec import parse_spec

        spec = parse_spec(result.data, str(spec_file))
        print(
            f"drift thresholds calibrated on {len(calibration.days)} day(s) with a reference "
            "window; with the defaults, "
            f"{calibration.failing_days(spec.drift, spec)} of them would fail on feature drift"
        )


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Set the spec's drift thresholds from the PSI its landed history shows, day by day."""
    from retrain.spark.job import spark_session
    from retrain.tools.calibrate import calibrate, thresholds_text, write_thresholds

    spec = load_spec(args.dataset)
    spark = spark_session(f"retrain-{spec.name}-calibrate")
    try:
        days = {
            day: folder
            for day, folder in landed_days(DatasetPaths.for_spec(spec).landing).items()
            if (args.start is None or day >= args.start) and (args.end is None or day <= args.end)
        }
        print(f"Calibrating {spec.name} on {len(days)} landed day(s)", flush=True)
        calibration = calibrate(spark, spec, days, lambda line: print(f"  {line}", flush=True))
    finally:
        spark.stop()
    spec_file = Path(spec.file)
    calibrated = write_thresholds(spec_file, calibration, dry_run=args.dry_run)
    print(f"PSI thresholds in force{' if written' if args.dry_run else ''}:")
    print(thresholds_text(calibrated, calibration), end="")
    before, after = (calibration.failing_days(s.drift, s) for s in (spec, calibrated))
    print(
        f"Of the {len(calibration.days)} days measured, {before} would fail on feature drift "
        f"with the previous thresholds, {after} with these."
        + (" (dry run: the spec is unchanged)" if args.dry_run else f" Wrote {spec_file}.")
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check registered versions against their integrity manifests (HMAC-signed file digests;
    not MLflow's model signature, the input and output schema); 1 if any is refused."""
    from mlflow import MlflowClient

    from retrain.spark import integrity, registry

    spec = load_spec(args.dataset)
    registry.configure()
    name = spec.registered_model_name
    found = MlflowClient().search_model_versions(f"name = '{name}'")
    versions = sorted(int(v.version) for v in found)
    if args.version is not None:
        if args.version not in versions:
            raise SpecError(f"{name} has no version {args.version} (it has {versions or 'none'})")
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
    return 1 if refused else 0


def cmd_airflow(args: argparse.Namespace) -> int:
    """Run any `airflow` command against the retrain home (e.g. `retrain airflow dags list`)."""
    os.execvpe("airflow", ["airflow", *args.args], os.environ | airflow_env())


def cmd_init_airflow(args: argparse.Namespace) -> int:
    """Migrate the Airflow database and create the Spark pool (compose's airflow-init)."""
    ensure_airflow_db(os.environ | airflow_env())
    return 0


def cmd_serve_airflow(args: argparse.Namespace) -> int:
    """Run a local Airflow until Ctrl-C, printing where the UI is and how to log in."""
    import signal

    from retrain.airflow.local_airflow import USER, LocalAirflow

    _refuse_busy_port(args.port)  # else another server's answers pass for ours
    airflow, stopping = LocalAirflow(args.port), []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    print(f"Starting Airflow on {home()} (logs in {airflow.logs}) ...", flush=True)
    try:
        airflow.start()
        print(f"Airflow UI: {airflow.url}  user: {USER}  password: {airflow.password()}")
        print(f"Run reports and Data Docs (the tasks' links, after logging in): "
              f"{airflow.results_url}/")  # fmt: skip
        print("(generated for this home; Ctrl-C stops every Airflow process)", flush=True)
        while not stopping:
            exited = [n for n, p in airflow.processes.items() if p.poll() is not None]
            if exited:
                print(f"{', '.join(exited)} stopped; see {airflow.logs}", flush=True)
                return 1
            time.sleep(1)
        return 0
    finally:
        print("Stopping Airflow ...", flush=True)
        airflow.stop()
        print("Stopped.", flush=True)


def _refuse_busy_port(port: int) -> None:
    """Refuse at once if something already listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SpecError(f"port {port} is in use; stop that process or use --port") from None


def cmd_mlflow_ui(args: argparse.Namespace) -> int:
    from retrain.spark import registry

    _refuse_busy_port(args.port)
    registry.configure()
    import mlflow

    uri = mlflow.get_tracking_uri()
    os.execvp(
        "mlflow",
        [
            "mlflow",
            "ui",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--backend-store-uri",
            uri,
        ],
    )


def _date(value: str) -> date:
    try:
        return parse_date(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _local_source(value: str) -> Path:
    """What new-dataset profiles: a file or folder on this machine, as a path or file:// URI."""
    try:
        return local_path(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value}: new-dataset profiles files on this machine (a path or a file:// URI); "
            "copy a few days of the feed here first"
        ) from None


def _add_run_command(commands: Any) -> None:
    run = commands.add_parser("run", help="run a dataset's DAG for one date (Airflow dag.test)")
    run.add_argument("dataset")
    run.add_argument(
        "--date", type=_date, action="append", default=[], help="date to process (repeatable)"
    )
    run.add_argument(
        "--verbose", action="store_true",
        help="print Airflow's and Spark's own logs here instead of to a log file",
    )  # fmt: skip
    run.add_argument(
        "--latest",
        type=int,
        default=0,
        metavar="N",
        help="also process the N most recent landing partitions",
    )
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key for this run, e.g. model.max_iter=50",
    )
    run.set_defaults(func=cmd_run)


def _add_backfill_command(commands: Any) -> None:
    fill = commands.add_parser(
        "backfill",
        help="ingest and validate a history of landed days in one go, then train on the last",
    )
    fill.add_argument("dataset")
    fill.add_argument("--from", dest="start", type=_date, required=True, help="first day")
    fill.add_argument("--to", dest="end", type=_date, help="last day (default: the last landed)")
    fill.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key for this run, e.g. model.max_epochs=50",
    )
    fill.add_argument(
        "--verbose",
        action="store_true",
        help="print Airflow's and Spark's own logs here instead of to a log file",
    )
    fill.set_defaults(func=cmd_backfill)  # fmt: skip


def _add_calibrate_command(commands: Any) -> None:
    cal = commands.add_parser(
        "calibrate", help="set a spec's drift thresholds from its landed history's day-to-day PSI"
    )
    cal.add_argument("dataset")
    cal.add_argument("--from", dest="start", type=_date, help="first day (default: the first)")
    cal.add_argument("--to", dest="end", type=_date, help="last day (default: the last)")
    cal.add_argument("--dry-run", action="store_true", help="print, do not change the spec")
    cal.set_defaults(func=cmd_calibrate)


def _add_service_commands(commands: Any) -> None:
    """The commands that run Airflow (and in it the results) and the MLflow UI."""
    flow = commands.add_parser("airflow", help="run an airflow command on the retrain home")
    flow.add_argument("args", nargs=argparse.REMAINDER)
    flow.set_defaults(func=cmd_airflow)
    init = commands.add_parser("init-airflow", help="migrate Airflow's database, add the pool")
    init.set_defaults(func=cmd_init_airflow)
    serve = commands.add_parser(
        "serve-airflow",
        help="API server/UI on 127.0.0.1, scheduler, DAG processor, triggerer; Ctrl-C stops all",
    )
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=cmd_serve_airflow)
    ui = commands.add_parser("mlflow-ui", help="serve the MLflow UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=cmd_mlflow_ui)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retrain", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo-data", help="write demo feeds into the lake")
    demo.add_argument(
        "datasets",
        nargs="*",
        metavar="DATASET",
        help="digits (default), support_tickets, penguins",
    )
    demo.add_argument(
        "--end",
        type=_date,
        default=datetime.now(UTC).date() - timedelta(days=1),
        help="last date to write (default: yesterday, UTC)",
    )
    demo.add_argument("--days", type=int, help="daily partitions (default: 2, penguins 1)")
    demo.set_defaults(func=cmd_demo_data)
    _add_run_command(commands)
    stat = commands.add_parser("status", help="champion and runs of a dataset")
    stat.add_argument("dataset")
    stat.add_argument("--json", action="store_true")
    stat.set_defaults(func=cmd_status)
    suggest = commands.add_parser(
        "suggest-suite", help="profile a landing partition into starting raw and features suites"
    )
    suggest.add_argument("dataset")
    suggest.add_argument("--date", type=_date, required=True, help="the landing partition to read")
    suggest.add_argument(
        "--output", type=Path, help="spec folder: the suites go to its expectations/DATASET/, "
        "as for new-dataset (default: where the dataset's spec finds them)",
    )  # fmt: skip
    suggest.add_argument("--force", action="store_true", help="replace existing suites")
    suggest.set_defaults(func=cmd_suggest_suite)
    new = commands.add_parser(
        "new-dataset",
        help="scaffold a spec and starting suites from a sample file or a landing folder",
    )
    new.add_argument("name")
    new.add_argument(
        "--from", dest="sample", type=_local_source, required=True,
        help="a CSV, JSON or Parquet file, or a landing root of ds=YYYY-MM-DD folders, as a path "
        "or file:// URI (days are sampled, start_date is the first, drift thresholds are "
        "calibrated on all)",
    )  # fmt: skip
    new.add_argument("--label", help="the label column (default: guessed)")
    new.add_argument("--id", help="the id column (default: guessed)")
    new.add_argument(
        "--output", type=Path, help="spec folder (default: the project's include/datasets)"
    )
    new.add_argument("--force", action="store_true", help="replace an existing spec and suites")
    new.set_defaults(func=cmd_new_dataset)
    _add_calibrate_command(commands)
    _add_backfill_command(commands)
    check = commands.add_parser(
        "verify", help="check published models' files against their integrity manifests"
    )
    check.add_argument("dataset")
    check.add_argument("--version", type=int, help="one version (default: all)")
    check.set_defaults(func=cmd_verify)
    _add_service_commands(commands)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as err:
        print(f"retrain: {err}", file=sys.stderr)
        return 2
    except RetrainError as err:  # a failure explained for a person (a broken claim file, ...)
        print(f"retrain: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
