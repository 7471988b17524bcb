"""An all-gather for the tasks of one barrier stage, relayed by the driver over TCP.

Spark's own `BarrierTaskContext.allGather` costs about a second per call: the JVM side of
`runBarrier` (Spark 4.1) polls the coordinator's answer with `Thread.sleep(1000)`. Training
syncs once per epoch, so the trainer uses the barrier stage only to schedule its tasks
together and exchanges the averages here: each task connects to a relay that the driver runs
for the length of the fit, sends its message each round, and gets every task's message back
in task order.

Every frame is sealed with AES-GCM under a key made for this fit, which reaches the tasks
inside the job's closure (over Spark's own, possibly encrypted, RPC): a frame that does not
open is refused, so nothing else can join or read the exchange.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONNECT_SECONDS = 600  # every task of a barrier stage starts at once; this bounds a hang
_LENGTH = struct.Struct(">I")
_NONCE = 12


class ExchangeError(RuntimeError):
    """A task or the relay went away, or a frame did not authenticate."""


def _send(sock: socket.socket, key: bytes, payload: bytes) -> None:
    nonce = os.urandom(_NONCE)
    sealed = nonce + AESGCM(key).encrypt(nonce, payload, None)
    sock.sendall(_LENGTH.pack(len(sealed)) + sealed)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ExchangeError("the connection closed mid-exchange")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(sock: socket.socket, key: bytes) -> bytes:
    (size,) = _LENGTH.unpack(_receive_exactly(sock, _LENGTH.size))
    sealed = _receive_exactly(sock, size)
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], None)
    except Exception:
        raise ExchangeError("a frame did not authenticate") from None


def _join(messages: list[bytes]) -> bytes:
    return b"".join(_LENGTH.pack(len(m)) + m for m in messages)


def _split(blob: bytes) -> list[bytes]:
    messages, offset = [], 0
    while offset < len(blob):
        (size,) = _LENGTH.unpack_from(blob, offset)
        offset += _LENGTH.size
        messages.append(blob[offset : offset + size])
        offset += size
    return messages


class Relay:
    """The driver's side: accepts `tasks` connections, then relays rounds until they close."""

    def __init__(self, tasks: int, bind: str, host: str) -> None:
        self.tasks, self.key = tasks, AESGCM.generate_key(bit_length=128)
        self._server = socket.create_server((bind, 0))
        self._server.settimeout(CONNECT_SECONDS)
        self.address = (host, self._server.getsockname()[1])
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._serve, name="retrain-relay", daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        peers: dict[int, socket.socket] = {}
        try:
            while len(peers) < self.tasks:
                sock, _ = self._server.accept()
                try:
                    task = int.from_bytes(_receive(sock, self.key), "big")
                except (ExchangeError, OSError, struct.error):
                    sock.close()  # not one of ours
                    continue
                peers[task] = sock
            order = [peers[t] for t in sorted(peers)]
            while True:
                try:
                    messages = [_receive(sock, self.key) for sock in order]
                except ExchangeError:
                    return  # the tasks are done (or one failed, which fails the stage)
                gathered = _join(messages)
                for sock in order:
                    _send(sock, self.key, gathered)
        except OSError as err:  # closed by __exit__, or the accept timed out
            self.error = err
        finally:
            for sock in peers.values():
                sock.close()


class Peers:
    """A task's side: `all_gather(message)` returns every task's message, in task order."""

    def __init__(self, address: tuple[str, int], key: bytes, task: int) -> None:
        self.key = key
        self._sock = socket.create_connection(address, timeout=CONNECT_SECONDS)
        self._sock.settimeout(None)  # an epoch of the slowest task may take long
        _send(self._sock, key, task.to_bytes(4, "big"))

    def all_gather(self, message: bytes) -> list[bytes]:
        _send(self._sock, self.key, message)
        return _split(_receive(self._sock, self.key))

    def close(self) -> None:
        self._sock.close()


class Alone:
    """The one task of a one-task fit: nothing to exchange."""

    def all_gather(self, message: bytes) -> list[bytes]:
        return [message]

    def close(self) -> None:
        pass
