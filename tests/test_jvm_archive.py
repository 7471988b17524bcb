"""Stage drivers start from a class-data-sharing archive: written once by a real spark-submit,
then mapped by the next (which could not start with `-Xshare:on` otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrain.airflow import jvm_archive
from retrain.airflow.jvm_archive import OPTIONS, archive_file, driver_archive

JOB = "from pyspark.sql import SparkSession\nSparkSession.builder.getOrCreate().range(3).count()\n"


def submit(script: Path, *, extra: str = "") -> subprocess.CompletedProcess:
    """spark-submit as a stage's task runs it (this environment's, first on the PATH)."""
    bin_dir = str(Path(sys.executable).parent)
    env = os.environ | {
        OPTIONS: f"{os.environ.get(OPTIONS, '')} {extra}".strip(),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        ["spark-submit", "--master", "local[1]", "--conf", "spark.ui.enabled=false", str(script)],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def test_the_first_stage_writes_the_archive_and_the_next_maps_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRAIN_CACHE", str(tmp_path / "cache"))
    script = tmp_path / "job.py"
    script.write_text(JOB)
    archive = archive_file()
    assert archive is not None and archive.parent == tmp_path / "cache" / "jvm"
    before = os.environ.get(OPTIONS)
    with driver_archive() as doing:
        assert doing == f"writing {archive} (once)"
        assert submit(script).returncode == 0
        assert not archive.exists()  # not in place until the block ended well
    assert archive.stat().st_size > 1_000_000
    assert os.environ.get(OPTIONS) == before
    assert list(archive.parent.iterdir()) == [archive]  # nothing half-written left beside it
    with driver_archive() as doing:
        assert doing == f"mapped from {archive}"
        mapped = submit(script, extra="-Xshare:on")  # refuses to start if it cannot map it
    assert mapped.returncode == 0, mapped.stderr[-2000:]


def test_an_archive_is_kept_only_from_a_stage_that_succeeded(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(OPTIONS, "-Dmine=1")
    archive = archive_file()
    with pytest.raises(RuntimeError), driver_archive():
        assert os.environ[OPTIONS].startswith("-Dmine=1 -XX:ArchiveClassesAtExit=")
        half = Path(os.environ[OPTIONS].split("=", 2)[2])
        half.write_bytes(b"half an archive")  # the JVM was killed while writing it
        raise RuntimeError("spark-submit failed")
    assert os.environ[OPTIONS] == "-Dmine=1"
    assert not archive.exists() and not half.exists()
    monkeypatch.setenv(jvm_archive.SWITCH, "off")
    with driver_archive() as doing:
        assert doing == "off" and os.environ[OPTIONS] == "-Dmine=1"


def test_a_spark_configuration_folder_turns_the_archive_off(tmp_path, monkeypatch):
    """The JDK refuses to archive a classpath with a non-empty folder (the JVM exits 1), and
    spark-submit puts SPARK_CONF_DIR on it: with one, stages run without an archive."""
    monkeypatch.setenv("RETRAIN_CACHE", str(tmp_path / "cache"))
    conf = tmp_path / "conf"
    conf.mkdir()
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf))
    assert archive_file() is not None  # an empty folder is no obstacle
    (conf / "spark-defaults.conf").write_text("spark.driver.memory 1g\n")
    assert conf in jvm_archive.classpath_folders() and archive_file() is None
    script = tmp_path / "job.py"
    script.write_text(JOB)
    with driver_archive() as doing:
        assert doing == "off"
        done = submit(script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "cache" / "jvm").exists()
