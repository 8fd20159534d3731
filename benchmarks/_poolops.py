"""
Scenario 5, pool operations alone: getConnection / put-back cycles per
second against an in-memory endpoint, for a given number of keys.

No sockets and no running reactor: the endpoint builds the pool's protocol
and connects it to a L{StringTransport}; time is a heap-based clock that only
ever runs calls that are already due (zero-delay calls), so timers cost what
they cost in a real reactor (a heap push and a lazy cancel) but never fire.

A cycle is C{getConnection(key, endpoint)} -> the handed-out connection ->
the connection goes quiescent (the protocol's quiescent callback, as
L{twisted.web._newclient.HTTP11ClientProtocol} calls it when a response has
been read) -> the pool takes it back. Keys are used round robin, so with
10,000 keys the pool holds 10,000 idle connections and 10,000 idle timers.

Mode C{roundtrip} runs a real request through the handed-out connection
instead and feeds the protocol a canned response, for pools whose protocol
does not expose its quiescent callback.

Run by benchmarks/run.py as C{python benchmarks/_poolops.py JOB_JSON}.
"""

from __future__ import annotations

import gc
import heapq
import time
from typing import Any

from _common import emitResult, readSpec
from _observe import observe
from twisted.internet.address import IPv4Address
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.web._newclient import HTTP11ClientProtocol, Request
from twisted.web.http_headers import Headers

POOLOPS_CLIENTS = ("pooled_http", "twisted-default")

#: The timed cycles are split into this many batches; the fastest counts.
BATCHES = 10

CANNED_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class HeapClock:
    """
    A minimal L{IReactorTime}: a heap of delayed calls with lazy
    cancellation, like the real reactor's, whose time only moves when told.

    @ivar now: The current time.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._seq = 0
        self._stale = 0

    def seconds(self) -> float:
        """
        @return: The current time.
        """
        return self.now

    def callLater(self, delay: float, f: Any, *args: Any, **kw: Any) -> DelayedCall:
        """
        Schedule C{f(*args, **kw)} in C{delay} seconds.

        @return: The L{DelayedCall}.
        """
        call = DelayedCall(
            self.now + delay, f, args, kw, self._cancelled, self._reset, self.seconds
        )
        self._push(call)
        return call

    def _push(self, call: DelayedCall) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (call.getTime(), self._seq, call))

    def _cancelled(self, call: DelayedCall) -> None:
        self._stale += 1
        if self._stale > 64 and self._stale * 2 > len(self._heap):
            self._heap = [
                e
                for e in self._heap
                if not (e[2].cancelled or e[2].called) and e[0] == e[2].getTime()
            ]
            heapq.heapify(self._heap)
            self._stale = 0

    def _reset(self, call: DelayedCall) -> None:
        self._stale += 1
        self._push(call)

    def getDelayedCalls(self) -> list[DelayedCall]:
        """
        @return: The pending calls.
        """
        return [e[2] for e in self._heap if not (e[2].cancelled or e[2].called)]

    def runDue(self) -> None:
        """
        Run every call due now.
        """
        heap = self._heap
        while heap and heap[0][0] <= self.now:
            when, _, call = heapq.heappop(heap)
            if call.cancelled or call.called or when != call.getTime():
                continue
            call.called = 1
            call.func(*call.args, **call.kw)


class MemoryEndpoint:
    """
    An endpoint whose connections are protocols attached to a
    L{StringTransport}.

    @ivar protocols: Every protocol built, newest last.
    """

    address = IPv4Address("TCP", "127.0.0.1", 80)

    def __init__(self, protocols: list[Any]) -> None:
        self.protocols = protocols

    def connect(self, factory: Any) -> Deferred[Any]:
        """
        Build and connect a protocol.

        @param factory: The pool's protocol factory.
        @return: A Deferred that has fired with the protocol.
        """
        protocol = factory.buildProtocol(self.address)
        transport = StringTransport(peerAddress=self.address)
        protocol.makeConnection(transport)
        self.protocols.append(protocol)
        return succeed(protocol)


def _ownerOf(candidate: Any) -> Any:
    return getattr(candidate, "_owner", None) or getattr(candidate, "owner", None)


def _canQuiesce(candidate: Any) -> bool:
    return isinstance(candidate, HTTP11ClientProtocol) or _ownerOf(candidate) is not None


def quiesce(protocol: Any) -> None:
    """
    Report a connection quiescent as its protocol does when a response has
    been read: Twisted's protocol through its quiescent callback, a
    pooled_http connection through its owner.
    """
    callback = getattr(protocol, "_quiescentCallback", None)
    if callback is not None:
        callback(protocol)
    else:
        _ownerOf(protocol).connectionQuiescent(protocol)


def underlyingProtocol(handed: Any) -> Any:
    """
    Find the connection protocol behind what a pool handed out: Twisted's
    L{HTTP11ClientProtocol}, or a pooled_http connection (which reports to
    an owner).

    @param handed: The object C{getConnection} fired with.
    @return: The protocol, or L{None} if it cannot be found.
    """
    seen = 0
    current = handed
    while current is not None and seen < 4:
        if _canQuiesce(current):
            return current
        current = next(
            (
                getattr(current, name)
                for name in ("_clientProtocol", "connection", "_protocol", "_wrapped")
                if getattr(current, name, None) is not None
            ),
            None,
        )
        seen += 1
    return None


def makePool(client: str, clock: Any) -> Any:
    """
    @return: The pool to measure, with default settings but enough idle
        room for one connection per key.
    """
    if client == "pooled_http":
        from pooled_http import HTTPConnectionPool

        pool = HTTPConnectionPool(clock, persistent=True, maxConnections=1_000_000)
        observe(pool)
        return pool
    from twisted.web.client import HTTPConnectionPool as StockPool

    return StockPool(clock, persistent=True)


class Bench:
    """
    One pool set up for timing, with every key's connection already open.

    @ivar mode: C{"direct"} or C{"roundtrip"} (see the module docstring).
    @ivar keyCount: How many keys the cycles go round.
    @ivar opened: Connections the endpoint made.
    """

    def __init__(self, client: str, keyCount: int, mode: str) -> None:
        self.clock = HeapClock()
        self.pool = makePool(client, self.clock)
        self.protocols: list[Any] = []
        self.keys = [("http", b"127.0.0.1", 10000 + i) for i in range(keyCount)]
        self.endpoints = [MemoryEndpoint(self.protocols) for _ in range(keyCount)]
        self.keyCount = keyCount
        self.mode = mode
        self.request = Request(
            b"GET", b"/", Headers({b"host": [b"127.0.0.1"]}), None, persistent=True
        )
        self.index = 0
        try:
            self.cycle(0)
        except LookupError:
            self.mode = "roundtrip"
        for i in range(1, keyCount):
            self.cycle(i)

    @property
    def opened(self) -> int:
        return len(self.protocols)

    def cycle(self, index: int) -> None:
        """
        One getConnection / put-back cycle on key C{index % keyCount}.
        """
        slot = index % self.keyCount
        d = self.pool.getConnection(self.keys[slot], self.endpoints[slot])
        if not d.called:
            self.clock.runDue()
        handed = d.result
        if self.mode == "direct":
            protocol = underlyingProtocol(handed)
            if protocol is None:
                raise LookupError("no quiescent callback")
            quiesce(protocol)
        else:
            before = len(self.protocols)
            responseDeferred = handed.request(self.request)
            protocol = underlyingProtocol(handed)
            if protocol is None:
                protocol = self.protocols[before - 1]
            transport: Any = protocol.transport
            transport.clear()
            protocol.dataReceived(CANNED_RESPONSE)
            responseDeferred.addErrback(lambda f: None)
        self.clock.runDue()

    def batch(self, count: int) -> float:
        """
        Run C{count} cycles.

        @return: Seconds taken.
        """
        cycle = self.cycle
        start = self.index
        started = time.perf_counter()
        for i in range(start, start + count):
            cycle(i)
        elapsed = time.perf_counter() - started
        self.index = start + count
        return elapsed


class QueuedBench:
    """
    The hand-off path: with C{maxConnectionsPerHost=1} and the only
    connection in use, C{getConnection} queues; the connection going
    quiescent is handed straight to the queued request.
    """

    mode = "queued"
    keyCount = 1
    opened = 1

    def __init__(self, client: str) -> None:
        from pooled_http import HTTPConnectionPool

        del client
        clock: Any = HeapClock()
        endpoint: Any = MemoryEndpoint([])
        self.clock = clock
        self.pool = HTTPConnectionPool(
            clock, maxConnectionsPerHost=1, maxPersistentPerHost=1
        )
        observe(self.pool)
        self.key = ("http", b"127.0.0.1", 10000)
        self.endpoint = endpoint
        self.held = self.pool.getConnection(self.key, self.endpoint).result

    def batch(self, count: int) -> float:
        """
        Run C{count} queue / hand-off cycles.

        @return: Seconds taken.
        """
        pool, key, endpoint, clock = self.pool, self.key, self.endpoint, self.clock
        held = self.held
        started = time.perf_counter()
        for _ in range(count):
            d = pool.getConnection(key, endpoint)
            protocol = underlyingProtocol(held)
            assert protocol is not None and not d.called
            quiesce(protocol)
            clock.runDue()
            held = d.result
        elapsed = time.perf_counter() - started
        self.held = held
        return elapsed


def measure(
    client: str, keyCounts: list[int], cycles: int, mode: str, queued: bool
) -> dict[str, Any]:
    """
    Time getConnection / put-back cycles for each key count.

    All the pools are set up first, then timed in interleaved batches (1
    key, 100 keys, 10,000 keys, 1 key, ...) and the fastest batch of each
    counts, like timeit: another process slowing the machine down for a
    while then hits every key count alike, and a batch it slowed says
    nothing about the pool.

    @param queued: Also time the hand-off to a queued request.
    @return: Per key count (and C{"queued"}): microseconds per cycle.
    """
    benches: dict[str, Any] = {str(k): Bench(client, k, mode) for k in keyCounts}
    if queued:
        benches["queued"] = QueuedBench(client)
    batches = BATCHES if cycles >= BATCHES * 10 else 1
    perBatch = max(1, cycles // batches)
    times: dict[str, list[float]] = {name: [] for name in benches}
    gc.collect()
    for _ in range(batches):
        for name, bench in benches.items():
            times[name].append(bench.batch(perBatch))
    results = {}
    for name, bench in benches.items():
        best = min(times[name]) / perBatch
        results[name] = {
            "mode": bench.mode,
            "keys": bench.keyCount,
            "cycles": perBatch * batches,
            "elapsed": sum(times[name]),
            "rps": 1.0 / best,
            "usPerCycle": best * 1e6,
            "usPerCycleMean": sum(times[name]) / (perBatch * batches) * 1e6,
            "opened": bench.opened,
        }
    return results


def main() -> None:
    """
    Run the job given on the command line.
    """
    job = readSpec()
    try:
        result = measure(
            job["client"],
            job["keys"],
            job["cycles"],
            job.get("poolopsMode", "direct"),
            job["client"] == "pooled_http",
        )
    except ImportError as e:
        result = {"unavailable": f"{job['client']} is not importable: {e}"}
    emitResult(result)


if __name__ == "__main__":
    main()
