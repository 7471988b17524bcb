"""`retrain airflow`, `init-airflow`, `serve-airflow` and `mlflow-ui`: the local services."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from typing import Any

from retrain.airflow.local_airflow import USER, LocalAirflow, airflow_env, ensure_airflow_db
from retrain.errors import EXIT_FAILED, EXIT_UNAVAILABLE
from retrain.paths import home
from retrain.tools.cli_common import CliError


def cmd_airflow(args: argparse.Namespace) -> int:
    """Run any `airflow` command against the retrain home (e.g. `retrain airflow dags list`)."""
    # airflow_env puts this Python's bin/ first on PATH: no activated venv needed.
    os.execvpe("airflow", ["airflow", *args.args], os.environ | airflow_env())
    return EXIT_FAILED  # not reached


def cmd_init_airflow(args: argparse.Namespace) -> int:
    """Migrate the Airflow database and create the Spark pool (compose's airflow-init)."""
    ensure_airflow_db(os.environ | airflow_env())
    return 0


def cmd_serve_airflow(args: argparse.Namespace) -> int:
    """Run a local Airflow until Ctrl-C, printing where the UI is and how to log in."""
    refuse_busy_port(args.port)  # else another server's answers pass for ours
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
                return EXIT_FAILED
            time.sleep(1)
        return 0
    finally:
        print("Stopping Airflow ...", flush=True)
        airflow.stop()
        print("Stopped.", flush=True)


def refuse_busy_port(port: int) -> None:
    """Refuse at once if something already listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise CliError(
                f"port {port} is in use; stop that process or use --port", EXIT_UNAVAILABLE
            ) from None


def cmd_mlflow_ui(args: argparse.Namespace) -> int:
    import mlflow

    from retrain.spark import registry

    refuse_busy_port(args.port)
    registry.configure()
    # MLflow's own command, run by this Python: no PATH or activated venv needed.
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1",
                              "--port", str(args.port),
                              "--backend-store-uri", mlflow.get_tracking_uri()])  # fmt: skip
    return EXIT_FAILED  # not reached


def add_commands(commands: Any) -> None:
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
