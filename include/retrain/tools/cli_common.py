"""What the `retrain` commands share: their error, their options, a Spark session, output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from retrain.errors import EXIT_USAGE, RetrainError
from retrain.paths import parse_date


class CliError(RetrainError):
    """A command that cannot go on, said in one line; `exit_code` is how the process ends."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def date_arg(value: str) -> date:
    try:
        return parse_date(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def add_param_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="override a spec key for this run, e.g. model.max_epochs=50 (repeatable)",
    )  # fmt: skip


def add_verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true",
        help="print Airflow's and Spark's own logs here instead of to a log file",
    )  # fmt: skip


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true",
        help="print one JSON document on stdout (progress lines go to stderr)",
    )  # fmt: skip


def parse_params(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--param {pair!r} must look like key=value (e.g. model.max_epochs=50)")
        overrides[key] = value
    return overrides


def say_to(args: argparse.Namespace) -> Any:
    """Where a command's human lines go: stdout, or stderr when stdout carries --json."""
    stream = sys.stderr if getattr(args, "json", False) else sys.stdout
    return lambda line: print(line, file=stream, flush=True)


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


@contextmanager
def spark_session(name: str) -> Iterator[Any]:
    """A local Spark session for a command's own work, stopped however the work ends."""
    from retrain.spark.job import spark_session as start

    spark = start(f"retrain-{name}")
    try:
        yield spark
    finally:
        spark.stop()
