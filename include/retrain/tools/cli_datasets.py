"""`retrain demo-data`, `new-dataset`, `suggest-suite` and `calibrate`: datasets and their
specs and suites."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from retrain.lake import landed_days
from retrain.paths import REPO_ROOT, DatasetPaths, lake_root, local_path
from retrain.spark.validation import SUITES
from retrain.spec import SpecError, load_spec
from retrain.tools.cli_common import CliError, date_arg, spark_session

PROJECT_SPECS = REPO_ROOT / "include" / "datasets"


def cmd_demo_data(args: argparse.Namespace) -> int:
    from retrain.tools.demo import DEMOS

    unknown = sorted(set(args.datasets) - set(DEMOS))
    if unknown:
        raise CliError(f"no demo named {unknown[0]!r} (demos: {', '.join(DEMOS)})")
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


def write_suggested_suites(
    dataset: str, run_date: date, spec_folder: Path | None, force: bool
) -> list[Path]:
    """Profile one landing partition and write starting raw and features suites where the
    dataset's spec (or a spec in `spec_folder`) finds them."""
    from retrain.tools.profile import suggest_suites

    spec = load_spec(dataset)
    folder = _suite_folder(spec_folder or Path(spec.file).parent, spec.name)
    existing = [str(folder / f"{s}.json") for s in SUITES if (folder / f"{s}.json").exists()]
    if existing and not force:
        raise CliError(f"{', '.join(existing)} already exist; pass --force to replace them")
    with spark_session(f"{dataset}-suggest-suite") as spark:
        suites = suggest_suites(spark, spec, run_date)
    return _write_suites(folder, suites)


def _write_suites(folder: Path, suites: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, suite in suites.items():
        (folder / f"{name}.json").write_text(json.dumps(suite, indent=2) + "\n")
    return [folder / f"{name}.json" for name in suites]


def _suite_folder(spec_folder: Path, dataset: str) -> Path:
    """Where the suites of a spec in `spec_folder` belong: the project's `expectations/` for the
    project's specs, else `expectations/<dataset>/` beside the spec. Both `--output`s use it."""
    if spec_folder.resolve() == PROJECT_SPECS.resolve():
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
    from retrain.spec import load_all_specs
    from retrain.tools.scaffold import scaffold

    folder = args.output or PROJECT_SPECS
    spec_file = folder / f"{args.name}.yaml"
    broken: dict[str, str] = {}
    known = load_all_specs(broken)  # another dataset's broken spec is no reason to refuse
    if args.name in known and not args.force:
        raise CliError(f"dataset {args.name!r} already exists: {known[args.name].file}")
    if args.name in broken and not args.force:
        raise CliError(f"dataset {args.name!r} already exists (and does not load): "
                       f"{broken[args.name]}")  # fmt: skip
    if spec_file.exists() and not args.force:
        raise CliError(f"{spec_file} already exists; pass --force to replace it")
    with spark_session(f"{args.name}-new-dataset") as spark:
        try:
            result = scaffold(
                spark, args.name, args.sample.resolve(), spec_file, label=args.label,
                id_column=args.id, progress=lambda line: print(line, flush=True),
            )  # fmt: skip
        except SpecError as err:  # what it was given (a file, a column) does not fit
            raise CliError(str(err)) from None
    folder.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(result.spec_text())
    suite_folder = _suite_folder(folder, args.name)
    _write_suites(suite_folder, result.suites)
    _print_scaffold(result, spec_file, suite_folder)
    landing = local_path(lake_root()) / result.data["source"]["landing_path"]
    extra = f"RETRAIN_DATASETS_PATH={folder} " if folder != PROJECT_SPECS else ""
    days = result.sample.days
    if days and not args.sample.resolve().is_relative_to(local_path(lake_root()).resolve()):
        print(f"Copy the ds= folders of {args.sample} to {landing}/: retrain reads only the lake.")
    then = (
        f"retrain backfill {args.name} --from {min(days)} --to {max(days)}"
        if days
        else f"retrain run {args.name} --latest 1"
    )
    print(
        'Review the spec and the suites (docs/spec.md; README, "Add your dataset"), then land '
        f"daily files in {landing}/ds=YYYY-MM-DD/ and run: {extra}{then}"
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
    from retrain.tools.calibrate import calibrate, thresholds_text, write_thresholds

    spec = load_spec(args.dataset)
    days = {
        day: folder
        for day, folder in landed_days(DatasetPaths.for_spec(spec).landing).items()
        if (args.start is None or day >= args.start) and (args.end is None or day <= args.end)
    }
    print(f"Calibrating {spec.name} on {len(days)} landed day(s)", flush=True)
    with spark_session(f"{spec.name}-calibrate") as spark:
        calibration = calibrate(spark, spec, days, lambda line: print(f"  {line}", flush=True))
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


def local_source(value: str) -> Path:
    """What new-dataset profiles: a file or folder on this machine, as a path or file:// URI."""
    try:
        return local_path(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value}: new-dataset profiles files on this machine (a path or a file:// URI); "
            "copy a few days of the feed here first"
        ) from None


def add_commands(commands: Any) -> None:
    demo = commands.add_parser("demo-data", help="write demo feeds into the lake")
    demo.add_argument(
        "datasets",
        nargs="*",
        metavar="DATASET",
        help="digits (default), support_tickets, penguins",
    )
    demo.add_argument(
        "--end", type=date_arg, default=datetime.now(UTC).date() - timedelta(days=1),
        help="last date to write (default: yesterday, UTC)",
    )  # fmt: skip
    demo.add_argument("--days", type=int, help="daily partitions (default: 2, penguins 1)")
    demo.set_defaults(func=cmd_demo_data)
    new = commands.add_parser(
        "new-dataset",
        help="scaffold a spec and starting suites from a sample file or a landing folder",
    )
    new.add_argument("name")
    new.add_argument(
        "--from", dest="sample", type=local_source, required=True,
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
    suggest = commands.add_parser(
        "suggest-suite", help="profile a landing partition into starting raw and features suites"
    )
    suggest.add_argument("dataset")
    suggest.add_argument(
        "--date", type=date_arg, required=True, help="the landing partition to read"
    )
    suggest.add_argument(
        "--output", type=Path, help="spec folder: the suites go to its expectations/DATASET/, "
        "as for new-dataset (default: where the dataset's spec finds them)",
    )  # fmt: skip
    suggest.add_argument("--force", action="store_true", help="replace existing suites")
    suggest.set_defaults(func=cmd_suggest_suite)
    cal = commands.add_parser(
        "calibrate", help="set a spec's drift thresholds from its landed history's day-to-day PSI"
    )
    cal.add_argument("dataset")
    cal.add_argument("--from", dest="start", type=date_arg, help="first day (default: the first)")
    cal.add_argument("--to", dest="end", type=date_arg, help="last day (default: the last)")
    cal.add_argument("--dry-run", action="store_true", help="print, do not change the spec")
    cal.set_defaults(func=cmd_calibrate)
