"""Sensitive columns, protected in Spark before anything is written.

`pseudonymize`: HMAC-SHA256 of the value under a secret key, as hex (equal values stay equal,
so they still join and count; the value cannot be recovered). `encrypt`: AES-256-GCM
(`aes_encrypt`) as base64, recoverable only with the key (`decrypt`); its IV is an HMAC of the
value under a key of its own (a synthetic IV), so equal values encrypt equally and duplicates
are still found, revealing no more than a pseudonym does. `drop`: never stored. Protection
comes first: checks, suites and quarantine see only protected values; a quarantined record may
be cut or shifted, so with sensitive columns it is encrypted whole.

Spark has no HMAC function (4.1), so it is built from sha2 as RFC 2104 defines it. The keys
enter Spark as a broadcast one-row frame, never as SQL literals printed in query plans.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from retrain.keys import derived_key
from retrain.spec import Spec, quote

HMAC_BLOCK = 64  # SHA-256 block size in bytes
GCM_IV_BYTES = 12
ENCRYPT = "_key_encrypt"


def _pads(purpose: str) -> tuple[bytes, bytes]:
    """RFC 2104's inner and outer padded keys."""
    block = derived_key(purpose).ljust(HMAC_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def _keys(spark: SparkSession) -> DataFrame:
    (p_in, p_out), (iv_in, iv_out) = _pads("pseudonymize"), _pads("encrypt_iv")
    return spark.createDataFrame(
        [(p_in, p_out, iv_in, iv_out, derived_key("encrypt"))],
        "_key_p_in binary, _key_p_out binary, _key_iv_in binary, _key_iv_out binary, "
        f"{ENCRYPT} binary",
    )


def _hmac(value: Column, pads: str) -> Column:
    """HMAC-SHA256 as binary, with the padded keys in columns `_key_<pads>_in` / `_out`."""
    inner = F.unhex(F.sha2(F.concat(F.col(f"_key_{pads}_in"), F.encode(value, "UTF-8")), 256))
    return F.unhex(F.sha2(F.concat(F.col(f"_key_{pads}_out"), inner), 256))


def pseudonym(value: Column) -> Column:
    return F.lower(F.hex(_hmac(value, "p")))


def encrypted(value: Column) -> Column:
    iv = F.substring(_hmac(value, "iv"), 1, GCM_IV_BYTES)
    return F.base64(
        F.aes_encrypt(F.encode(value, "UTF-8"), F.col(ENCRYPT), F.lit("GCM"), F.lit("DEFAULT"), iv)
    )


def protect(frame: DataFrame, spec: Spec, whole_lines: tuple[str, ...] = ()) -> DataFrame:
    """`frame` with the spec's sensitive columns protected and `whole_lines` encrypted."""
    if not spec.sensitive:
        return frame
    how = {"pseudonymize": pseudonym, "encrypt": encrypted, "drop": lambda _: F.lit(None)}
    with_keys = frame.crossJoin(F.broadcast(_keys(frame.sparkSession)))
    columns = []
    for name in frame.columns:
        action = spec.sensitive.get(name) or ("encrypt" if name in whole_lines else None)
        column = F.col(quote(name))
        columns.append(how[action](column).cast("string").alias(name) if action else column)
    return with_keys.select(*columns)


def decrypt(frame: DataFrame, column: str) -> DataFrame:
    """`frame` with an encrypted column back in plain text; fails unless the key is the one
    that encrypted it (GCM authenticates every value)."""
    key = frame.sparkSession.createDataFrame([(derived_key("encrypt"),)], f"{ENCRYPT} binary")
    plain = F.aes_decrypt(F.unbase64(F.col(quote(column))), F.col(ENCRYPT), F.lit("GCM"))
    return frame.crossJoin(F.broadcast(key)).withColumn(column, plain.cast("string")).drop(ENCRYPT)
