"""The docker-compose deployment, checked without a Docker engine: what it names must exist and
match the pins, its secrets come from `.env`, its ports stay on loopback, and its entrypoint
really writes the cluster's security settings."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retrain.paths import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
PINS = dict(
    line.split("==", 1)
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
    if "==" in line and not line.startswith("#")
)
PROJECT_IMAGE = "retrain:local"


def test_the_project_image_is_built_from_the_pinned_requirements():
    built = {name for name, s in SERVICES.items() if s.get("build") == "."}
    assert built == {name for name, s in SERVICES.items() if s.get("image") == PROJECT_IMAGE}
    assert re.search(r"^FROM python:3\.11\.\d+-slim", DOCKERFILE, re.M)
    assert "pip install --no-cache-dir -r requirements.txt" in DOCKERFILE
    assert "openjdk-17-jre-headless" in DOCKERFILE  # Spark 4 needs Java 17
    assert PINS["pyspark"] == PINS["pyspark-client"]


def test_spark_mlflow_and_airflow_run_the_pinned_versions_from_that_image():
    for name in ("spark-master", "spark-worker", "mlflow", "airflow-scheduler"):
        assert SERVICES[name]["image"] == PROJECT_IMAGE, name
    assert SERVICES["spark-master"]["command"][0] == "spark-class"  # pyspark's, at the pin
    assert SERVICES["mlflow"]["command"][0] == "mlflow"
    assert SERVICES["postgres"]["image"].startswith("postgres:16.")


def test_other_images_have_exact_tags():
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), name


def test_every_command_and_mounted_path_exists():
    binaries = Path(sys.executable).parent  # the same pins, installed here
    for name, service in SERVICES.items():
        command = service.get("command")
        if service["image"] == PROJECT_IMAGE and command:
            assert (binaries / command[0]).exists(), f"{name}: {command[0]}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: {source}"
    for source in re.findall(r"^COPY (.+) \S+$", DOCKERFILE, re.M):
        for path in source.split():
            assert (REPO_ROOT / path).exists(), path


def test_services_wait_for_what_they_need():
    for name, service in SERVICES.items():
        for needed, condition in (service.get("depends_on") or {}).items():
            assert needed in SERVICES, f"{name} depends on unknown {needed}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[needed], needed
    assert SERVICES["airflow-scheduler"]["depends_on"]["airflow-init"] == {
        "condition": "service_completed_successfully"
    }


def test_every_long_running_service_has_a_bounded_health_check():
    """As Airflow's own compose file does: `docker compose ps` tells a stuck service, a check
    that hangs counts as failed, and a slow start is not a failure."""
    for name, service in SERVICES.items():
        if service.get("restart") != "no":
            check = service["healthcheck"]
            assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
            assert {"interval", "timeout", "start_period", "retries"} <= set(check), name


def test_specs_suites_and_results_are_reachable_in_the_deployment():
    mounts = {v.split(":")[1] for v in SERVICES["airflow-scheduler"]["volumes"]}
    assert {"/opt/retrain/include/datasets", "/opt/retrain/expectations"} <= mounts
    # Results are served by the API server behind its login: no service of their own.
    assert not [n for n, s in SERVICES.items() if "serve-results" in s.get("command", [])]
    api = SERVICES["airflow-apiserver"]
    port = api["command"][api["command"].index("--port") + 1]
    assert f"127.0.0.1:{port}:{port}" in api["ports"]
    url = api["environment"]["RETRAIN_RESULTS_URL"]
    assert url == f"http://127.0.0.1:{port}/retrain"  # the links a browser on the host opens


def test_the_image_context_holds_no_venv_home_or_secrets():
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert {".venv/", ".retrain/", ".env", "**/secrets/", ".git/"} <= set(ignored)


def test_spark_default_points_at_the_master_in_client_mode():
    env = SERVICES["airflow-scheduler"]["environment"]
    connection = yaml.safe_load(env["AIRFLOW_CONN_SPARK_DEFAULT"])
    master = SERVICES["spark-master"]["command"]
    assert connection["host"] == f"spark://{SERVICES['spark-master']['hostname']}"
    assert str(connection["port"]) == master[master.index("--port") + 1]
    assert connection["extra"]["deploy-mode"] == "client"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_secrets_come_from_env_and_ports_stay_on_loopback():
    text = (REPO_ROOT / "docker-compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = {
        line.split("=", 1)[0]
        for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert required == {
        "RETRAIN_KEY",
        "SPARK_AUTH_SECRET",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "POSTGRES_PASSWORD",
    }
    assert required <= example
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"
        assert "SPARK_AUTH_SECRET" not in " ".join(map(str, service.get("command", []))), name


def test_the_docs_name_only_services_that_exist():
    page = (REPO_ROOT / "docs" / "scale-out.md").read_text()
    section = page.split("\n## The compose deployment\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z-]+)`", row)}
    assert named, "docs/scale-out.md's compose section names no service"
    assert named == set(SERVICES), named ^ set(SERVICES)


@pytest.fixture
def entrypoint() -> Path:
    return REPO_ROOT / "include" / "docker" / "entrypoint.sh"


GOOD_SECRETS = {
    "SPARK_AUTH_SECRET": "s3cr3t" * 6,
    "RETRAIN_KEY": "k" * 64,
    "AIRFLOW__API_AUTH__JWT_SECRET": "j" * 64,
    "POSTGRES_PASSWORD": "p" * 32,
    "AIRFLOW__CORE__FERNET_KEY": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
}


def start(entrypoint: Path, conf: Path, **secrets: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SPARK_CONF_DIR": str(conf)} | GOOD_SECRETS | secrets
    return subprocess.run(
        [shutil.which("sh"), str(entrypoint), "echo", "started"],
        env={k: v for k, v in env.items() if v is not None}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip


def test_entrypoint_writes_the_security_settings_readable_by_its_user_only(entrypoint, tmp_path):
    assert entrypoint.stat().st_mode & stat.S_IXUSR
    done = start(entrypoint, tmp_path / "conf")
    assert (done.returncode, done.stdout) == (0, "started\n"), done.stderr
    written = tmp_path / "conf" / "spark-defaults.conf"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    settings = dict(line.split(" ", 1) for line in written.read_text().splitlines())
    assert settings == {
        "spark.authenticate": "true",
        "spark.authenticate.secret": GOOD_SECRETS["SPARK_AUTH_SECRET"],
        "spark.network.crypto.enabled": "true",
        "spark.network.crypto.cipher": "AES/GCM/NoPadding",
        "spark.ui.enabled": "false",
    }


HEX, FERNET = "token_hex", "Fernet.generate_key"  # the commands each refusal names
# The secrets .env names differently inside the containers (Airflow's own settings).
IN_CONTAINER = {
    "AIRFLOW_JWT_SECRET": "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW_FERNET_KEY": "AIRFLOW__CORE__FERNET_KEY",
}


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("SPARK_AUTH_SECRET", None, ("is empty", HEX)),
        ("RETRAIN_KEY", "change-me", ("still the placeholder", HEX)),
        ("RETRAIN_KEY", "short", ("holds 5 characters, fewer than 32", HEX)),
        ("AIRFLOW_JWT_SECRET", "change-me", ("placeholder", HEX)),
        ("POSTGRES_PASSWORD", "change-me", ("placeholder", HEX)),
        ("AIRFLOW_FERNET_KEY", "change-me", ("placeholder", FERNET)),
        ("SPARK_AUTH_SECRET", "s" * 40 + "\nspark.authenticate false", ("line break", HEX)),
        ("AIRFLOW_FERNET_KEY", "x" * 43 + "!",
         ("is not a Fernet key", FERNET)),
    ],
)  # fmt: skip
def test_entrypoint_refuses_missing_placeholder_or_short_secrets_by_name(
    entrypoint, tmp_path, variable, value, said
):
    done = start(entrypoint, tmp_path, **{IN_CONTAINER.get(variable, variable): value})
    assert done.returncode == 64 and done.stdout == ""
    problem, command = said
    assert done.stderr.startswith(f"retrain: {variable} ") and problem in done.stderr
    assert command in done.stderr and f"put it in .env as {variable}=" in done.stderr
    assert not (tmp_path / "spark-defaults.conf").exists()


def test_entrypoint_takes_a_rotating_fernet_key_list(entrypoint, tmp_path):
    rotating = (
        GOOD_SECRETS["AIRFLOW__CORE__FERNET_KEY"] + ",xYb4m1v9h2ZpQ0n3c5L7k8J6g4F2d1S0a9W8e7R6t5Y="
    )
    assert start(entrypoint, tmp_path, AIRFLOW__CORE__FERNET_KEY=rotating).returncode == 0


def test_every_placeholder_of_the_example_env_is_refused(entrypoint, tmp_path):
    example = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for variable in ("SPARK_AUTH_SECRET", "RETRAIN_KEY", "AIRFLOW_JWT_SECRET",
                     "POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY"):  # fmt: skip
        done = start(
            entrypoint, tmp_path, **{IN_CONTAINER.get(variable, variable): example[variable]}
        )
        assert done.returncode == 64 and f"retrain: {variable} " in done.stderr, variable
