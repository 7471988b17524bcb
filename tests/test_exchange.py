"""The training relay (`retrain.spark.exchange`) never hangs and trusts nothing unauthenticated:
real sockets on loopback, real barrier tasks on the shared local Spark."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace

import pytest

from retrain.spark import exchange
from retrain.spark.exchange import _HELLO, ExchangeError, Peers, Relay, _receive, _seal

SIZE = 16  # bytes of each task's message


def message(task: int, step: int) -> bytes:
    return bytes([task, step]) * (SIZE // 2)


def run_tasks(relay: Relay, tasks: int, rounds: int, **fail: int) -> dict[int, object]:
    """Each task in a thread gathers `rounds` rounds, then says goodbye; `fail={'task': t,
    'round': r}` makes task t leave at round r without one. Every task's list of gathered
    rounds, or the error it got."""
    outcome: dict[int, object] = {}

    def task(index: int) -> None:
        try:
            peers = Peers(relay.ticket, index)
            try:
                gathered = []
                for step in range(rounds):
                    if fail and (index, step) == (fail["task"], fail["round"]):
                        return  # leaves (its socket closes) instead of sending
                    gathered.append(peers.all_gather(message(index, step)))
                peers.finish()
                outcome[index] = gathered
            finally:
                peers.close()
        except ExchangeError as err:
            outcome[index] = err

    threads = [threading.Thread(target=task, args=(i,)) for i in range(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a task hung"
    return outcome


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_slow_and_foreign_connections_are_dropped_and_delay_no_task(monkeypatch):
    monkeypatch.setattr(exchange, "MAX_GREETINGS", 4)
    with Relay(2, "127.0.0.1", "127.0.0.1", SIZE, hello_seconds=1) as relay:
        address = relay.ticket.address
        idle = [socket.create_connection(address) for _ in range(6)]  # a flood that says nothing
        huge = socket.create_connection(address)
        huge.sendall(b"\xff\xff\xff\xff")  # a 4 GiB frame announced: dropped before buffering
        forged = socket.create_connection(address)
        other_fit = replace(relay.ticket, key=bytes(16))  # the right shape, another fit's key
        forged.sendall(_seal(other_fit.key, _HELLO.pack(0), other_fit.bound("hello")))
        slow = socket.create_connection(address)  # the right hello, a byte at a time
        hello = _seal(relay.ticket.key, _HELLO.pack(0), relay.ticket.bound("hello"))
        started = time.monotonic()
        with pytest.raises(OSError):  # dropped once hello_seconds passed, mid-hello
            for byte in hello:
                slow.sendall(bytes([byte]))
                time.sleep(0.2)
        outcome = run_tasks(relay, 2, rounds=3)
        assert relay.error is None
        assert closed_by_peer(huge, 5) and closed_by_peer(forged, 5)
        assert all(closed_by_peer(sock, 5) for sock in idle)  # the oldest first, then the rest
        assert closed_by_peer(slow, 5) and time.monotonic() - started < 5  # within hello_seconds
        assert relay.dropped >= 9
    expected = [[message(0, step), message(1, step)] for step in range(3)]
    assert outcome == {0: expected, 1: expected}  # every round, in task order, to both


def test_frames_open_only_for_their_fit_kind_task_round_and_size():
    with Relay(2, "127.0.0.1", "127.0.0.1", SIZE) as relay:
        ticket = relay.ticket
    left, right = socket.socketpair()
    sealed_for = ("up", 1, 3)  # task 1, round 3
    elsewhere = [("up", 1, 2), ("up", 0, 3), ("down", 1, 3), ("bye", 1, 3)]
    for context in elsewhere:
        left.sendall(_seal(ticket.key, message(1, 3), ticket.bound(*sealed_for)))
        with pytest.raises(ExchangeError, match="did not authenticate"):
            _receive(right, ticket.key, {SIZE: ticket.bound(*context)})
    other_fit = replace(ticket, fit=b"another")
    left.sendall(_seal(ticket.key, message(1, 3), ticket.bound(*sealed_for)))
    with pytest.raises(ExchangeError, match="did not authenticate"):
        _receive(right, ticket.key, {SIZE: other_fit.bound(*sealed_for)})
    left.sendall(_seal(ticket.key, message(1, 3) + b"x", ticket.bound(*sealed_for)))
    with pytest.raises(ExchangeError, match="a frame of 45 bytes, not 44"):
        _receive(right, ticket.key, {SIZE: ticket.bound(*sealed_for)})
    left.close()
    right.close()


def test_a_task_that_leaves_ends_the_exchange_for_all_and_a_retry_is_refused_at_once():
    with Relay(2, "127.0.0.1", "127.0.0.1", SIZE, round_seconds=60) as relay:
        started = time.monotonic()
        outcome = run_tasks(relay, 2, rounds=4, task=1, round=2)
        assert time.monotonic() - started < 30  # ended by the cause, not by round_seconds
        assert relay.error == "task 1 left in round 2: the connection closed"
        assert isinstance(outcome[0], ExchangeError)
        assert "task 0: the relay ended the exchange in round 2" in str(outcome[0])
        # A task that comes later finds nobody listening: refused at once, not queued.
        with pytest.raises(ExchangeError, match="task 1 could not join the driver's relay"):
            Peers(relay.ticket, 1)


def test_one_task_ending_while_the_others_go_on_is_a_failure_not_a_finish():
    with Relay(2, "127.0.0.1", "127.0.0.1", SIZE) as relay:
        ending, going_on = Peers(relay.ticket, 0), Peers(relay.ticket, 1)
        errors = []

        def go_on() -> None:
            try:
                going_on.all_gather(message(1, 0))
            except ExchangeError as err:
                errors.append(err)

        thread = threading.Thread(target=go_on)
        thread.start()
        ending.finish()  # says goodbye in round 0, where task 1 sent a round
        thread.join(timeout=30)
        assert relay.error == "tasks [0] ended in round 0, the others did not"
        assert len(errors) == 1 and "relay ended the exchange in round 0" in str(errors[0])
        ending.close()
        going_on.close()


def test_a_task_that_never_joins_or_stalls_fails_the_fit_within_the_bound():
    with Relay(2, "127.0.0.1", "127.0.0.1", SIZE, connect_seconds=1) as relay:
        alone = Peers(relay.ticket, 0)
        with pytest.raises(ExchangeError, match="relay ended the exchange in round 0"):
            alone.all_gather(message(0, 0))
        assert relay.error == "only 1 of 2 tasks joined the exchange within 1 s"
    with Relay(2, "127.0.0.1", "127.0.0.1", SIZE, round_seconds=1) as relay:
        working, stalled = Peers(relay.ticket, 0), Peers(relay.ticket, 1)
        with pytest.raises(ExchangeError, match="relay ended the exchange in round 0"):
            working.all_gather(message(0, 0))
        assert relay.error == "task 1 sent nothing for 1 s in round 0"
        stalled.close()


def test_barrier_tasks_on_spark_end_with_the_cause_when_one_fails(spark):
    """Real barrier tasks: task 1 fails in round 2; the job ends at once, and the relay says
    why (Spark's error may show only the other task's end: the exchange was cut)."""

    with Relay(2, "127.0.0.1", "127.0.0.1", SIZE, round_seconds=120) as relay:
        ticket = relay.ticket

        def in_task(batches):  # noqa: ANN001, ANN202 - a mapInArrow function
            import pyarrow as pa
            from pyspark import TaskContext

            task = TaskContext.get().partitionId()
            peers = Peers(ticket, task)
            try:
                for step in range(5):
                    if (task, step) == (1, 2):
                        raise RuntimeError("task 1 broke")
                    peers.all_gather(bytes([task]) * SIZE)
                peers.finish()
            finally:
                peers.close()
            for _ in batches:
                pass
            yield pa.RecordBatch.from_pydict({"done": [task]})

        started = time.monotonic()
        frame = spark.range(4).repartition(2)
        with pytest.raises(Exception, match="task 1 broke|relay ended the exchange in round 2"):
            frame.mapInArrow(in_task, "done int", barrier=True).collect()
        assert time.monotonic() - started < 100
        assert relay.error == "task 1 left in round 2: the connection closed"
