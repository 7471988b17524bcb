"""Integrity manifests: a published model is loaded only if every file is exactly what was
signed. (MLflow's "signature" is something else: the model's input and output schema.)

Publishing writes a manifest of the SHA-256 digest of every file of the model directory and
signs it with HMAC-SHA256 under the `sign` key (retrain.keys). Loading verifies first: a changed,
missing or added file, an altered manifest, a missing signature or another key's signature is
refused with the reason. Models are Spark-native directories; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from retrain.errors import DataRejected
from retrain.keys import derived_key

MANIFEST = "retrain_manifest.json"
SIGNATURE = "retrain_manifest.sig"
# Written by MLflow into every download of a registered version (its name and version).
DOWNLOAD_METADATA = "registered_model_meta"


class ModelRefused(DataRejected):
    """A model failed verification: retrying cannot make it trustworthy."""


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (but the manifest and signature), by relative path."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative not in (MANIFEST, SIGNATURE, DOWNLOAD_METADATA):
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _signature(manifest: bytes) -> str:
    return hmac.new(derived_key("sign"), manifest, hashlib.sha256).hexdigest()


def sign(folder: Path, model_name: str) -> int:
    """Write the signed manifest into `folder`; return how many files it covers."""
    files = digests(folder)
    manifest = json.dumps({"model": model_name, "files": files}, indent=1, sort_keys=True)
    (folder / MANIFEST).write_text(manifest)
    (folder / SIGNATURE).write_text(_signature(manifest.encode()) + "\n")
    return len(files)


def verify(folder: Path, what: str) -> int:
    """Raise ModelRefused unless `folder` is exactly what was signed; return the file count."""
    manifest, signature = folder / MANIFEST, folder / SIGNATURE
    if not manifest.is_file() or not signature.is_file():
        raise ModelRefused(f"{what} is not signed ({MANIFEST} or {SIGNATURE} missing): refused")
    text = manifest.read_bytes()
    if not hmac.compare_digest(signature.read_text().strip(), _signature(text)):
        raise ModelRefused(
            f"{what}: the manifest's signature does not match (altered, or signed with another "
            "RETRAIN_KEY): refused"
        )
    signed, found = json.loads(text)["files"], digests(folder)
    problems = [
        *(f"{name} is missing" for name in sorted(signed.keys() - found.keys())),
        *(f"{name} was added" for name in sorted(found.keys() - signed.keys())),
        *(
            f"{name} changed"
            for name in sorted(signed)
            if found.get(name, signed[name]) != signed[name]
        ),
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ModelRefused(
            f"{what} does not match its signed manifest: {'; '.join(problems[:3])}{more}: refused"
        )
    return len(signed)
