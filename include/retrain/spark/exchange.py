"""An all-gather for the tasks of one barrier stage, relayed by the driver over TCP.

Spark's own `BarrierTaskContext.allGather` costs about a second per call: the JVM side of
`runBarrier` (Spark 4.1) polls the coordinator's answer with `Thread.sleep(1000)`. Training
syncs once per epoch, so the trainer uses the barrier stage only to schedule its tasks
together and exchanges the averages here: each task connects to a relay that the driver runs
for the length of the fit, sends its message each round, and gets every task's message back
in task order.

Nothing unauthenticated is trusted, and nothing waits without a bound:
- Every frame is sealed with AES-GCM under a key made for this fit, which reaches the tasks
  inside the job's closure (over Spark's own, possibly encrypted, RPC), and is bound to the fit,
  the task's attempt, the task, the round and its direction: a frame that does not open where it
  is read is refused, so nothing else can join, read or replay the exchange.
- Every frame's size is known in advance and checked before anything is buffered.
- A connection's first frame must authenticate it within HELLO_SECONDS, else it is dropped;
  greetings are read beside the accepting loop, so an idle connection delays no one.
- All tasks must join within `connect_seconds` of the first, and each round must arrive within
  `round_seconds`; a late, failed or foreign peer ends the exchange for every task at once,
  with the cause in `Relay.error` and in each task's error.
- Once the exchange has ended, the listening socket is closed: a task that comes later (a
  retried stage) is refused at once instead of waiting in the backlog. A new fit makes a new
  relay.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONNECT_SECONDS = 300  # every task of a barrier stage starts at once; this bounds the stragglers
ROUND_SECONDS = 3600  # one epoch of the slowest task, and the exchange around it
HELLO_SECONDS = 10  # for a new connection to authenticate
MAX_GREETINGS = 16  # connections being authenticated at once; more are dropped
_LENGTH = struct.Struct(">I")
_HELLO = struct.Struct(">II")  # task attempt, task
_NONCE, _TAG = 12, 16
_POLL_SECONDS = 0.5  # how often the accepting loop looks at the clock
_GRACE_SECONDS = 30  # a task waits this much longer than the relay, so the relay's cause wins


class ExchangeError(RuntimeError):
    """A task or the relay went away, was too slow, or a frame did not authenticate."""


@dataclass(frozen=True)
class Ticket:
    """What a task needs to join the exchange (pickled into the job's closure)."""

    address: tuple[str, int]
    key: bytes
    fit: bytes  # this fit's random id, bound into every frame
    tasks: int
    message_size: int  # bytes of every task's message, every round
    connect_seconds: float
    round_seconds: float

    def bound(self, *context: object) -> bytes:
        """The associated data that binds a frame to this fit and `context`."""
        return self.fit + "|".join(map(str, context)).encode()


def _send(sock: socket.socket, key: bytes, payload: bytes, bound: bytes) -> None:
    nonce = os.urandom(_NONCE)
    sealed = nonce + AESGCM(key).encrypt(nonce, payload, bound)
    sock.sendall(_LENGTH.pack(len(sealed)) + sealed)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ExchangeError("the connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(sock: socket.socket, key: bytes, size: int, bound: bytes) -> bytes:
    """One frame of exactly `size` payload bytes, opened with `bound`; the announced length is
    checked before the frame is read."""
    (announced,) = _LENGTH.unpack(_receive_exactly(sock, _LENGTH.size))
    if announced != _NONCE + size + _TAG:
        raise ExchangeError(f"a frame of {announced} bytes, not {_NONCE + size + _TAG}")
    sealed = _receive_exactly(sock, announced)
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], bound)
    except Exception:
        raise ExchangeError("a frame did not authenticate") from None


@dataclass
class _Group:
    """The tasks of one attempt, by task index."""

    attempt: int
    started: float
    peers: dict[int, socket.socket]


class Relay:
    """The driver's side: accepts the tasks, then relays rounds until they close.

    Use as a context manager around the Spark job; `ticket` goes to the tasks. `error` says why
    the exchange ended early (None while it has not, or when the tasks simply finished).
    """

    def __init__(
        self,
        tasks: int,
        bind: str,
        host: str,
        message_size: int,
        *,
        connect_seconds: float = CONNECT_SECONDS,
        round_seconds: float = ROUND_SECONDS,
        hello_seconds: float = HELLO_SECONDS,
    ) -> None:
        self._server = socket.create_server((bind, 0))
        self._server.settimeout(_POLL_SECONDS)
        self.ticket = Ticket(
            (host, self._server.getsockname()[1]),
            AESGCM.generate_key(bit_length=128),
            os.urandom(8),
            tasks,
            message_size,
            connect_seconds,
            round_seconds,
        )
        self.hello_seconds = hello_seconds
        self.error: str | None = None
        self._lock = threading.Lock()
        self._group: _Group | None = None
        self._ended = threading.Event()
        self._greetings = threading.BoundedSemaphore(MAX_GREETINGS)
        self._accepting = threading.Thread(target=self._accept, name="retrain-relay", daemon=True)

    def __enter__(self) -> Relay:
        self._accepting.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._end(None)
        self._accepting.join(timeout=5)

    def _end(self, error: str | None) -> None:
        """End the exchange: record why (the first cause only), drop every peer, stop
        listening."""
        with self._lock:
            if self._ended.is_set():
                return
            self._ended.set()
            self.error = error
            peers = list(self._group.peers.values()) if self._group else []
        _close(self._server)  # first: nobody joins an exchange that is over
        for sock in peers:
            _close(sock)

    def _accept(self) -> None:
        ticket = self.ticket
        while not self._ended.is_set():
            group = self._group
            joined = len(group.peers) if group else ticket.tasks
            if joined < ticket.tasks and time.monotonic() - group.started > ticket.connect_seconds:
                self._end(
                    f"only {joined} of {ticket.tasks} tasks joined the exchange within "
                    f"{ticket.connect_seconds:g} s"
                )
                return
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by _end
                return
            if self._greetings.acquire(blocking=False):
                threading.Thread(target=self._greet, args=(sock,), daemon=True).start()
            else:
                _close(sock)  # too many connections that have not said who they are

    def _greet(self, sock: socket.socket) -> None:
        """Let a connection join if its first frame authenticates it within the bound."""
        ticket = self.ticket
        try:
            sock.settimeout(self.hello_seconds)
            hello = _receive(sock, ticket.key, _HELLO.size, ticket.bound("hello"))
            attempt, task = _HELLO.unpack(hello)
        except (ExchangeError, OSError):
            _close(sock)  # not one of ours, or too slow to say so
            return
        finally:
            self._greetings.release()
        with self._lock:
            group = self._group
            if group is None and not self._ended.is_set():
                group = self._group = _Group(attempt, time.monotonic(), {})
            joins = (
                group is not None
                and not self._ended.is_set()
                and attempt == group.attempt
                and task < ticket.tasks
                and task not in group.peers
            )
            if joins:
                group.peers[task] = sock
                complete = len(group.peers) == ticket.tasks
        if not joins:
            _close(sock)  # another attempt, a task twice, or the exchange is over
        elif complete:
            threading.Thread(target=self._relay, args=(group,), daemon=True).start()

    def _relay(self, group: _Group) -> None:
        """Every round: each task's message, then all of them to each task, in task order."""
        ticket = self.ticket
        order = [group.peers[t] for t in range(ticket.tasks)]
        for sock in order:
            sock.settimeout(ticket.round_seconds)
        step = 0
        while not self._ended.is_set():
            messages = []
            for task, sock in enumerate(order):
                bound = ticket.bound("up", group.attempt, task, step)
                try:
                    messages.append(_receive(sock, ticket.key, ticket.message_size, bound))
                except TimeoutError:
                    return self._end(
                        f"task {task} sent nothing for {ticket.round_seconds:g} s in round {step}"
                    )
                except (ExchangeError, OSError) as err:
                    # Every task closes after the last round: the first to close ends it.
                    finished = task == 0 and step > 0
                    return self._end(None if finished else f"task {task}: {err} in round {step}")
            gathered = b"".join(messages)
            for task, sock in enumerate(order):
                try:
                    _send(
                        sock, ticket.key, gathered, ticket.bound("down", group.attempt, task, step)
                    )
                except OSError as err:
                    return self._end(f"task {task} could not be sent round {step}: {err}")
            step += 1
        return None


class Peers:
    """A task's side: `all_gather(message)` returns every task's message, in task order."""

    def __init__(self, ticket: Ticket, task: int, attempt: int = 0) -> None:
        self.ticket, self.task, self.attempt, self.step = ticket, task, attempt, 0
        try:
            self._sock = socket.create_connection(ticket.address, timeout=ticket.connect_seconds)
            self._sock.settimeout(self.patience)
            _send(self._sock, ticket.key, _HELLO.pack(attempt, task), ticket.bound("hello"))
        except OSError as err:
            raise ExchangeError(
                f"task {task} could not join the driver's relay at {ticket.address}: {err} (the "
                "exchange of this fit is over, or the driver is unreachable)"
            ) from None

    @property
    def patience(self) -> float:
        """How long a task waits for a round's answer: the other tasks may still be joining
        and computing; the relay ends an exchange that takes longer, and says why."""
        return self.ticket.connect_seconds + self.ticket.round_seconds + _GRACE_SECONDS

    def all_gather(self, message: bytes) -> list[bytes]:
        ticket, size = self.ticket, self.ticket.message_size
        if len(message) != size:
            raise ValueError(f"a message of {len(message)} bytes; the exchange takes {size}")
        where = (self.attempt, self.task, self.step)
        try:
            _send(self._sock, ticket.key, message, ticket.bound("up", *where))
            gathered = _receive(
                self._sock, ticket.key, size * ticket.tasks, ticket.bound("down", *where)
            )
        except TimeoutError:
            raise ExchangeError(
                f"task {self.task}: no answer from the relay within {self.patience:g} s in "
                f"round {self.step}"
            ) from None
        except (ExchangeError, OSError) as err:
            raise ExchangeError(
                f"task {self.task}: the relay ended the exchange in round {self.step} ({err}): "
                "another task failed or was too slow; the driver's error says which"
            ) from None
        self.step += 1
        return [gathered[i * size : (i + 1) * size] for i in range(ticket.tasks)]

    def close(self) -> None:
        _close(self._sock)


class Alone:
    """The one task of a one-task fit: nothing to exchange."""

    def all_gather(self, message: bytes) -> list[bytes]:
        return [message]

    def close(self) -> None:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading or accepting on it
    except OSError:
        pass
    sock.close()
