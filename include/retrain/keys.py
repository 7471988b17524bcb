"""The one secret retrain needs, and the keys derived from it.

The secret comes from the `RETRAIN_KEY` environment variable, which the DAG fills from the
Airflow connection `retrain_key` (its password) when that exists. On a laptop with neither, a
random secret is generated once under the retrain home (mode 600), so the two-command start
works; a deployment sets its own. Each use gets its own key, HMAC-SHA256(secret, purpose), so
the key that pseudonymizes data cannot sign a model.

The secret reaches a Spark job through the environment of its spark-submit process, never on
a command line, and Spark sees derived keys as data in a one-row frame, never as SQL literals
(which would be printed in query plans).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from retrain.paths import home
from retrain.spec import SpecError

ENV = "RETRAIN_KEY"
CONNECTION_ID = "retrain_key"
MIN_LENGTH = 32
PURPOSES = ("pseudonymize", "encrypt", "encrypt_iv", "sign")


def key_file() -> Path:
    return home() / "secrets" / "retrain.key"


def _generated_secret() -> str:
    """The home's generated secret, made once. It is written whole to a temporary file and
    linked into place, so a process killed midway never leaves an empty key behind."""
    path = key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".retrain.key-")
        try:
            with os.fdopen(descriptor, "w") as out:  # mkstemp makes it mode 600
                out.write(secrets.token_hex(32))
                out.flush()
                os.fsync(out.fileno())
            os.link(temporary, path)  # atomic; fails if another process made it first
        except FileExistsError:
            pass  # theirs is used
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def secret() -> bytes:
    value = os.environ.get(ENV) or _generated_secret()
    if len(value) < MIN_LENGTH:
        raise SpecError(
            f"{ENV} must hold at least {MIN_LENGTH} characters (e.g. `openssl rand -hex 32`), "
            f"got {len(value)}"
        )
    return value.encode()


def derived_key(purpose: str) -> bytes:
    """32 bytes for one use of the secret."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    return hmac.new(secret(), f"retrain/{purpose}".encode(), hashlib.sha256).digest()
