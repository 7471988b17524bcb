"""Each stage's driver JVM starts from a class-data-sharing archive (the JDK's AppCDS).

A Spark driver loads some ten thousand classes before its first job; mapped from an archive,
they need not be read from jars, verified and parsed again (measured on 2 cores: an empty
spark-submit 8.4 s -> 5.0 s; a digits day's six stages about 12% faster). The first stage
on a machine, and the first after the JDK or pyspark changed, writes the archive as its JVM
exits (about ten seconds more, once); every later stage maps it.

The archive lives in the cache (`retrain.paths.cache_dir`), named by what it was made from.
It is written beside its name and moved there only after its JVM exited successfully: a
truncated archive would crash every JVM that maps it. A JVM whose classpath differs (extra
jars) cannot use it and starts as it would have, with one warning. The JDK cannot archive
classes from a classpath that holds a folder with files in it (the JVM fails at exit: "Error:
non-empty directory"), and spark-submit puts `SPARK_CONF_DIR` there, so with a Spark
configuration folder (compose has one, clusters do) there is no archive. The option reaches the
driver through `SPARK_SUBMIT_OPTS`, which spark-submit adds to the driver's JVM in client and
local mode beside any `spark.driver.extraJavaOptions` of the user's. `RETRAIN_JVM_ARCHIVE=off`
turns it off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrain.paths import cache_dir

SWITCH = "RETRAIN_JVM_ARCHIVE"  # "off" turns the archive off
OPTIONS = "SPARK_SUBMIT_OPTS"  # spark-submit's extra options for the driver's JVM


def classpath_folders() -> list[Path]:
    """The folders spark-submit's launcher puts on the driver's classpath, from the
    environment (the configuration folder, Hadoop's and YARN's, SPARK_DIST_CLASSPATH's)."""
    import pyspark

    spark_home = os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__)
    conf = os.environ.get("SPARK_CONF_DIR") or os.path.join(spark_home, "conf")
    more = [os.environ.get(name, "") for name in ("HADOOP_CONF_DIR", "YARN_CONF_DIR")]
    more += os.environ.get("SPARK_DIST_CLASSPATH", "").split(os.pathsep)
    return [Path(p) for p in (conf, *more) if p and Path(p).is_dir()]


def archive_file() -> Path | None:
    """Where the archive for this machine's java and pyspark lives (it may not exist yet);
    None when it is turned off, there is no java to name, or the classpath holds a folder
    with files in it (which the JDK refuses to archive)."""
    if os.environ.get(SWITCH, "").lower() in ("off", "false", "0"):
        return None
    if any(any(folder.iterdir()) for folder in classpath_folders()):
        return None
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        return None
    import pyspark

    java = Path(java).resolve()
    made_from = f"{java}|{java.stat().st_mtime_ns}|{pyspark.__file__}|{pyspark.__version__}"
    key = hashlib.sha256(made_from.encode()).hexdigest()[:16]
    return cache_dir() / "jvm" / f"spark-{pyspark.__version__}-{key}.jsa"


@contextmanager
def driver_archive() -> Iterator[str]:
    """Inside the block, a spark-submit's driver JVM maps the archive, or writes it at exit if
    there is none yet (kept only if the block ends without an error). Yields what it does."""
    archive = archive_file()
    if archive is None:
        yield "off"
        return
    written = None
    if archive.exists():
        option, doing = f"-XX:SharedArchiveFile={archive}", f"mapped from {archive}"
    else:
        archive.parent.mkdir(parents=True, exist_ok=True)
        written = archive.with_name(f".{archive.name}.{uuid.uuid4().hex[:12]}")
        option, doing = f"-XX:ArchiveClassesAtExit={written}", f"writing {archive} (once)"
    previous = os.environ.get(OPTIONS)
    os.environ[OPTIONS] = f"{previous} {option}" if previous else option
    try:
        yield doing
        if written is not None and written.is_file() and written.stat().st_size:
            written.replace(archive)
    finally:
        if previous is None:
            os.environ.pop(OPTIONS, None)
        else:
            os.environ[OPTIONS] = previous
        if written is not None:
            written.unlink(missing_ok=True)
