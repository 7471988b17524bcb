"""An all-gather for the tasks of one barrier stage, relayed by the driver over TCP.

Spark's own `BarrierTaskContext.allGather` costs about a second per call: the JVM side of
`runBarrier` (Spark 4.1) polls the coordinator's answer with `Thread.sleep(1000)`. Training
syncs once per epoch, so the trainer uses the barrier stage only to schedule its tasks
together and exchanges the averages here: each task connects to a relay that the driver runs
for the length of the fit, sends its message each round, and gets every task's message back
in task order; when training ends, each says goodbye.

Nothing unauthenticated is trusted, and nothing waits without a bound:
- Every frame is sealed with AES-GCM under a key made for this fit, which reaches the tasks
  inside the job's closure (over Spark's own, possibly encrypted, RPC), and is bound to the fit,
  its kind, the task and the round: a frame that does not open where it is read is refused, so
  nothing else can join, read or replay the exchange.
- Every frame's size is known in advance and checked before anything is buffered.
- A connection must authenticate with its first frame within HELLO_SECONDS of connecting, else
  it is dropped. Greetings are read without blocking, side by side, so idle or slow
  connections delay no one; past MAX_GREETINGS waiting at once, the oldest is dropped.
- All tasks must join within `connect_seconds` of the first, and each round must arrive within
  `round_seconds`; a late, failed or foreign peer ends the exchange for every task at once,
  with the cause in `Relay.error` and in each task's error. Only every task's goodbye, in the
  same round, is a finished exchange.
- Once every task has joined, or the exchange has ended, the listening socket is closed: a
  task that comes later is refused at once instead of waiting in a backlog. (Spark does not
  retry a failed barrier result stage; a new fit makes a new relay.)
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONNECT_SECONDS = 300  # every task of a barrier stage starts at once; this bounds the stragglers
ROUND_SECONDS = 3600  # one epoch of the slowest task, and the exchange around it
HELLO_SECONDS = 10  # for a new connection to authenticate
MAX_GREETINGS = 256  # connections authenticating at once; past it the oldest is dropped
_LENGTH = struct.Struct(">I")
_HELLO = struct.Struct(">I")  # the task
_NONCE, _TAG = 12, 16
_POLL_SECONDS = 0.5  # how often the accepting loop looks at the clock
_GRACE_SECONDS = 30  # a task waits this much longer than the relay, so the relay's cause wins


class ExchangeError(RuntimeError):
    """A task or the relay went away, was too slow, or a frame did not authenticate."""


@dataclass(frozen=True)
class Ticket:
    """What a task needs to join the exchange (pickled into the job's closure)."""

    address: tuple[str, int]
    key: bytes = field(repr=False)
    fit: bytes  # this fit's random id, bound into every frame
    tasks: int
    message_size: int  # bytes of every task's message, every round
    connect_seconds: float
    round_seconds: float

    def bound(self, *context: object) -> bytes:
        """The associated data that binds a frame to this fit and `context`."""
        return self.fit + "|".join(map(str, context)).encode()

    def frame_size(self, payload: int) -> int:
        return _LENGTH.size + _NONCE + payload + _TAG


def _seal(key: bytes, payload: bytes, bound: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    sealed = nonce + AESGCM(key).encrypt(nonce, payload, bound)
    return _LENGTH.pack(len(sealed)) + sealed


def _open(key: bytes, sealed: bytes, bound: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], bound)
    except Exception:
        raise ExchangeError("a frame did not authenticate") from None


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ExchangeError("the connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(sock: socket.socket, key: bytes, bounds: dict[int, bytes]) -> bytes:
    """One frame whose payload has one of the sizes in `bounds`, opened with that size's bound
    data; the announced length is checked before the frame is read."""
    (announced,) = _LENGTH.unpack(_receive_exactly(sock, _LENGTH.size))
    bound = bounds.get(announced - _NONCE - _TAG)
    if bound is None:
        sizes = " or ".join(str(_NONCE + size + _TAG) for size in bounds)
        raise ExchangeError(f"a frame of {announced} bytes, not {sizes}")
    return _open(key, _receive_exactly(sock, announced), bound)


@dataclass
class _Greeting:
    """A connection that has not yet said which task it is."""

    sock: socket.socket
    deadline: float
    received: bytes = b""


class Relay:
    """The driver's side: accepts the tasks, then relays rounds until they say goodbye.

    Use as a context manager around the Spark job; `ticket` goes to the tasks. `error` says why
    the exchange ended early (None while it has not, or when the tasks finished).
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
        self._server.setblocking(False)
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
        self.dropped = 0  # connections that did not authenticate in time, or at all
        self._lock = threading.Lock()
        self._peers: dict[int, socket.socket] = {}
        self._first_joined: float | None = None
        self._ended = threading.Event()
        self._accepting = threading.Thread(target=self._accept, name="retrain-relay", daemon=True)

    def __enter__(self) -> Relay:
        self._accepting.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._end(None)
        self._accepting.join(timeout=5)

    def _end(self, error: str | None) -> None:
        """End the exchange: record why (the first cause only), stop listening, drop every
        peer."""
        with self._lock:
            if self._ended.is_set():
                return
            self._ended.set()
            self.error = error
            peers = list(self._peers.values())
        _close(self._server)  # first: nobody joins an exchange that is over
        for sock in peers:
            _close(sock)

    def _accept(self) -> None:
        """Accept connections and read their greetings side by side, until every task joined
        (or the exchange ended)."""
        greetings: dict[socket.socket, _Greeting] = {}
        with selectors.DefaultSelector() as selector:
            try:
                selector.register(self._server, selectors.EVENT_READ)
                while not self._ended.is_set() and len(self._peers) < self.ticket.tasks:
                    for ready, _ in selector.select(_POLL_SECONDS):
                        if ready.fileobj is self._server:
                            self._new_greeting(selector, greetings)
                        else:
                            self._read_greeting(selector, greetings, greetings[ready.fileobj])
                    self._expire(selector, greetings)
            except (OSError, ValueError):  # its socket closed under it: the exchange ended
                pass
            for greeting in greetings.values():
                _close(greeting.sock)

    def _new_greeting(self, selector: Any, greetings: dict[socket.socket, _Greeting]) -> None:
        sock, _ = self._server.accept()
        sock.setblocking(False)
        if len(greetings) >= MAX_GREETINGS:  # a flood: the oldest has waited longest
            self._drop(selector, greetings, min(greetings.values(), key=lambda g: g.deadline))
        greetings[sock] = _Greeting(sock, time.monotonic() + self.hello_seconds)
        selector.register(sock, selectors.EVENT_READ)

    def _read_greeting(
        self, selector: Any, greetings: dict[socket.socket, _Greeting], greeting: _Greeting
    ) -> None:
        """Take what a connection sent; once its hello is whole, let it join or drop it."""
        ticket, size = self.ticket, self.ticket.frame_size(_HELLO.size)
        try:
            chunk = greeting.sock.recv(size - len(greeting.received))
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        greeting.received += chunk
        announced = greeting.received[: _LENGTH.size]
        if not chunk or (len(announced) == _LENGTH.size and announced != _LENGTH.pack(size - 4)):
            self._drop(selector, greetings, greeting)  # gone, or not our frame
        elif len(greeting.received) == size:
            selector.unregister(greeting.sock)
            del greetings[greeting.sock]
            try:
                hello = _open(ticket.key, greeting.received[_LENGTH.size :], ticket.bound("hello"))
            except ExchangeError:
                self.dropped += 1
                _close(greeting.sock)
                return
            self._join(greeting.sock, *_HELLO.unpack(hello))

    def _drop(
        self, selector: Any, greetings: dict[socket.socket, _Greeting], greeting: _Greeting
    ) -> None:
        selector.unregister(greeting.sock)
        del greetings[greeting.sock]
        _close(greeting.sock)
        self.dropped += 1

    def _expire(self, selector: Any, greetings: dict[socket.socket, _Greeting]) -> None:
        """Drop greetings past their deadline; end the exchange if tasks are missing past
        theirs."""
        now = time.monotonic()
        for greeting in [g for g in greetings.values() if g.deadline < now]:
            self._drop(selector, greetings, greeting)
        first, ticket = self._first_joined, self.ticket
        if first is not None and now - first > ticket.connect_seconds:
            dropped = f" ({self.dropped} connections that did not authenticate were dropped)"
            self._end(
                f"only {len(self._peers)} of {ticket.tasks} tasks joined the exchange within "
                f"{ticket.connect_seconds:g} s" + (dropped if self.dropped else "")
            )

    def _join(self, sock: socket.socket, task: int) -> None:
        with self._lock:
            joins = not self._ended.is_set() and task < self.ticket.tasks
            if joins and task not in self._peers:
                sock.setblocking(True)
                self._peers[task] = sock
                self._first_joined = self._first_joined or time.monotonic()
                complete = len(self._peers) == self.ticket.tasks
            else:
                joins = False
        if not joins:
            _close(sock)  # a task twice, or the exchange is over
        elif complete:
            _close(self._server)  # every task is here: nobody else may join
            threading.Thread(target=self._relay, name="retrain-relay-rounds", daemon=True).start()

    def _relay(self) -> None:
        """Every round: each task's message, then all of them to each task, in task order;
        every task's goodbye in the same round ends it."""
        ticket = self.ticket
        order = [self._peers[t] for t in range(ticket.tasks)]
        try:
            for sock in order:
                sock.settimeout(ticket.round_seconds)
        except OSError:  # ended meanwhile
            return
        step = 0
        while not self._ended.is_set():
            messages = []
            for task, sock in enumerate(order):
                bounds = {ticket.message_size: ticket.bound("up", task, step),
                          0: ticket.bound("bye", task, step)}  # fmt: skip
                try:
                    messages.append(_receive(sock, ticket.key, bounds))
                except TimeoutError:
                    return self._end(
                        f"task {task} sent nothing for {ticket.round_seconds:g} s in round {step}"
                    )
                except (ExchangeError, OSError) as err:
                    return self._end(f"task {task} left in round {step}: {err}")
            goodbyes = [task for task, m in enumerate(messages) if not m]
            if goodbyes:
                done = len(goodbyes) == ticket.tasks
                return self._end(None if done else f"tasks {goodbyes} ended in round {step}, "
                                 "the others did not")  # fmt: skip
            gathered = b"".join(messages)
            for task, sock in enumerate(order):
                try:
                    sock.sendall(_seal(ticket.key, gathered, ticket.bound("down", task, step)))
                except OSError as err:
                    return self._end(f"task {task} could not be sent round {step}: {err}")
            step += 1
        return None


class Peers:
    """A task's side: `all_gather(message)` returns every task's message, in task order;
    `finish()` says goodbye after the last round."""

    def __init__(self, ticket: Ticket, task: int) -> None:
        self.ticket, self.task, self.step = ticket, task, 0
        try:
            self._sock = socket.create_connection(ticket.address, timeout=ticket.connect_seconds)
        except OSError as err:
            raise ExchangeError(
                f"task {task} could not join the driver's relay at {ticket.address}: {err} (the "
                "exchange of this fit is over, or the driver is unreachable)"
            ) from None
        try:
            self._sock.settimeout(self.patience)
            self._sock.sendall(_seal(ticket.key, _HELLO.pack(task), ticket.bound("hello")))
        except OSError as err:
            self.close()
            raise ExchangeError(f"task {task} could not greet the driver's relay: {err}") from None

    @property
    def patience(self) -> float:
        """How long a task waits for a round's answer: the other tasks may still be joining
        and computing; the relay ends an exchange that takes longer, and says why."""
        return self.ticket.connect_seconds + self.ticket.round_seconds + _GRACE_SECONDS

    def all_gather(self, message: bytes) -> list[bytes]:
        ticket, size = self.ticket, self.ticket.message_size
        if len(message) != size:
            raise ValueError(f"a message of {len(message)} bytes; the exchange takes {size}")
        try:
            up = ticket.bound("up", self.task, self.step)
            self._sock.sendall(_seal(ticket.key, message, up))
            down = {size * ticket.tasks: ticket.bound("down", self.task, self.step)}
            gathered = _receive(self._sock, ticket.key, down)
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

    def finish(self) -> None:
        """Say goodbye: this task's training ended normally after its last round."""
        bye = _seal(self.ticket.key, b"", self.ticket.bound("bye", self.task, self.step))
        try:
            self._sock.sendall(bye)
        except OSError:
            pass  # the relay is gone: nothing is waiting for this goodbye

    def close(self) -> None:
        _close(self._sock)


class Alone:
    """The one task of a one-task fit: nothing to exchange."""

    def all_gather(self, message: bytes) -> list[bytes]:
        return [message]

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading or accepting on it
    except OSError:
        pass
    sock.close()
