"""What a stage's spark-submit carries: the package's Spark side as a zip, the Spark settings,
the driver's environment and the key (never on a command line)."""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk.log import mask_secret

from retrain import keys
from retrain.paths import REPO_ROOT, home

SPARK_CONF = {
    # Each stage is a short application: no UI, few shuffle partitions for daily-sized data.
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    # Native BLAS (OpenBLAS through dev.ludovic.netlib) runs one thread per task: Spark already
    # runs a task per core. Without a system libblas, netlib falls back to Java's vector API.
    "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
}
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # retrain/
SPARK_SIDE = ("*.py", "spark/*.py", "spark/*.j2")  # what Spark runs: the core and retrain.spark


def code_zip() -> str:
    """What Spark runs of the package (`SPARK_SIDE`: not the Airflow side, not the tools) as a
    zip for `--py-files`, named by its content so it is never stale."""
    sources = sorted(p for pattern in SPARK_SIDE for p in PACKAGE_DIR.glob(pattern))
    content = (f"{p.relative_to(PACKAGE_DIR)}\n".encode() + p.read_bytes() for p in sources)
    digest = hashlib.sha256(b"".join(content)).hexdigest()[:12]
    target = home() / "code" / f"retrain-{digest}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for path in sources:
                archive.write(path, f"retrain/{path.relative_to(PACKAGE_DIR).as_posix()}")
        partial.replace(target)
    return str(target)


def export_secret() -> None:
    """Put the `retrain_key` connection's password, if there is one, in this task's environment.

    spark-submit inherits it from there: never on its command line (which `ps` shows, and which
    `env_vars` would become on YARN and Kubernetes). Either way it is masked in task logs.
    """
    try:
        password = Connection.get(keys.CONNECTION_ID).password
    except AirflowNotFoundException:
        password = None
    if password:
        os.environ[keys.ENV] = password
    if os.environ.get(keys.ENV):
        mask_secret(os.environ[keys.ENV], keys.ENV)


def job_env() -> dict[str, str]:
    """What a stage's driver needs beyond the worker's own environment."""
    return {
        "RETRAIN_PROJECT_DIR": str(REPO_ROOT),
        "RETRAIN_HOME": str(home()),
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "OPENBLAS_NUM_THREADS": "1",  # the driver's tasks in local mode (see SPARK_CONF)
    }
