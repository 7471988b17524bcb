"""The `retrain` command: demo data, datasets, runs of the real DAG, status, local services.

Exit codes (docs/cli.md): 0 done; 1 a run failed or a model was refused; 2 bad arguments;
3 a spec that cannot be used; 4 data rejected; 5 a service unavailable (MLflow, a port).
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from retrain.errors import RetrainError, SpecError, exit_code_of
from retrain.tools import cli_datasets, cli_runs, cli_services


def versions() -> str:
    """retrain's version and the versions of what it runs on, for a bug report."""

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:  # run from a checkout that was never installed
            return "not installed"

    parts = ", ".join(f"{name} {of(name)}" for name in ("apache-airflow", "pyspark", "mlflow"))
    return f"retrain {of('retrain')} ({parts}; Python {sys.version.split()[0]})"


def parser() -> argparse.ArgumentParser:
    built = argparse.ArgumentParser(
        prog="retrain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    built.add_argument("--version", action="version", version=versions())
    commands = built.add_subparsers(dest="command", required=True)
    for module in (cli_datasets, cli_runs, cli_services):
        module.add_commands(commands)
    return built


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (RetrainError, SpecError) as err:  # explained for a person: no stack trace
        print(f"retrain: {err}", file=sys.stderr)
        return exit_code_of(err)


if __name__ == "__main__":
    sys.exit(main())
