"""
L{pooled_http._core.PoolCore} with multiplexed (HTTP/2) connections: a
connection carries up to its capacity of requests at once, a new one is
opened only when every open one is full, requests wait for a connection
that may turn out multiplexed while it is negotiated (coalescing), and a
capacity of 0 drains a connection.

As in L{tests.test_core}, every step checks the actions and the core's whole
state, here with each bucket's stream books (capacity, streams in flight,
connections with room, connections being negotiated) as well.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pooled_http._core import ActionKind, Waiter
from pooled_http.stats import CloseReason
from tests.test_core import (
    CONNECTING,
    DONE,
    WAITING,
    A,
    B,
    C,
    CoreTestCase,
    FakeConnection,
    NamedWaiter,
    _require,
    _Walk,
    bucket,
    close,
    connect,
    hand,
    park,
)


class StreamCoreTestCase(CoreTestCase):
    """
    Checks of the stream books beside the whole-state checks.
    """

    def mwaiter(self, name: str, key: Hashable, minSerial: int = 0) -> NamedWaiter:
        """
        A waiter whose connection may turn out multiplexed.
        """
        waiter = self.waiter(name, key, minSerial)
        waiter.mayMultiplex = True
        return waiter

    def assertBooks(
        self,
        key: Hashable,
        *,
        capacity: dict[str, int] | None = None,
        streams: dict[str, int] | None = None,
        spare: list[str] = (),  # type: ignore[assignment]
        negotiating: int = 0,
        multiplexed: bool | None = None,
    ) -> None:
        """
        The stream books of C{key}'s bucket; what is not named is empty.
        """
        b = self.core.buckets.get(key)
        got: dict[str, Any] = {
            "capacity": {},
            "streams": {},
            "spare": [],
            "negotiating": 0,
            "multiplexed": None,
        }
        if b is not None:
            got = {
                "capacity": {c.name: n for c, n in b.capacity.items()},
                "streams": {c.name: n for c, n in b.streams.items()},
                "spare": sorted(c.name for c in b.spare),
                "negotiating": b.negotiating,
                "multiplexed": b.multiplexed,
            }
        self.assertEqual(
            got,
            {
                "capacity": capacity or {},
                "streams": streams or {},
                "spare": sorted(spare),
                "negotiating": negotiating,
                "multiplexed": multiplexed,
            },
        )

    def coalesced(self) -> tuple[Any, NamedWaiter, NamedWaiter, NamedWaiter]:
        """
        Three waiters of A; the first one's connection is being opened and
        the other two wait for it.
        """
        core = self.makeCore(4, 10, 4)
        w1 = self.mwaiter("w1", A)
        self.assertStep(
            core.request(w1),
            [connect("w1")],
            buckets={A: bucket(connecting=["w1"])},
            total=1,
            waiters={"w1": CONNECTING},
        )
        self.assertBooks(A, negotiating=1)
        w2 = self.mwaiter("w2", A)
        self.assertStep(
            core.request(w2),
            [],
            buckets={A: bucket(connecting=["w1"], waiters=["w2"])},
            total=1,
            waiters={"w1": CONNECTING, "w2": WAITING},
        )
        w3 = self.mwaiter("w3", A)
        self.assertStep(
            core.request(w3),
            [],
            buckets={A: bucket(connecting=["w1"], waiters=["w2", "w3"])},
            total=1,
            waiters={"w1": CONNECTING, "w2": WAITING, "w3": WAITING},
        )
        self.assertBooks(A, negotiating=1)
        return core, w1, w2, w3


class CoalescingTests(StreamCoreTestCase):
    """
    Requests arriving while a connection that may be multiplexed is being
    negotiated wait for it.
    """

    def test_multiplexedServesWaiters(self) -> None:
        """
        The connection turns out HTTP/2 with room for 2: it serves the
        first two; the third opens a second connection (and is itself
        waited for).
        """
        core, w1, w2, w3 = self.coalesced()
        a1 = self.connection("a1", A)
        self.assertStep(
            core.connected(w1, a1, 2),
            [hand("w1", "a1", False), hand("w2", "a1", True), connect("w3")],
            buckets={
                A: bucket(inUse=["a1"], connecting=["w3"], opened=1, reused=1)
            },
            total=2,
            opened=1,
            reused=1,
            waiters={"w1": DONE, "w2": DONE, "w3": CONNECTING},
        )
        self.assertBooks(
            A, capacity={"a1": 2}, streams={"a1": 2}, negotiating=1, multiplexed=True
        )

    def test_fallbackOpensOthers(self) -> None:
        """
        The connection turns out HTTP/1.1: the waiters open their own
        connections, and are not coalesced any more.
        """
        core, w1, w2, w3 = self.coalesced()
        a1 = self.connection("a1", A)
        self.assertStep(
            core.connected(w1, a1, None),
            [hand("w1", "a1", False), connect("w2"), connect("w3")],
            buckets={A: bucket(inUse=["a1"], connecting=["w2", "w3"], opened=1)},
            total=3,
            opened=1,
            waiters={"w1": DONE, "w2": CONNECTING, "w3": CONNECTING},
        )
        self.assertBooks(A, multiplexed=False)

    def test_connectFailedReleasesWaiters(self) -> None:
        """
        The negotiated connection fails: the waiters that waited for it
        connect in parallel, as over HTTP/1.1, not one after another.
        """
        core, w1, w2, w3 = self.coalesced()
        self.assertStep(
            core.connectFailed(w1),
            [connect("w2"), connect("w3")],
            buckets={A: bucket(connecting=["w2", "w3"])},
            total=2,
            waiters={"w1": DONE, "w2": CONNECTING, "w3": CONNECTING},
        )
        self.assertBooks(A, multiplexed=False)
        a2 = self.connection("a2", A)
        self.assertStep(
            core.connected(w2, a2, 10),
            [hand("w2", "a2", False)],
            buckets={A: bucket(inUse=["a2"], connecting=["w3"], opened=1)},
            total=2,
            opened=1,
            waiters={"w1": DONE, "w2": DONE, "w3": CONNECTING},
        )
        self.assertBooks(
            A,
            capacity={"a2": 10},
            streams={"a2": 1},
            spare=["a2"],
            multiplexed=True,
        )


class CapacityTests(StreamCoreTestCase):
    """
    Streams taken and given back, capacity raised, lowered and drained.
    """

    def multiplexedInUse(self, capacity: int) -> tuple[Any, Any]:
        """
        A core with A's connection a1 up, capacity C{capacity}, one stream.
        """
        core = self.makeCore(2, 10, 2)
        w1 = self.mwaiter("w1", A)
        self.assertEqual(len(core.request(w1)), 1)
        a1 = self.connection("a1", A)
        self.assertStep(
            core.connected(w1, a1, capacity),
            [hand("w1", "a1", False)],
            buckets={A: bucket(inUse=["a1"], opened=1)},
            total=1,
            opened=1,
            waiters={"w1": DONE},
        )
        return core, a1

    def test_takeSpareThenIdle(self) -> None:
        """
        takeIdle hands a connection with room again and again; the last
        stream done parks it, and it is handed out idle.
        """
        core, a1 = self.multiplexedInUse(3)
        self.assertBooks(
            A, capacity={"a1": 3}, streams={"a1": 1}, spare=["a1"], multiplexed=True
        )
        self.assertIs(core.takeIdle(A), a1)
        self.assertIs(core.takeIdle(A), a1)
        self.assertIsNone(core.takeIdle(A))
        self.assertBooks(A, capacity={"a1": 3}, streams={"a1": 3}, multiplexed=True)
        for left in (2, 1):
            self.assertStep(
                core.release(a1, True),
                [],
                buckets={A: bucket(inUse=["a1"], opened=1, reused=2)},
                total=1,
                opened=1,
                reused=2,
                waiters={"w1": DONE},
            )
            self.assertBooks(
                A,
                capacity={"a1": 3},
                streams={"a1": left},
                spare=["a1"],
                multiplexed=True,
            )
        self.assertStep(
            core.release(a1, True),
            [park("a1")],
            buckets={A: bucket(idle=["a1"], opened=1, reused=2)},
            total=1,
            idleOrder=["a1"],
            opened=1,
            reused=2,
            waiters={"w1": DONE},
        )
        self.assertBooks(A, capacity={"a1": 3}, multiplexed=True)
        self.assertIs(core.takeIdle(A), a1)
        self.assertBooks(
            A, capacity={"a1": 3}, streams={"a1": 1}, spare=["a1"], multiplexed=True
        )

    def test_fullThenWaiterThenRelease(self) -> None:
        """
        With the connection full and the per-key cap reached, a waiter
        waits; a stream done hands it the connection.
        """
        core, a1 = self.multiplexedInUse(1)
        self.assertBooks(A, capacity={"a1": 1}, streams={"a1": 1}, multiplexed=True)
        core.perHostLimit = 1
        w = self.mwaiter("w", A)
        self.assertStep(
            core.request(w),
            [],
            buckets={A: bucket(inUse=["a1"], waiters=["w"], opened=1)},
            total=1,
            opened=1,
            waiters={"w1": DONE, "w": WAITING},
        )
        self.assertStep(
            core.release(a1, True),
            [hand("w", "a1", True)],
            buckets={A: bucket(inUse=["a1"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE, "w": DONE},
        )
        self.assertBooks(A, capacity={"a1": 1}, streams={"a1": 1}, multiplexed=True)

    def test_fullOpensAnother(self) -> None:
        """
        With the connection full and room under the per-key cap, a new
        request opens a second connection.
        """
        core, a1 = self.multiplexedInUse(1)
        w = self.mwaiter("w", A)
        self.assertStep(
            core.request(w),
            [connect("w")],
            buckets={A: bucket(inUse=["a1"], connecting=["w"], opened=1)},
            total=2,
            opened=1,
            waiters={"w1": DONE, "w": CONNECTING},
        )
        self.assertBooks(
            A, capacity={"a1": 1}, streams={"a1": 1}, negotiating=1, multiplexed=True
        )

    def test_capacityRaisedServesWaiters(self) -> None:
        """
        The server allows more streams: queued waiters get them.
        """
        core, a1 = self.multiplexedInUse(1)
        core.perHostLimit = 1
        w, x = self.mwaiter("w", A), self.mwaiter("x", A)
        core.request(w)
        core.request(x)
        self.assertStep(
            core.capacityChanged(a1, 3),
            [hand("w", "a1", True), hand("x", "a1", True)],
            buckets={A: bucket(inUse=["a1"], opened=1, reused=2)},
            total=1,
            opened=1,
            reused=2,
            waiters={"w1": DONE, "w": DONE, "x": DONE},
        )
        self.assertBooks(A, capacity={"a1": 3}, streams={"a1": 3}, multiplexed=True)

    def test_drainInUse(self) -> None:
        """
        Capacity 0 (GOAWAY) with two streams in flight: no new request goes
        to it, it is closed when the last is done, and its slot then goes
        to a new connection.
        """
        core, a1 = self.multiplexedInUse(2)
        self.assertIs(core.takeIdle(A), a1)
        core.perHostLimit = 1
        self.assertStep(
            core.capacityChanged(a1, 0),
            [],
            buckets={A: bucket(inUse=["a1"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )
        self.assertBooks(A, capacity={"a1": 0}, streams={"a1": 2}, multiplexed=True)
        self.assertIsNone(core.takeIdle(A))
        w = self.mwaiter("w", A)
        self.assertStep(
            core.request(w),
            [],
            buckets={A: bucket(inUse=["a1"], waiters=["w"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE, "w": WAITING},
        )
        self.assertStep(
            core.release(a1, True),
            [],
            buckets={A: bucket(inUse=["a1"], waiters=["w"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE, "w": WAITING},
        )
        self.assertStep(
            core.release(a1, True),
            [close("a1", CloseReason.SERVER_CLOSED)],
            buckets={A: bucket(closing=["a1"], waiters=["w"], opened=1, reused=1)},
            total=1,
            closingCount=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE, "w": WAITING},
        )
        self.assertBooks(A, multiplexed=True)
        self.assertStep(
            core.lost(a1),
            [connect("w")],
            buckets={A: bucket(connecting=["w"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE, "w": CONNECTING},
        )
        self.assertBooks(A, negotiating=1, multiplexed=True)

    def test_drainIdleCloses(self) -> None:
        """
        Capacity 0 on an idle connection closes it.
        """
        core, a1 = self.multiplexedInUse(2)
        self.assertEqual(len(core.release(a1, True)), 1)
        self.assertStep(
            core.capacityChanged(a1, 0),
            [close("a1", CloseReason.SERVER_CLOSED)],
            buckets={A: bucket(closing=["a1"], opened=1)},
            total=1,
            closingCount=1,
            opened=1,
            waiters={"w1": DONE},
        )
        self.assertBooks(A, multiplexed=True)

    def test_notReusableDrains(self) -> None:
        """
        A stream given back as not reusable (the pool's own reasons: too
        old, shutting down) stops new streams; the last one closes it for
        that reason.
        """
        core, a1 = self.multiplexedInUse(3)
        self.assertIs(core.takeIdle(A), a1)
        self.assertStep(
            core.release(a1, False, CloseReason.EXPIRED),
            [],
            buckets={A: bucket(inUse=["a1"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )
        self.assertBooks(A, capacity={"a1": 0}, streams={"a1": 1}, multiplexed=True)
        self.assertStep(
            core.release(a1, False, CloseReason.EXPIRED),
            [close("a1", CloseReason.EXPIRED)],
            buckets={A: bucket(closing=["a1"], opened=1, reused=1)},
            total=1,
            closingCount=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )

    def test_retryWantsNewerConnection(self) -> None:
        """
        A retry wanting a connection newer than a1 is not given a1's
        spare stream: it opens a new connection.
        """
        core, a1 = self.multiplexedInUse(3)
        w = self.mwaiter("w", A, minSerial=a1.serial + 1)
        self.assertStep(
            core.request(w),
            [connect("w")],
            buckets={A: bucket(inUse=["a1"], connecting=["w"], opened=1)},
            total=2,
            opened=1,
            waiters={"w1": DONE, "w": CONNECTING},
        )

    def test_lostClearsBooks(self) -> None:
        """
        A multiplexed connection lost with streams in flight frees its slot
        and leaves nothing in the stream books; late stream reports are
        ignored.
        """
        core, a1 = self.multiplexedInUse(3)
        self.assertIs(core.takeIdle(A), a1)
        self.assertStep(
            core.lost(a1),
            [],
            buckets={},
            total=0,
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )
        self.assertStep(
            core.release(a1, True),
            [],
            buckets={},
            total=0,
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )
        self.assertStep(
            core.capacityChanged(a1, 5),
            [],
            buckets={},
            total=0,
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )


class _StreamWalk(_Walk):
    """
    A seeded random walk like L{tests.test_core._Walk}'s, where requests
    may be multiplexed: connections come up with a capacity (or turn out
    to carry one request at a time), capacities change and drop to 0, and
    the model counts one entry in C{inUse} per request in flight.
    """

    def carryOut(self, actions: list[Any]) -> None:
        for action in actions:
            if action.kind is ActionKind.CLOSE:
                connection = action.connection
                _require(connection not in self.closing, f"{connection} closed twice")
                self.closing.append(connection)
                self.inUse = [c for c in self.inUse if c is not connection]
            else:
                _Walk.carryOut(self, [action])

    def step(self) -> None:
        core, rng = self.core, self.rng
        choice = rng.randrange(12)
        if choice <= 2 and not core.closed:
            key = rng.choice((A, B, C))
            if rng.random() < 0.3:
                connection = core.takeIdle(key)
                if connection is not None:
                    self.inUse.append(connection)
                    return
            minSerial = self.serial + 1 if rng.random() < 0.1 else 0
            waiter = Waiter(key, minSerial)
            waiter.mayMultiplex = key != C
            self.waiting.append(waiter)
            self.carryOut(core.request(waiter))
        elif choice == 3 and self.connecting:
            waiter = self.pick(self.connecting)
            if rng.random() < 0.15:
                self.carryOut(core.connectFailed(waiter))
                return
            self.serial += 1
            connection = FakeConnection(f"c{self.serial}", waiter.key, self.serial)
            self.live.append(connection)
            capacity = None
            if waiter.mayMultiplex and rng.random() < 0.8:
                capacity = rng.randint(1, 4)
            self.carryOut(core.connected(waiter, connection, capacity))
        elif choice == 10:
            multiplexed = [
                c
                for c in self.live
                if c not in self.closing
                and c.key in core.buckets
                and c in core.buckets[c.key].capacity
            ]
            if multiplexed:
                connection = rng.choice(multiplexed)
                capacity = 0 if rng.random() < 0.3 else rng.randint(1, 4)
                self.carryOut(core.capacityChanged(connection, capacity))
        elif choice == 11 and self.inUse:
            connection = self.pick(self.inUse)
            self.carryOut(core.release(connection, True))
        else:
            _Walk.step(self)

    def lose(self, connection: FakeConnection) -> None:
        self.live.remove(connection)
        if connection in self.closing:
            self.closing.remove(connection)
        self.inUse = [c for c in self.inUse if c is not connection]
        self.carryOut(self.core.lost(connection))

    def check(self) -> None:
        core = self.core
        buckets = core.buckets.values()
        _require(core.total == sum(b.total for b in buckets), "total")
        _require(core.closingCount == sum(len(b.closing) for b in buckets), "closing")
        _require(core.total == len(self.live) + len(self.connecting), "slots")
        over = self.over()
        self.limitsAbove = self.limitsAbove and over
        _require(not over or self.limitsAbove, "a limit was exceeded")
        for key, b in core.buckets.items():
            _require(not b.empty(), f"empty bucket {key!r} kept")
            _require(
                b.negotiating == sum(1 for w in b.connecting if w.coalescing),
                f"{key!r} negotiating count",
            )
            for connection, capacity in b.capacity.items():
                flying = sum(1 for c in self.inUse if c is connection)
                _require(
                    connection in b.inUse or connection in b.idle,
                    f"{connection} in the stream books but neither in use nor idle",
                )
                _require(
                    b.streams.get(connection, 0) == flying,
                    f"{connection}: {b.streams.get(connection, 0)} streams booked, "
                    f"{flying} in flight",
                )
                _require(
                    (connection in b.idle) == (flying == 0),
                    f"{connection} idle with streams, or in use with none",
                )
                _require(
                    (connection in b.spare)
                    <= (flying < capacity and connection in b.inUse),
                    f"{connection} spare without room",
                )
            for connection in b.inUse:
                if connection not in b.capacity:
                    _require(
                        sum(1 for c in self.inUse if c is connection) == 1,
                        f"{connection} carries one request at a time",
                    )
            if not b.waiters or core.closed:
                _require(key not in core._ring, f"{key!r} in the ring for nobody")
                continue
            head = b.waiters[0]
            _require(
                not any(
                    c.serial >= w.minSerial and not c.stale
                    for c in b.spare
                    for w in b.waiters
                ),
                f"{key!r} waits beside a connection with room",
            )
            room = b.total < core.perHostLimit and not b.negotiating
            _require(not (room and core.total < core.globalLimit), f"{key!r} waits")
            _require(room == (key in core._ring), f"{key!r} ring place")
            _require(all(c.serial < head.minSerial for c in b.idle), f"{key!r} idle")


class StreamWalkTests(SynchronousTestCase):
    """
    Seeded random walks with multiplexed connections.
    """

    def test_walks(self) -> None:
        """
        Across many walks, every event leaves the stream books consistent
        with what is in flight, and the core's promises kept.
        """
        for seed in range(300):
            walk = _StreamWalk(seed)
            for step in range(400):
                try:
                    walk.step()
                    walk.check()
                except AssertionError as e:
                    self.fail(f"seed {seed}, step {step}: {e}")
