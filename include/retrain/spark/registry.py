"""The MLflow model registry: where published models, their lineage and the champion live.

Embedded default: SQLite and local artifacts under the retrain home. Set MLFLOW_TRACKING_URI
(and optionally MLFLOW_REGISTRY_URI) to use a tracking server instead; no code changes.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from retrain import __version__
from retrain.errors import Unavailable
from retrain.paths import REPO_ROOT, home
from retrain.spark import integrity

CHAMPION = "champion"  # the published model every scoring run uses
CHALLENGER = "challenger"  # the latest candidate the gate rejected or only dry-ran
MODEL_ARTIFACT = "model"
REQUEST_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}  # fmt: skip
_EMBEDDED: set[str] = set()  # the embedded stores this process has pointed MLflow at


class RegistryUnavailable(Unavailable):
    """MLflow did not answer (or answered with an error): nothing can be known of the champion,
    so the stage fails and is retried; it never reads as "no champion yet"."""


def configure() -> None:
    """Point MLflow at the configured server, or at the embedded store under the home."""
    import mlflow

    # Downloads of model files (every verified load) print no progress bars into task logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # An unreachable server fails a lookup in seconds, not MLflow's default ~4 minutes of
    # retries; Airflow retries the stage.
    for name, value in REQUEST_LIMITS.items():
        os.environ.setdefault(name, value)
    store = home() / "mlflow"
    store.mkdir(parents=True, exist_ok=True)
    embedded = f"sqlite:///{store / 'mlflow.db'}"
    # MLflow exports what it is set to as MLFLOW_*_URI: only a value we did not set is the user's.
    tracking, registry = (
        os.environ.get(name) if os.environ.get(name) not in _EMBEDDED else None
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    )
    _EMBEDDED.add(embedded)
    mlflow.set_tracking_uri(tracking or embedded)
    mlflow.set_registry_uri(registry or tracking or embedded)


def experiment_id(dataset: str) -> str:
    """The dataset's experiment, with artifacts under the home (never ./mlruns)."""
    import mlflow

    name = f"retrain/{dataset}"
    found = mlflow.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    location = (
        os.environ.get("RETRAIN_ARTIFACT_ROOT") or (home() / "mlflow" / "artifacts").as_uri()
    )
    return mlflow.create_experiment(name, artifact_location=f"{location}/{dataset}")


@cache
def code_version() -> str:
    """The package version plus the git commit it runs from, when there is one."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def _absent(err: Exception) -> bool:
    """MLflow's own answer that a registered model or an alias does not exist."""
    code, text = getattr(err, "error_code", ""), str(err)
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "alias" in text and "not found" in text
    )


@contextmanager
def _asking(what: str) -> Iterator[None]:
    """Turn any failure to ask MLflow into RegistryUnavailable, naming what was asked."""
    try:
        yield
    except RegistryUnavailable:
        raise
    except Exception as err:  # network, server, database: the registry's state is unknown
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RegistryUnavailable(f"MLflow could not tell {what}: {first[:300]}") from err


def champion_version(model_name: str) -> Any | None:
    """The ModelVersion behind the `champion` alias; None only when MLflow says there is no such
    model or alias (before the first publish). Any other failure is RegistryUnavailable."""
    from mlflow import MlflowClient

    with _asking(f"the champion of {model_name}"):
        try:
            return MlflowClient().get_model_version_by_alias(model_name, CHAMPION)
        except Exception as err:
            if _absent(err):
                return None
            raise


def find_version(model_name: str, fingerprint: str) -> Any | None:
    """An already registered version built from exactly the same inputs, if any."""
    from mlflow import MlflowClient

    with _asking(f"the versions of {model_name}"):
        found = MlflowClient().search_model_versions(
            f"name = '{model_name}' and tag.fingerprint = '{fingerprint}'"
        )
    return found[0] if found else None


def log_model_with_manifest(
    model: Any,
    model_name: str,
    tags: dict[str, str],
    signature: Any,
    input_example: Any | None,
) -> tuple[str, str]:
    """Log `model` (a Spark PipelineModel) in the active MLflow run as an MLflow 3 LoggedModel
    with its signature and input example, the integrity manifest and its HMAC written into the
    model's files before they are uploaded, and register it under `model_name` with its tags in
    the same call (a crash cannot leave an untagged version a rerun would not find). Returns
    (version, logged model id)."""
    import mlflow.spark
    import pyspark
    from mlflow.models import Model

    class SparkWithManifest:
        """MLflow's Spark flavor, plus the manifest over everything it saved."""

        __name__ = "mlflow.spark"

        @staticmethod
        def save_model(path: str, mlflow_model: Any, **kwargs: Any) -> None:
            kwargs.pop("validate_serving_input", None)
            mlflow.spark.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
            integrity.sign(Path(path), model_name)

    info = Model.log(
        artifact_path=None,
        name=MODEL_ARTIFACT,
        flavor=SparkWithManifest,
        flavor_name="spark",
        registered_model_name=model_name,
        tags=tags,
        spark_model=model,
        signature=signature,
        input_example=input_example,
        # Inferring requirements costs seconds per publish; the pin is what matters.
        pip_requirements=[f"pyspark=={pyspark.__version__}"],
        # Checking the example by serving it would start a second model load; the signature
        # was inferred from the same rows scored by the model.
        validate_serving_input=False,
    )
    return str(info.registered_model_version), info.model_id


def logged_model_id(version: Any) -> str | None:
    """The LoggedModel behind a registered version (the SQL store leaves `model_id` empty and
    keeps it in the version's source, `models:/<id>`)."""
    source = version.source or ""
    return version.model_id or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None
    )


def set_alias(model_name: str, alias: str, version: str) -> None:
    from mlflow import MlflowClient

    with _asking(f"the {alias} alias of {model_name}"):
        MlflowClient().set_registered_model_alias(model_name, alias, version)


@contextmanager
def verified_copy(model_name: str, version: str) -> Iterator[Path]:
    """A local copy of one registered version, verified against its integrity manifest
    (ModelRefused)."""
    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        with _asking(f"the files of {model_name} version {version}"):
            folder = Path(
                mlflow.artifacts.download_artifacts(
                    f"models:/{model_name}/{version}", dst_path=scratch
                )
            )
        integrity.verify(folder, f"model {model_name} version {version}")
        yield folder


def load_version(model_name: str, version: str) -> Any:
    """The Spark PipelineModel of one version, loaded only after its integrity manifest checks
    out."""
    import mlflow.spark

    with verified_copy(model_name, version) as folder:
        return mlflow.spark.load_model(str(folder))


def load_champion(model_name: str) -> tuple[Any, Any] | None:
    """(ModelVersion, verified Spark PipelineModel) of the champion, or None."""
    version = champion_version(model_name)
    if version is None:
        return None
    return version, load_version(model_name, str(version.version))


def version_history(model_name: str) -> list[dict[str, Any]]:
    """Every registered version, oldest first, with its run date, gate metric and decision."""
    from mlflow import MlflowClient

    with _asking(f"the versions of {model_name}"):
        versions = MlflowClient().search_model_versions(f"name = '{model_name}'")
    champion = champion_version(model_name)
    return sorted(
        (
            {
                "version": int(v.version),
                "run_date": v.tags.get("run_date"),
                "metric": v.tags.get("gate_metric"),
                "value": float(v.tags["gate_value"]) if "gate_value" in v.tags else None,
                "decision": v.tags.get("decision"),
                "champion": champion is not None and str(champion.version) == str(v.version),
            }
            for v in versions
        ),
        key=lambda v: v["version"],
    )
