"""The `retrain` command's contract: its version, its exit codes, where its output goes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from importlib.metadata import version

import pytest
import yaml

from retrain.errors import EXIT_BAD_SPEC, EXIT_USAGE, SpecError, exit_code_of
from retrain.spark.registry import RegistryUnavailable
from retrain.tools import cli
from tests.helpers import TOY, free_port, wait_for


def test_version_names_retrain_and_what_it_runs_on(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"retrain {version('retrain')} (apache-airflow ")
    assert f"apache-airflow {version('apache-airflow')}" in out
    assert f"pyspark {version('pyspark')}" in out and out.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "code", "said"),
    [
        (["run", "toy"], EXIT_USAGE, "give --date YYYY-MM-DD (repeatable) or --latest N"),
        (["run", "toy", "--date", "2026-03-01", "--param", "max_epochs"], EXIT_USAGE,
         "--param 'max_epochs' must look like key=value"),
        (["backfill", "toy", "--from", "2026-03-05", "--to", "2026-03-01"], EXIT_USAGE,
         "--from 2026-03-05 is after --to 2026-03-01"),
        (["status", "nope"], EXIT_BAD_SPEC, "no dataset spec named 'nope'"),
        (["run", "toy", "--date", "2026-03-01", "--param", "model.max_epochs=0"], EXIT_BAD_SPEC,
         "max_epochs"),
        (["demo-data", "nope"], EXIT_USAGE, "no demo named 'nope'"),
    ],
    ids=["nothing-to-run", "param-form", "backwards-range", "unknown-spec", "bad-override",
         "unknown-demo"],
)  # fmt: skip
def test_each_failure_exits_with_its_code_and_one_line(home, capsys, argv, code, said):
    (home.parent / "specs" / "toy.yaml").write_text(yaml.safe_dump(TOY))
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("retrain: ")
    assert said in captured.err and len(captured.err.splitlines()) == 1


def test_argparse_usage_errors_share_the_usage_code(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["run", "toy", "--date", "yesterday"])
    assert done.value.code == EXIT_USAGE
    assert "'yesterday' is not a date (YYYY-MM-DD)" in capsys.readouterr().err


def test_a_stage_and_the_command_end_the_same_way_for_the_same_error():
    assert exit_code_of(SpecError("x")) == EXIT_BAD_SPEC
    assert exit_code_of(RegistryUnavailable("x")) == 5
    assert exit_code_of(RuntimeError("x")) == 1


def test_make_mlflow_serves_without_an_activated_venv(home, tmp_path):
    """`make mlflow` runs .venv/bin/retrain with PATH as the user has it: MLflow's own command
    must not be looked up on PATH (a fresh clone's terminal has no venv activated)."""
    port = free_port()
    env = os.environ | {"PATH": "/usr/bin:/bin", "RETRAIN_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "retrain.tools.cli", "mlflow-ui", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        page = wait_for(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read(),
            "the MLflow UI", seconds=120,
        )  # fmt: skip
        assert page == b"OK"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
