"""The lake: every read and write of its files, on any file system Spark and fsspec know.

Two kinds of file live there. Partitions (raw, quarantine, features, candidates, predictions)
are written by Spark beside what they replace and trusted only with a success marker. They are
committed in one of two ways (`commits_by_pointer`):
- by renames, where renaming a folder is atomic (a local disk, HDFS): the new folder is swapped
  in for the old one, and a crash mid-swap is finished or undone at the next start;
- by a pointer, on object stores (S3, GCS, Azure blobs), where a "rename" copies file by file
  and a crash can leave half a partition in place: each write goes to a version folder of its
  own, `_versions/ds=D/TOKEN/` beside the partitions, and is committed by writing the one small
  object `ds=D/_CURRENT` that names it (a single PUT, atomic on every object store). Readers
  resolve the partition through `resolve`; until the pointer moves they read the previous
  version whole.
Small objects (run records, reports, pointers) are written whole through fsspec, each written
once or replaced by one PUT, never renamed, which is safe on object stores too.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from retrain.errors import DataRejected, RetrainError
from retrain.paths import SUCCESS_MARKER, VALIDATED_MARKER, lake_root, local_path, parse_date

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
COMMIT_ENV = "RETRAIN_PARTITION_COMMIT"  # rename | pointer; unset: by the lake's scheme
RENAME_ATOMIC = ("", "file", "hdfs", "viewfs")  # file systems where a folder rename is atomic
POINTER = "_CURRENT"  # names the committed version of a pointer-committed partition
VERSIONS = "_versions"  # beside the ds= folders; Spark's listings skip names starting with _
# Seconds this process spent in `write_partition`; Spark is lazy, so this includes computing
# whatever plan feeds the write that was not already materialised (cached) before it.
write_seconds: list[float] = []


def _objects(uri: str) -> tuple[Any, str]:
    """(fsspec file system, path) for a lake URI or a local path."""
    import fsspec

    return fsspec.core.url_to_fs(uri)


def write_object(uri: str, content: str | bytes) -> None:
    """Write a small object whole: readers see all of it or nothing (a local file is written
    beside and renamed; an object store's put is atomic by itself)."""
    data = content.encode() if isinstance(content, str) else content
    fs, path = _objects(uri)
    if "file" in fs.protocol or "local" in fs.protocol:
        folder = Path(path).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{Path(path).name}-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def read_bytes(uri: str) -> bytes | None:
    """A small object's bytes, or None when there is none."""
    fs, path = _objects(uri)
    try:
        return fs.cat_file(path)
    except (FileNotFoundError, IsADirectoryError):
        return None


def read_object(uri: str) -> str | None:
    """A small object's text, or None when there is none."""
    data = read_bytes(uri)
    return None if data is None else data.decode()


def copy_new_files(local: Path, uri: str, always: tuple[str, ...] = ()) -> int:
    """Copy the files under a local folder that the lake folder `uri` does not have yet (by
    relative path), and those named in `always` in any case; how many were copied. For folders
    that only grow, as a Data Docs site does (each validation adds its own pages)."""
    if not local.is_dir():
        return 0
    fs, path = _objects(uri)
    root = path.rstrip("/")
    present = {name.removeprefix(root).lstrip("/") for name in fs.find(root)}  # [] if absent
    copied = 0
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        relative = file.relative_to(local).as_posix()
        if relative not in present or relative in always:
            write_object(f"{uri.rstrip('/')}/{relative}", file.read_bytes())
            copied += 1
    return copied


def _listing(uri: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(URI, name, fsspec's details) of every entry directly in a folder; [] without it. A URI
    keeps the folder's own form: a plain path stays a path, `file://` and the like a URI."""
    fs, path = _objects(uri)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    whole = "://" in uri
    return [
        (fs.unstrip_protocol(e["name"]) if whole else e["name"],
         e["name"].rstrip("/").rsplit("/", 1)[-1], e)
        for e in entries
    ]  # fmt: skip


def list_objects(uri: str) -> list[str]:
    """The URIs of the objects directly in a folder, sorted; [] without the folder."""
    return sorted(found for found, _, e in _listing(uri) if e["type"] == "file")


def list_folders(uri: str) -> list[str]:
    """The names of the folders directly in a folder, sorted; [] without the folder."""
    return sorted(name for _, name, e in _listing(uri) if e["type"] == "directory")


def data_objects(uri: str) -> list[str]:
    """The names of the files in a folder that Spark would read as data: not empty, not hidden
    (`_` or `.` first, as Spark's own markers are); [] without the folder."""
    return sorted(
        name
        for _, name, e in _listing(uri)
        if e["type"] == "file" and e.get("size", 0) > 0 and not name.startswith(("_", "."))
    )


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """(Hadoop FileSystem, Path) for a path: local, HDFS and s3a alike."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _fs(spark, path)
    return bool(fs.exists(hadoop_path))


def commits_by_pointer(partition: str) -> bool:
    """Whether `partition` is committed by a pointer (object stores) or by renames (a local
    disk, HDFS); `RETRAIN_PARTITION_COMMIT=rename|pointer` overrides the choice by scheme (an
    Azure Data Lake with a hierarchical namespace renames atomically, say)."""
    chosen = os.environ.get(COMMIT_ENV, "")
    if chosen not in ("", "rename", "pointer"):
        raise RetrainError(f"{COMMIT_ENV}={chosen!r}: use rename or pointer, or leave it unset")
    if chosen:
        return chosen == "pointer"
    return urlsplit(partition).scheme not in RENAME_ATOMIC


def resolve(partition: str) -> str:
    """The folder holding a partition's committed data: the version its pointer names, else
    the partition folder itself (committed by renames, or never written)."""
    pointer = read_object(f"{partition}/{POINTER}")
    if pointer is None:
        return partition
    if not re.fullmatch(r"[0-9a-f]+-[0-9a-f]{8}", pointer.strip()):
        raise RetrainError(f"{partition}/{POINTER} does not name a version folder: {pointer!r}")
    return f"{_versions(partition)}/{pointer.strip()}"


def _versions(partition: str) -> str:
    """Where a pointer-committed partition's versions live: `<zone>/_versions/ds=D/`."""
    parent, name = partition.rstrip("/").rsplit("/", 1)
    return f"{parent}/{VERSIONS}/{name}"


def read_partition(spark: SparkSession, partition: str) -> DataFrame:
    """A committed partition's rows (every reader of a partition reads through here)."""
    return spark.read.parquet(resolve(partition))


def is_complete(spark: SparkSession, partition: str) -> bool:
    """Readers trust only partitions whose writer finished (Spark's success marker)."""
    recover_partition(spark, partition)
    return exists(spark, f"{resolve(partition)}/{SUCCESS_MARKER}")


def is_validated(spark: SparkSession, partition: str) -> bool:
    """A raw partition that passed its critical expectations (the only kind training reads)."""
    recover_partition(spark, partition)
    return exists(spark, f"{resolve(partition)}/{VALIDATED_MARKER}")


def set_validated(spark: SparkSession, partition: str, validated: bool) -> None:
    """Mark the committed version: a new version of the partition must earn the mark again."""
    fs, marker = _fs(spark, f"{resolve(partition)}/{VALIDATED_MARKER}")
    if validated:
        fs.create(marker, True).close()
    else:
        fs.delete(marker, False)


@dataclass(frozen=True)
class Landing:
    """A landing partition's data files, and every other entry with why it is not read."""

    files: list[str]
    skipped: dict[str, str]


def list_landing(spark: SparkSession, partition: str) -> Landing:
    """The files Spark will read from a partition, and every entry it will not, by name.

    A symbolic link anywhere below the lake root (the dataset's landing root, the partition
    folder, a file in it) is refused (DataRejected), wherever it points: it could make ingest
    copy any file the job can read, the generated key say, into the lake. Object stores have no
    links; a local lake is checked on the driver's disk, where Hadoop's local file system would
    follow the link without a word.
    """
    fs, folder = _fs(spark, partition)
    plain = "landing files must be plain files inside the lake"
    linked = _linked_folder(folder)
    if linked:
        raise DataRejected(f"landing folder {linked} is a symbolic link: {plain}")
    files, skipped = [], {}
    for status in fs.listStatus(folder):
        path = status.getPath()
        name = path.getName()
        if _local_link(path):
            raise DataRejected(f"landing file {name} in {partition} is a symbolic link: {plain}")
        if name in (SUCCESS_MARKER, VALIDATED_MARKER):
            continue
        if name.startswith(("_", ".")):
            skipped[name] = "not read: Spark skips names that start with _ or ."
        elif status.isDirectory():
            skipped[name] = "not read: a sub-folder (put the day's files in the ds= folder)"
        elif status.getLen() == 0:
            skipped[name] = "empty (0 bytes)"
        else:
            files.append(path.toString())
    return Landing(sorted(files), dict(sorted(skipped.items())))


def landed_days(root: str) -> dict[date, str]:
    """The `ds=YYYY-MM-DD` partition folders under a landing root, by day, oldest first (listed
    without Spark, so the CLI and Airflow can ask too)."""
    found = {}
    for name in list_folders(root):
        try:
            found[parse_date(name.removeprefix("ds="))] = f"{root.rstrip('/')}/{name}"
        except ValueError:
            continue  # not a partition of ours
    return dict(sorted(found.items()))


def data_files(spark: SparkSession, partition: str) -> list[str]:
    """The data files of a partition (see `list_landing`)."""
    return list_landing(spark, partition).files


def _local_link(path: Any) -> bool:
    """A Hadoop path on the local disk that is a symbolic link."""
    uri = path.toUri()
    return uri.getScheme() in (None, "file") and Path(uri.getPath()).is_symlink()


def _linked_folder(folder: Any) -> Path | None:
    """The first symbolic link among a local folder (a Hadoop path) and its parents below the
    lake root, None if there is none. The root itself may be a link: where the lake lives is
    the operator's choice."""
    uri = folder.toUri()
    if uri.getScheme() not in (None, "file"):
        return None
    path = Path(uri.getPath())
    try:
        root = Path(os.path.abspath(local_path(lake_root())))
    except ValueError:  # the lake is elsewhere (an object store): check the folder alone
        root = None
    below_root = [path, *path.parents]
    if root is not None and path.is_relative_to(root):
        below_root = below_root[: len(path.relative_to(root).parts)]
    else:
        below_root = below_root[:1]
    return next((p for p in below_root if p.is_symlink()), None)


def first_line(spark: SparkSession, file: str) -> str:
    """The first line of a text file, read on the driver (a CSV header): decompressed as Spark
    decompresses it (by the file's ending: .gz, .bz2, ...), without a byte-order mark."""
    jvm = spark.sparkContext._jvm
    fs, path = _fs(spark, file)
    stream = fs.open(path)
    codecs = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration()
    )
    codec = codecs.getCodec(path)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
    try:
        return (reader.readLine() or "").removeprefix("\ufeff")
    finally:
        reader.close()


def _hidden(partition: str, kind: str, token: str = "*") -> str:
    """A hidden sibling of a partition: `.ds=D.staging-TOKEN` (being written) or
    `.ds=D.old-TOKEN` (the previous content, moved aside during the swap)."""
    parent, name = partition.rstrip("/").rsplit("/", 1)
    return f"{parent}/.{name}.{kind}-{token}"


def recover_partition(spark: SparkSession, partition: str) -> None:
    """Finish or undo a swap that a crash interrupted, so the partition is whole, old or new.

    A missing partition with a complete staging folder (its writer got as far as the success
    marker) takes that; else it takes its moved-aside previous content. Leftovers are removed
    once the partition is in place. Call before reading or replacing a partition. (Nothing to
    do for a pointer: a write that crashed left only a version no pointer names.)
    """
    if commits_by_pointer(partition):
        return
    fs, target = _fs(spark, partition)
    jvm_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path

    def hidden(kind: str) -> list[Any]:
        found = fs.globStatus(jvm_path(_hidden(partition, kind))) or []
        return sorted((s.getPath() for s in found), key=lambda p: p.toString())

    if not fs.exists(target):
        complete = [p for p in hidden("staging") if fs.exists(jvm_path(p, SUCCESS_MARKER))]
        for candidate in [*complete[-1:], *hidden("old")[-1:]]:
            if fs.rename(candidate, target):
                log.warning("recovered %s from %s after an interrupted swap", partition,
                            candidate.getName())  # fmt: skip
                break
    if fs.exists(target):
        for leftover in hidden("old"):
            fs.delete(leftover, True)


def _swap_in(spark: SparkSession, staging: str, partition: str, token: str) -> None:
    """Replace `partition` by the complete folder `staging`: old aside, new in, old gone."""
    fs, target = _fs(spark, partition)
    jvm_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path
    trash = jvm_path(_hidden(partition, "old", token))
    had_old = fs.exists(target)
    if had_old and not fs.rename(target, trash):
        raise RetrainError(f"could not move the old {partition} aside")
    if not fs.rename(jvm_path(staging), target):
        raise RetrainError(f"could not move the new {partition} into place")
    if had_old:
        fs.delete(trash, True)


def _commit(spark: SparkSession, partition: str, write: Callable[[str], None]) -> None:
    """Replace a partition as a whole by what `write(folder)` writes into a new folder.

    By renames: the folder is a hidden sibling, swapped in once complete; a crash mid-write
    leaves the old partition in place, a crash mid-swap is finished or undone by
    `recover_partition`. By a pointer: the folder is a new version, and the pointer moves to it
    in one PUT; the versions it no longer names (the previous one, and any a crashed writer
    left) are removed after. Readers never see half a partition.
    """
    token = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
    if commits_by_pointer(partition):
        write(f"{_versions(partition)}/{token}")
        write_object(f"{partition}/{POINTER}", f"{token}\n")
        fs, versions = _fs(spark, _versions(partition))
        for stale in fs.listStatus(versions):
            if stale.getPath().getName() != token:
                fs.delete(stale.getPath(), True)
    else:
        recover_partition(spark, partition)
        staging = _hidden(partition, "staging", token)
        write(staging)
        _swap_in(spark, staging, partition, token)


def write_partition(frame: DataFrame, partition: str, files: int | None = None) -> None:
    """Replace a partition as a whole (see `_commit`), in `files` files if given."""
    started = time.monotonic()
    out = frame.coalesce(files) if files else frame
    _commit(frame.sparkSession, partition, out.write.parquet)
    write_seconds.append(time.monotonic() - started)


def save_model(spark: SparkSession, model: Any, path: str) -> None:
    """Save a Spark ML model as a partition is written: never half a model in place. Load it
    from `resolve(path)`."""

    def write(folder: str) -> None:
        model.write().save(folder)
        fs, marker = _fs(spark, f"{folder}/{SUCCESS_MARKER}")
        fs.create(marker).close()

    _commit(spark, path, write)
