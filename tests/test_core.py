"""
L{pooled_http._core.PoolCore} alone: no reactor, no Deferred, no pool.

Each test feeds the core one event at a time and checks, after every event,
the exact list of actions it returned and the core's whole state: every
bucket's idle, in-use, connecting and closing sets and its queue, the
totals, the round-robin ring, the global idle order, the counters and where
each waiter stands.  A state that differs in any field fails the test.

Seeded random walks over the same events then check, after every one, that
the books add up and the core keeps its promises: the limits hold, nobody
waits who could be served, a retry never gets a connection older than it
asked for.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from pooled_http._core import Action, ActionKind, PoolCore, Waiter, WaiterState
from pooled_http.stats import CloseReason

A = "a"
B = "b"
C = "c"
D = "d"
E = "e"

WAITING = WaiterState.WAITING
CONNECTING = WaiterState.CONNECTING
DONE = WaiterState.DONE


class FakeConnection:
    """
    A connection as the core sees it: a key, a serial, and whether its
    transport is already going away.

    @ivar name: How the connection is named in snapshots and actions.
    """

    def __init__(self, name: str, key: Hashable, serial: int) -> None:
        self.name = name
        self.key = key
        self.serial = serial
        self.stale = False

    def __repr__(self) -> str:
        return f"<FakeConnection {self.name}>"


class NamedWaiter(Waiter):
    """
    A L{Waiter} with a name for snapshots and actions.
    """

    __slots__ = ("name",)

    def __init__(self, name: str, key: Hashable, minSerial: int = 0) -> None:
        Waiter.__init__(self, key, minSerial)
        self.name = name

    def __repr__(self) -> str:
        return f"<NamedWaiter {self.name}>"


def _name(thing: Any) -> Any:
    return None if thing is None else thing.name


def describeActions(actions: Iterable[Action]) -> list[tuple[Any, ...]]:
    """
    Every field of every action, as plain values.

    @param actions: What an event returned.
    @return: One C{(kind, waiter, connection, reused, reason)} a action.
    """
    return [
        (a.kind, _name(a.waiter), _name(a.connection), a.reused, a.reason)
        for a in actions
    ]


def hand(waiter: str, connection: str, reused: bool) -> tuple[Any, ...]:
    """
    The description of a L{ActionKind.HAND} action.
    """
    return (ActionKind.HAND, waiter, connection, reused, "")


def connect(waiter: str) -> tuple[Any, ...]:
    """
    The description of a L{ActionKind.CONNECT} action.
    """
    return (ActionKind.CONNECT, waiter, None, False, "")


def close(connection: str, reason: str) -> tuple[Any, ...]:
    """
    The description of a L{ActionKind.CLOSE} action.
    """
    return (ActionKind.CLOSE, None, connection, False, reason)


def park(connection: str) -> tuple[Any, ...]:
    """
    The description of a L{ActionKind.PARK} action.
    """
    return (ActionKind.PARK, None, connection, False, "")


def fail(waiter: str) -> tuple[Any, ...]:
    """
    The description of a L{ActionKind.FAIL} action.
    """
    return (ActionKind.FAIL, waiter, None, False, "")


def bucket(
    *,
    idle: Iterable[str] = (),
    inUse: Iterable[str] = (),
    connecting: Iterable[str] = (),
    closing: Iterable[str] = (),
    waiters: Iterable[str] = (),
    opened: int = 0,
    reused: int = 0,
) -> dict[str, Any]:
    """
    The expected state of one bucket; what is not named is empty or zero.
    C{idle} and C{waiters} are in order, oldest first; the sets in any
    order.
    """
    return {
        "idle": list(idle),
        "inUse": sorted(inUse),
        "connecting": sorted(connecting),
        "closing": sorted(closing),
        "waiters": list(waiters),
        "opened": opened,
        "reused": reused,
    }


def snapshot(core: PoolCore, waiters: Iterable[NamedWaiter]) -> dict[str, Any]:
    """
    The core's whole state as plain values.

    @param core: The core.
    @param waiters: Every waiter the test made, to say where each stands.
    """
    buckets = {}
    for key, b in core.buckets.items():
        buckets[key] = {
            "idle": [c.name for c in b.idle],
            "inUse": sorted(c.name for c in b.inUse),
            "connecting": sorted(_name(w) for w in b.connecting),
            "closing": sorted(c.name for c in b.closing),
            "waiters": [_name(w) for w in b.waiters],
            "opened": b.opened,
            "reused": b.reused,
        }
    return {
        "buckets": buckets,
        "total": core.total,
        "closingCount": core.closingCount,
        "idleOrder": [c.name for c in core._idle],
        "ring": list(core._ring),
        "opened": core.opened,
        "reused": core.reused,
        "closed": core.closed,
        "waiters": {w.name: w.state for w in waiters},
    }


class CoreTestCase(SynchronousTestCase):
    """
    Make a core, waiters and connections, and check the core after each
    event.
    """

    maxDiff = None

    def setUp(self) -> None:
        self.waiters: list[NamedWaiter] = []
        self.connections: dict[str, FakeConnection] = {}
        self.serials = 0

    def makeCore(self, perHost: int, globalLimit: int, maxIdle: int) -> PoolCore:
        """
        Make the core under test.
        """
        self.core = PoolCore(perHost, globalLimit, maxIdle)
        return self.core

    def waiter(self, name: str, key: Hashable, minSerial: int = 0) -> NamedWaiter:
        """
        Make a waiter, remembered for snapshots.
        """
        waiter = NamedWaiter(name, key, minSerial)
        self.waiters.append(waiter)
        return waiter

    def connection(self, name: str, key: Hashable) -> FakeConnection:
        """
        Make a connection with the next serial.
        """
        self.serials += 1
        connection = FakeConnection(name, key, self.serials)
        self.connections[name] = connection
        return connection

    def assertStep(
        self,
        actions: list[Action],
        expected: list[tuple[Any, ...]],
        *,
        buckets: dict[Hashable, dict[str, Any]],
        total: int,
        closingCount: int = 0,
        idleOrder: Iterable[str] = (),
        ring: Iterable[Hashable] = (),
        opened: int = 0,
        reused: int = 0,
        closed: bool = False,
        waiters: dict[str, WaiterState] | None = None,
    ) -> None:
        """
        Check the actions an event returned and the core's whole state
        after it.  What is not named is empty, zero or false; C{waiters}
        must name every waiter made.
        """
        self.assertEqual(describeActions(actions), expected)
        self.assertEqual(
            snapshot(self.core, self.waiters),
            {
                "buckets": buckets,
                "total": total,
                "closingCount": closingCount,
                "idleOrder": list(idleOrder),
                "ring": list(ring),
                "opened": opened,
                "reused": reused,
                "closed": closed,
                "waiters": waiters or {},
            },
        )
        self.assertConsistent()

    def assertConsistent(self) -> None:
        """
        The totals agree with the buckets they sum up.
        """
        core = self.core
        self.assertEqual(core.total, sum(b.total for b in core.buckets.values()))
        self.assertEqual(
            core.closingCount, sum(len(b.closing) for b in core.buckets.values())
        )
        self.assertEqual(
            sorted(c.name for c in core._idle),
            sorted(c.name for b in core.buckets.values() for c in b.idle),
        )
        self.assertEqual(core.idleCount, len(core._idle))

    def inUseWithWaiter(
        self, minSerial: int = 0
    ) -> tuple[PoolCore, FakeConnection, NamedWaiter]:
        """
        A core allowing one connection per key, with C{a1} in use and the
        waiter C{w} (wanting a serial of at least C{minSerial}) queued
        behind it.
        """
        core = self.makeCore(1, 10, 1)
        (a1,) = self.openInUse(A, "a1")
        w = self.waiter("w", A, minSerial)
        self.assertStep(
            core.request(w),
            [],
            buckets={A: bucket(inUse=["a1"], waiters=["w"], opened=1)},
            total=1,
            opened=1,
            waiters={"wa1": DONE, "w": WAITING},
        )
        return core, a1, w

    def assertClosingBeforeWaiter(
        self, actions: list[Action], expected: list[tuple[Any, ...]]
    ) -> None:
        """
        After L{inUseWithWaiter}: C{a1} is closing and keeps its slot, so
        C{w} still waits.
        """
        self.assertStep(
            actions,
            expected,
            buckets={A: bucket(closing=["a1"], waiters=["w"], opened=1)},
            total=1,
            closingCount=1,
            opened=1,
            waiters={"wa1": DONE, "w": WAITING},
        )

    def assertWaiterConnects(
        self, actions: list[Action], expected: list[tuple[Any, ...]] | None = None
    ) -> None:
        """
        After L{inUseWithWaiter}: C{a1} is gone and C{w} connects in its
        slot; C{expected} are the actions (by default, that connect).
        """
        self.assertStep(
            actions,
            [connect("w")] if expected is None else expected,
            buckets={A: bucket(connecting=["w"], opened=1)},
            total=1,
            opened=1,
            waiters={"wa1": DONE, "w": CONNECTING},
        )

    def openInUse(self, key: Hashable, *names: str) -> list[FakeConnection]:
        """
        Open connections of C{key} and hand them out, one waiter each
        (named after the connection with a C{w} in front).
        """
        opened = []
        for name in names:
            waiter = self.waiter("w" + name, key)
            self.assertEqual(
                describeActions(self.core.request(waiter)), [connect(waiter.name)]
            )
            connection = self.connection(name, key)
            self.assertEqual(
                describeActions(self.core.connected(waiter, connection)),
                [hand(waiter.name, name, False)],
            )
            opened.append(connection)
        return opened

    def openIdle(self, key: Hashable, *names: str) -> list[FakeConnection]:
        """
        Open connections of C{key}, hand them out and take them back, so
        that they are idle in the order named.
        """
        opened = self.openInUse(key, *names)
        for connection in opened:
            self.assertEqual(
                describeActions(self.core.release(connection, True)),
                [park(connection.name)],
            )
        return opened


class RequestTests(CoreTestCase):
    """
    A request asks for a slot, the connection opens and is handed out, and
    comes back idle for the next one.
    """

    def test_requestConnectHandRelease(self) -> None:
        """
        The whole life of one connection: connect, hand, park, take idle,
        park, lost, and the bucket is forgotten.
        """
        core = self.makeCore(2, 10, 2)
        w1 = self.waiter("w1", A)
        self.assertStep(
            core.request(w1),
            [connect("w1")],
            buckets={A: bucket(connecting=["w1"])},
            total=1,
            waiters={"w1": CONNECTING},
        )
        a1 = self.connection("a1", A)
        self.assertStep(
            core.connected(w1, a1),
            [hand("w1", "a1", False)],
            buckets={A: bucket(inUse=["a1"], opened=1)},
            total=1,
            opened=1,
            waiters={"w1": DONE},
        )
        self.assertStep(
            core.release(a1, True),
            [park("a1")],
            buckets={A: bucket(idle=["a1"], opened=1)},
            total=1,
            idleOrder=["a1"],
            opened=1,
            waiters={"w1": DONE},
        )
        self.assertIs(core.takeIdle(A), a1)
        self.assertStep(
            [],
            [],
            buckets={A: bucket(inUse=["a1"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )
        self.assertStep(
            core.release(a1, True),
            [park("a1")],
            buckets={A: bucket(idle=["a1"], opened=1, reused=1)},
            total=1,
            idleOrder=["a1"],
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )
        self.assertStep(
            core.lost(a1),
            [],
            buckets={},
            total=0,
            opened=1,
            reused=1,
            waiters={"w1": DONE},
        )

    def test_twoRequestsTwoConnections(self) -> None:
        """
        Within the per-key limit every request opens its own connection at
        once; the next one waits.
        """
        core = self.makeCore(2, 10, 2)
        w1, w2, w3 = (self.waiter(n, A) for n in ("w1", "w2", "w3"))
        self.assertStep(
            core.request(w1),
            [connect("w1")],
            buckets={A: bucket(connecting=["w1"])},
            total=1,
            waiters={"w1": CONNECTING, "w2": WAITING, "w3": WAITING},
        )
        self.assertStep(
            core.request(w2),
            [connect("w2")],
            buckets={A: bucket(connecting=["w1", "w2"])},
            total=2,
            waiters={"w1": CONNECTING, "w2": CONNECTING, "w3": WAITING},
        )
        self.assertStep(
            core.request(w3),
            [],
            buckets={A: bucket(connecting=["w1", "w2"], waiters=["w3"])},
            total=2,
            waiters={"w1": CONNECTING, "w2": CONNECTING, "w3": WAITING},
        )
        self.assertEqual(core.blockingLimit(A), "maxConnectionsPerHost=2")
        a2 = self.connection("a2", A)
        self.assertStep(
            core.connected(w2, a2),
            [hand("w2", "a2", False)],
            buckets={A: bucket(inUse=["a2"], connecting=["w1"], waiters=["w3"], opened=1)},
            total=2,
            opened=1,
            waiters={"w1": CONNECTING, "w2": DONE, "w3": WAITING},
        )
        self.assertStep(
            core.release(a2, True),
            [hand("w3", "a2", True)],
            buckets={A: bucket(inUse=["a2"], connecting=["w1"], opened=1, reused=1)},
            total=2,
            opened=1,
            reused=1,
            waiters={"w1": CONNECTING, "w2": DONE, "w3": DONE},
        )

    def test_connectFailed(self) -> None:
        """
        A failed connect frees its slot for the next waiter; the last one
        leaves nothing behind.
        """
        core = self.makeCore(1, 10, 1)
        w1, w2 = self.waiter("w1", A), self.waiter("w2", A)
        core.request(w1)
        self.assertStep(
            core.request(w2),
            [],
            buckets={A: bucket(connecting=["w1"], waiters=["w2"])},
            total=1,
            waiters={"w1": CONNECTING, "w2": WAITING},
        )
        self.assertStep(
            core.connectFailed(w1),
            [connect("w2")],
            buckets={A: bucket(connecting=["w2"])},
            total=1,
            waiters={"w1": DONE, "w2": CONNECTING},
        )
        self.assertStep(
            core.connectFailed(w2),
            [],
            buckets={},
            total=0,
            waiters={"w1": DONE, "w2": DONE},
        )
        # Reported twice: nothing more happens.
        self.assertStep(
            core.connectFailed(w2),
            [],
            buckets={},
            total=0,
            waiters={"w1": DONE, "w2": DONE},
        )


class TakeIdleTests(CoreTestCase):
    """
    The fast path: an idle connection handed out without queueing.
    """

    def test_nothingIdle(self) -> None:
        """
        An unknown key, or one with nothing idle, gives L{None} and changes
        nothing.
        """
        core = self.makeCore(2, 10, 2)
        self.assertIsNone(core.takeIdle(A))
        self.assertStep([], [], buckets={}, total=0)
        self.openInUse(A, "a1")
        self.assertIsNone(core.takeIdle(A))
        self.assertStep(
            [],
            [],
            buckets={A: bucket(inUse=["a1"], opened=1)},
            total=1,
            opened=1,
            waiters={"wa1": DONE},
        )

    def test_mostRecentFirst(self) -> None:
        """
        The connection returned last is handed out first; the global idle
        order loses it too.
        """
        core = self.makeCore(2, 10, 2)
        self.openIdle(A, "a1", "a2")
        self.assertStep(
            [],
            [],
            buckets={A: bucket(idle=["a1", "a2"], opened=2)},
            total=2,
            idleOrder=["a1", "a2"],
            opened=2,
            waiters={"wa1": DONE, "wa2": DONE},
        )
        self.assertIs(core.takeIdle(A), self.connections["a2"])
        self.assertStep(
            [],
            [],
            buckets={A: bucket(idle=["a1"], inUse=["a2"], opened=2, reused=1)},
            total=2,
            idleOrder=["a1"],
            opened=2,
            reused=1,
            waiters={"wa1": DONE, "wa2": DONE},
        )

    def test_staleIdle(self) -> None:
        """
        An idle connection whose transport is already going away is not
        handed out: it moves to closing (its close is under way, so no
        close is asked for) and keeps its slot until it is lost.  The
        request then queues, and gets the other idle connection.
        """
        core = self.makeCore(2, 10, 2)
        a1, a2 = self.openIdle(A, "a1", "a2")
        a2.stale = True
        self.assertIsNone(core.takeIdle(A))
        done = {"wa1": DONE, "wa2": DONE}
        self.assertStep(
            [],
            [],
            buckets={A: bucket(idle=["a1"], closing=["a2"], opened=2)},
            total=2,
            closingCount=1,
            idleOrder=["a1"],
            opened=2,
            waiters=done,
        )
        w = self.waiter("w", A)
        self.assertStep(
            core.request(w),
            [hand("w", "a1", True)],
            buckets={A: bucket(inUse=["a1"], closing=["a2"], opened=2, reused=1)},
            total=2,
            closingCount=1,
            opened=2,
            reused=1,
            waiters={**done, "w": DONE},
        )
        self.assertStep(
            core.lost(a2),
            [],
            buckets={A: bucket(inUse=["a1"], opened=2, reused=1)},
            total=1,
            opened=2,
            reused=1,
            waiters={**done, "w": DONE},
        )

    def test_staleIdleServingAWaiter(self) -> None:
        """
        Serving a queued waiter from idle connections skips (and closes) a
        stale one.
        """
        core = self.makeCore(2, 10, 2)
        a1, a2 = self.openIdle(A, "a1", "a2")
        a2.stale = True
        w = self.waiter("w", A)
        self.assertStep(
            core.request(w),
            [close("a2", CloseReason.SERVER_CLOSED), hand("w", "a1", True)],
            buckets={A: bucket(inUse=["a1"], closing=["a2"], opened=2, reused=1)},
            total=2,
            closingCount=1,
            opened=2,
            reused=1,
            waiters={"wa1": DONE, "wa2": DONE, "w": DONE},
        )

    def test_waitersAhead(self) -> None:
        """
        With a waiter queued (here a retry that needs a connection newer
        than any idle one) the fast path does not jump the queue.
        """
        core = self.makeCore(2, 10, 2)
        self.openIdle(A, "a1", "a2")
        retry = self.waiter("retry", A, minSerial=3)
        done = {"wa1": DONE, "wa2": DONE}
        self.assertStep(
            core.request(retry),
            [close("a2", CloseReason.EVICTED)],
            buckets={
                A: bucket(idle=["a1"], closing=["a2"], waiters=["retry"], opened=2)
            },
            total=2,
            closingCount=1,
            idleOrder=["a1"],
            opened=2,
            waiters={**done, "retry": WAITING},
        )
        self.assertIsNone(core.takeIdle(A))
        self.assertStep(
            [],
            [],
            buckets={
                A: bucket(idle=["a1"], closing=["a2"], waiters=["retry"], opened=2)
            },
            total=2,
            closingCount=1,
            idleOrder=["a1"],
            opened=2,
            waiters={**done, "retry": WAITING},
        )
        # The evicted connection's slot goes to the retry.  The other idle
        # one is too old for it as well, and is closed on the way.
        self.assertStep(
            core.lost(self.connections["a2"]),
            [close("a1", CloseReason.EVICTED), connect("retry")],
            buckets={A: bucket(closing=["a1"], connecting=["retry"], opened=2)},
            total=2,
            closingCount=1,
            opened=2,
            waiters={**done, "retry": CONNECTING},
        )

    def test_closed(self) -> None:
        """
        After shutdown nothing is handed out.
        """
        core = self.makeCore(2, 10, 2)
        (a1,) = self.openInUse(A, "a1")
        core.shutdown()
        self.assertIsNone(core.takeIdle(A))
        self.assertStep(
            [],
            [],
            buckets={A: bucket(inUse=["a1"], opened=1)},
            total=1,
            opened=1,
            closed=True,
            waiters={"wa1": DONE},
        )


class CancelTests(CoreTestCase):
    """
    A waiter that gives up.
    """

    def test_cancelWaiting(self) -> None:
        """
        A queued waiter leaves the queue; cancelling it again, or a waiter
        whose connect is under way, changes nothing.
        """
        core = self.makeCore(1, 10, 1)
        w1, w2, w3 = (self.waiter(n, A) for n in ("w1", "w2", "w3"))
        for w in (w1, w2, w3):
            core.request(w)
        self.assertStep(
            core.cancel(w2),
            [],
            buckets={A: bucket(connecting=["w1"], waiters=["w3"])},
            total=1,
            waiters={"w1": CONNECTING, "w2": DONE, "w3": WAITING},
        )
        # Cancelling a waiter that is done, or one whose connect is under
        # way (the pool cancels the connect attempt instead), does nothing.
        for w in (w2, w1):
            self.assertStep(
                core.cancel(w),
                [],
                buckets={A: bucket(connecting=["w1"], waiters=["w3"])},
                total=1,
                waiters={"w1": CONNECTING, "w2": DONE, "w3": WAITING},
            )
        a1 = self.connection("a1", A)
        self.assertStep(
            core.connected(w1, a1),
            [hand("w1", "a1", False)],
            buckets={A: bucket(inUse=["a1"], waiters=["w3"], opened=1)},
            total=1,
            opened=1,
            waiters={"w1": DONE, "w2": DONE, "w3": WAITING},
        )
        self.assertStep(
            core.release(a1, True),
            [hand("w3", "a1", True)],
            buckets={A: bucket(inUse=["a1"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE, "w2": DONE, "w3": DONE},
        )

    def test_cancelLastWaiterForgetsBucket(self) -> None:
        """
        A key whose only waiter gives up is forgotten, ring place and all.
        """
        core = self.makeCore(1, 1, 1)
        self.openInUse(B, "b1")
        wa = self.waiter("wa", A)
        self.assertStep(
            core.request(wa),
            [],
            buckets={B: bucket(inUse=["b1"], opened=1), A: bucket(waiters=["wa"])},
            total=1,
            ring=[A],
            opened=1,
            waiters={"wb1": DONE, "wa": WAITING},
        )
        self.assertEqual(core.blockingLimit(A), "maxConnections=1")
        self.assertStep(
            core.cancel(wa),
            [],
            buckets={B: bucket(inUse=["b1"], opened=1)},
            total=1,
            opened=1,
            waiters={"wb1": DONE, "wa": DONE},
        )

    def test_cancelLeavesRing(self) -> None:
        """
        A key whose last waiter gives up leaves the ring but keeps its
        connections; a slot freed later goes to nobody.
        """
        core = self.makeCore(5, 2, 5)
        a1, a2 = self.openInUse(A, "a1", "a2")
        wa = self.waiter("wa", A)
        self.assertStep(
            core.request(wa),
            [],
            buckets={A: bucket(inUse=["a1", "a2"], waiters=["wa"], opened=2)},
            total=2,
            ring=[A],
            opened=2,
            waiters={"wa1": DONE, "wa2": DONE, "wa": WAITING},
        )
        self.assertStep(
            core.cancel(wa),
            [],
            buckets={A: bucket(inUse=["a1", "a2"], opened=2)},
            total=2,
            opened=2,
            waiters={"wa1": DONE, "wa2": DONE, "wa": DONE},
        )
        self.assertStep(
            core.lost(a1),
            [],
            buckets={A: bucket(inUse=["a2"], opened=2)},
            total=1,
            opened=2,
            waiters={"wa1": DONE, "wa2": DONE, "wa": DONE},
        )

    def test_cancelUnknownKey(self) -> None:
        """
        A waiter of a key the core does not know changes nothing.
        """
        core = self.makeCore(1, 1, 1)
        w = self.waiter("w", A)
        self.assertStep(core.cancel(w), [], buckets={}, total=0, waiters={"w": WAITING})


class ReleaseTests(CoreTestCase):
    """
    A connection in use comes back.
    """

    def test_releaseNotReusable(self) -> None:
        """
        A connection that cannot be reused is closed for the reason given
        and keeps its slot until lost; the waiter behind it then connects.
        """
        core, a1, w = self.inUseWithWaiter()
        self.assertClosingBeforeWaiter(
            core.release(a1, False, CloseReason.NOT_REUSABLE),
            [close("a1", CloseReason.NOT_REUSABLE)],
        )
        self.assertWaiterConnects(core.lost(a1))

    def test_releaseNotReusableDefaultReason(self) -> None:
        """
        Without a reason the close is counted as a shutdown.
        """
        core = self.makeCore(1, 10, 1)
        (a1,) = self.openInUse(A, "a1")
        self.assertStep(
            core.release(a1, False),
            [close("a1", CloseReason.SHUTDOWN)],
            buckets={A: bucket(closing=["a1"], opened=1)},
            total=1,
            closingCount=1,
            opened=1,
            waiters={"wa1": DONE},
        )

    def test_releaseTwice(self) -> None:
        """
        A connection that is not in use any more cannot be released again.
        """
        core = self.makeCore(1, 10, 1)
        (a1,) = self.openInUse(A, "a1")
        core.release(a1, True)
        for reusable in (True, False):
            self.assertStep(
                core.release(a1, reusable),
                [],
                buckets={A: bucket(idle=["a1"], opened=1)},
                total=1,
                idleOrder=["a1"],
                opened=1,
                waiters={"wa1": DONE},
            )

    def test_releaseStaleToWaiter(self) -> None:
        """
        A connection whose transport is already going away when it comes
        back is not handed to the waiter in line (its request would be
        lost, as L{PoolCore.takeIdle} and serving from idle connections
        know): it is closed, and the waiter connects once it is lost.
        """
        core, a1, w = self.inUseWithWaiter()
        a1.stale = True
        self.assertClosingBeforeWaiter(
            core.release(a1, True), [close("a1", CloseReason.SERVER_CLOSED)]
        )
        self.assertWaiterConnects(core.lost(a1))

    def test_retryWaiterEvicts(self) -> None:
        """
        A retry wants a connection newer than the one that failed: a
        connection that comes back older than that is closed, and its slot
        opens a new connection for the retry.
        """
        core, a1, w = self.inUseWithWaiter(minSerial=2)
        self.assertClosingBeforeWaiter(
            core.release(a1, True), [close("a1", CloseReason.EVICTED)]
        )
        self.assertWaiterConnects(core.lost(a1))
        a2 = self.connection("a2", A)
        self.assertStep(
            core.connected(w, a2),
            [hand("w", "a2", False)],
            buckets={A: bucket(inUse=["a2"], opened=2)},
            total=1,
            opened=2,
            waiters={"wa1": DONE, "w": DONE},
        )

    def test_retryWaiterTakesNewEnough(self) -> None:
        """
        A connection at least as new as the retry asks for is handed to it.
        """
        core, a1, w = self.inUseWithWaiter(minSerial=1)
        self.assertStep(
            core.release(a1, True),
            [hand("w", "a1", True)],
            buckets={A: bucket(inUse=["a1"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"wa1": DONE, "w": DONE},
        )

    def test_maxIdlePerHost(self) -> None:
        """
        Parking one more connection than a key may keep idle closes the
        oldest idle one.
        """
        core = self.makeCore(3, 10, 2)
        a1, a2, a3 = self.openInUse(A, "a1", "a2", "a3")
        done = {"wa1": DONE, "wa2": DONE, "wa3": DONE}
        core.release(a1, True)
        self.assertStep(
            core.release(a2, True),
            [park("a2")],
            buckets={A: bucket(idle=["a1", "a2"], inUse=["a3"], opened=3)},
            total=3,
            idleOrder=["a1", "a2"],
            opened=3,
            waiters=done,
        )
        self.assertStep(
            core.release(a3, True),
            [close("a1", CloseReason.TOO_MANY_IDLE), park("a3")],
            buckets={A: bucket(idle=["a2", "a3"], closing=["a1"], opened=3)},
            total=3,
            closingCount=1,
            idleOrder=["a2", "a3"],
            opened=3,
            waiters=done,
        )

    def test_connectedAfterWaiterLeft(self) -> None:
        """
        A connection opened for a waiter that has left meanwhile (marked
        done while its connect was under way) serves the next waiter in
        line.
        """
        core = self.makeCore(1, 10, 1)
        w1, w2 = self.waiter("w1", A), self.waiter("w2", A)
        core.request(w1)
        core.request(w2)
        core.abandon(w1)
        a1 = self.connection("a1", A)
        self.assertStep(
            core.connected(w1, a1),
            [hand("w2", "a1", True)],
            buckets={A: bucket(inUse=["a1"], opened=1, reused=1)},
            total=1,
            opened=1,
            reused=1,
            waiters={"w1": DONE, "w2": DONE},
        )

    def test_connectedAfterWaiterLeftNobodyWaiting(self) -> None:
        """
        With nobody in line, the connection of a waiter that left is kept
        idle.
        """
        core = self.makeCore(1, 10, 1)
        w1 = self.waiter("w1", A)
        core.request(w1)
        core.abandon(w1)
        a1 = self.connection("a1", A)
        self.assertStep(
            core.connected(w1, a1),
            [park("a1")],
            buckets={A: bucket(idle=["a1"], opened=1)},
            total=1,
            idleOrder=["a1"],
            opened=1,
            waiters={"w1": DONE},
        )


class GlobalLimitTests(CoreTestCase):
    """
    The limit over all keys: a fair ring of waiting keys, and idle
    connections of other keys closed to make room.
    """

    def test_roundRobin(self) -> None:
        """
        Freed slots go round the waiting keys in turn, not to the key with
        the longest queue.
        """
        core = self.makeCore(5, 2, 5)
        wa1, wa2, wa3 = (self.waiter(n, A) for n in ("wa1", "wa2", "wa3"))
        wb1, wb2 = self.waiter("wb1", B), self.waiter("wb2", B)
        wc1 = self.waiter("wc1", C)
        for w in (wa1, wa2, wa3, wb1, wb2, wc1):
            core.request(w)
        states = {
            "wa1": CONNECTING,
            "wa2": CONNECTING,
            "wa3": WAITING,
            "wb1": WAITING,
            "wb2": WAITING,
            "wc1": WAITING,
        }
        self.assertStep(
            [],
            [],
            buckets={
                A: bucket(connecting=["wa1", "wa2"], waiters=["wa3"]),
                B: bucket(waiters=["wb1", "wb2"]),
                C: bucket(waiters=["wc1"]),
            },
            total=2,
            ring=[A, B, C],
            waiters=states,
        )
        self.assertEqual(core.blockingLimit(B), "maxConnections=2")
        states.update(wa1=DONE, wa3=CONNECTING)
        self.assertStep(
            core.connectFailed(wa1),
            [connect("wa3")],
            buckets={
                A: bucket(connecting=["wa2", "wa3"]),
                B: bucket(waiters=["wb1", "wb2"]),
                C: bucket(waiters=["wc1"]),
            },
            total=2,
            ring=[B, C],
            waiters=states,
        )
        states.update(wa2=DONE, wb1=CONNECTING)
        self.assertStep(
            core.connectFailed(wa2),
            [connect("wb1")],
            buckets={
                A: bucket(connecting=["wa3"]),
                B: bucket(connecting=["wb1"], waiters=["wb2"]),
                C: bucket(waiters=["wc1"]),
            },
            total=2,
            ring=[C, B],
            waiters=states,
        )
        states.update(wa3=DONE, wc1=CONNECTING)
        self.assertStep(
            core.connectFailed(wa3),
            [connect("wc1")],
            buckets={
                B: bucket(connecting=["wb1"], waiters=["wb2"]),
                C: bucket(connecting=["wc1"]),
            },
            total=2,
            ring=[B],
            waiters=states,
        )
        states.update(wc1=DONE, wb2=CONNECTING)
        self.assertStep(
            core.connectFailed(wc1),
            [connect("wb2")],
            buckets={B: bucket(connecting=["wb1", "wb2"])},
            total=2,
            waiters=states,
        )

    def test_evictOtherKeysIdle(self) -> None:
        """
        A key waiting only for the global limit gets the slot of another
        key's oldest idle connection, closed for it; each waiting key is
        promised one closing connection, not more.
        """
        core = self.makeCore(2, 2, 2)
        a1, a2 = self.openIdle(A, "a1", "a2")
        wb, wc = self.waiter("wb", B), self.waiter("wc", C)
        states = {"wa1": DONE, "wa2": DONE, "wb": WAITING, "wc": WAITING}
        self.assertStep(
            core.request(wb),
            [close("a1", CloseReason.EVICTED)],
            buckets={
                A: bucket(idle=["a2"], closing=["a1"], opened=2),
                B: bucket(waiters=["wb"]),
            },
            total=2,
            closingCount=1,
            idleOrder=["a2"],
            ring=[B],
            opened=2,
            waiters=states,
        )
        self.assertStep(
            core.request(wc),
            [close("a2", CloseReason.EVICTED)],
            buckets={
                A: bucket(closing=["a1", "a2"], opened=2),
                B: bucket(waiters=["wb"]),
                C: bucket(waiters=["wc"]),
            },
            total=2,
            closingCount=2,
            ring=[B, C],
            opened=2,
            waiters=states,
        )
        states.update(wb=CONNECTING)
        self.assertStep(
            core.lost(a1),
            [connect("wb")],
            buckets={
                A: bucket(closing=["a2"], opened=2),
                B: bucket(connecting=["wb"]),
                C: bucket(waiters=["wc"]),
            },
            total=2,
            closingCount=1,
            ring=[C],
            opened=2,
            waiters=states,
        )
        states.update(wc=CONNECTING)
        self.assertStep(
            core.lost(a2),
            [connect("wc")],
            buckets={B: bucket(connecting=["wb"]), C: bucket(connecting=["wc"])},
            total=2,
            opened=2,
            waiters=states,
        )

    def test_evictForRetryAtRingHead(self) -> None:
        """
        A retry at the head of the ring, whose own key still has an idle
        connection too old for it, has another key's idle connection closed
        for the next key in the ring, not its own; its own is closed when
        the queue reaches it again.
        """
        core = self.makeCore(3, 4, 3)
        self.openIdle(A, "a1", "a2")
        self.openIdle(B, "b1")
        self.openInUse(C, "c1")
        retry = self.waiter("retry", A, minSerial=5)
        states = {n: DONE for n in ("wa1", "wa2", "wb1", "wc1")}
        states["retry"] = WAITING
        self.assertStep(
            core.request(retry),
            [close("a2", CloseReason.EVICTED)],
            buckets={
                A: bucket(idle=["a1"], closing=["a2"], waiters=["retry"], opened=2),
                B: bucket(idle=["b1"], opened=1),
                C: bucket(inUse=["c1"], opened=1),
            },
            total=4,
            closingCount=1,
            idleOrder=["a1", "b1"],
            ring=[A],
            opened=4,
            waiters=states,
        )
        wd = self.waiter("wd", D)
        states["wd"] = WAITING
        self.assertStep(
            core.request(wd),
            [close("b1", CloseReason.EVICTED)],
            buckets={
                A: bucket(idle=["a1"], closing=["a2"], waiters=["retry"], opened=2),
                B: bucket(closing=["b1"], opened=1),
                C: bucket(inUse=["c1"], opened=1),
                D: bucket(waiters=["wd"]),
            },
            total=4,
            closingCount=2,
            idleOrder=["a1"],
            ring=[A, D],
            opened=4,
            waiters=states,
        )
        states["retry"] = CONNECTING
        self.assertStep(
            core.lost(self.connections["a2"]),
            [close("a1", CloseReason.EVICTED), connect("retry")],
            buckets={
                A: bucket(closing=["a1"], connecting=["retry"], opened=2),
                B: bucket(closing=["b1"], opened=1),
                C: bucket(inUse=["c1"], opened=1),
                D: bucket(waiters=["wd"]),
            },
            total=4,
            closingCount=2,
            ring=[D],
            opened=4,
            waiters=states,
        )
        states["wd"] = CONNECTING
        self.assertStep(
            core.lost(self.connections["b1"]),
            [connect("wd")],
            buckets={
                A: bucket(closing=["a1"], connecting=["retry"], opened=2),
                C: bucket(inUse=["c1"], opened=1),
                D: bucket(connecting=["wd"]),
            },
            total=4,
            closingCount=1,
            opened=4,
            waiters=states,
        )

    def test_releaseMakesRoom(self) -> None:
        """
        A connection that comes back while another key waits for the global
        limit is closed to make room; once that key is promised a slot, the
        next one comes back idle as usual.
        """
        core = self.makeCore(2, 2, 2)
        a1, a2 = self.openInUse(A, "a1", "a2")
        wb = self.waiter("wb", B)
        states = {"wa1": DONE, "wa2": DONE, "wb": WAITING}
        self.assertStep(
            core.request(wb),
            [],
            buckets={A: bucket(inUse=["a1", "a2"], opened=2), B: bucket(waiters=["wb"])},
            total=2,
            ring=[B],
            opened=2,
            waiters=states,
        )
        self.assertStep(
            core.release(a1, True),
            [close("a1", CloseReason.EVICTED)],
            buckets={
                A: bucket(inUse=["a2"], closing=["a1"], opened=2),
                B: bucket(waiters=["wb"]),
            },
            total=2,
            closingCount=1,
            ring=[B],
            opened=2,
            waiters=states,
        )
        self.assertStep(
            core.release(a2, True),
            [park("a2")],
            buckets={
                A: bucket(idle=["a2"], closing=["a1"], opened=2),
                B: bucket(waiters=["wb"]),
            },
            total=2,
            closingCount=1,
            idleOrder=["a2"],
            ring=[B],
            opened=2,
            waiters=states,
        )
        states.update(wb=CONNECTING)
        self.assertStep(
            core.lost(a1),
            [connect("wb")],
            buckets={A: bucket(idle=["a2"], opened=2), B: bucket(connecting=["wb"])},
            total=2,
            idleOrder=["a2"],
            opened=2,
            waiters=states,
        )


class DiscardAndLostTests(CoreTestCase):
    """
    Connections closed by the pool or lost by the transport, wherever they
    are.
    """

    def test_discardIdle(self) -> None:
        """
        An idle connection discarded moves to closing; its slot is free only
        once it is lost.
        """
        core = self.makeCore(2, 10, 2)
        (a1,) = self.openIdle(A, "a1")
        self.assertStep(
            core.discard(a1, CloseReason.IDLE_TIMEOUT),
            [close("a1", CloseReason.IDLE_TIMEOUT)],
            buckets={A: bucket(closing=["a1"], opened=1)},
            total=1,
            closingCount=1,
            opened=1,
            waiters={"wa1": DONE},
        )
        self.assertStep(
            core.lost(a1), [], buckets={}, total=0, opened=1, waiters={"wa1": DONE}
        )

    def test_discardInUse(self) -> None:
        """
        A connection in use discarded (a timeout, an error) moves to
        closing; the waiter behind it connects once it is lost.  Discarding
        or releasing it while it closes does nothing.
        """
        core, a1, w = self.inUseWithWaiter()
        self.assertClosingBeforeWaiter(
            core.discard(a1, CloseReason.ERROR), [close("a1", CloseReason.ERROR)]
        )
        self.assertClosingBeforeWaiter(core.discard(a1, CloseReason.EXPIRED), [])
        self.assertClosingBeforeWaiter(core.release(a1, True), [])
        self.assertWaiterConnects(core.lost(a1))

    def test_lostIdle(self) -> None:
        """
        An idle connection the server closed leaves at once.
        """
        core = self.makeCore(2, 10, 2)
        a1, a2 = self.openIdle(A, "a1", "a2")
        self.assertStep(
            core.lost(a1),
            [],
            buckets={A: bucket(idle=["a2"], opened=2)},
            total=1,
            idleOrder=["a2"],
            opened=2,
            waiters={"wa1": DONE, "wa2": DONE},
        )

    def test_lostInUse(self) -> None:
        """
        A connection lost while in use frees its slot for the next waiter;
        lost twice, or released after it was lost, nothing more happens.
        """
        core, a1, w = self.inUseWithWaiter()
        self.assertWaiterConnects(core.lost(a1))
        self.assertWaiterConnects(core.lost(a1), [])
        self.assertWaiterConnects(core.release(a1, True), [])

    def test_unknownConnection(self) -> None:
        """
        A connection of a key the core does not know changes nothing.
        """
        core = self.makeCore(1, 10, 1)
        stranger = self.connection("x1", B)
        for actions in (
            core.discard(stranger, CloseReason.ERROR),
            core.lost(stranger),
            core.release(stranger, True),
        ):
            self.assertStep(actions, [], buckets={}, total=0)


class CloseIdleTests(CoreTestCase):
    """
    Closing idle connections on request: C{closeCachedConnections()}.
    """

    def test_closeIdleOfKey(self) -> None:
        """
        Only the key's idle connections close, oldest first; connections in
        use and other keys stay.
        """
        core = self.makeCore(3, 10, 3)
        a1, a2, a3 = self.openInUse(A, "a1", "a2", "a3")
        (b1,) = self.openIdle(B, "b1")
        core.release(a1, True)
        core.release(a2, True)
        done = {"wa1": DONE, "wa2": DONE, "wa3": DONE, "wb1": DONE}
        self.assertStep(
            core.closeIdle(A, CloseReason.SHUTDOWN),
            [close("a1", CloseReason.SHUTDOWN), close("a2", CloseReason.SHUTDOWN)],
            buckets={
                A: bucket(inUse=["a3"], closing=["a1", "a2"], opened=3),
                B: bucket(idle=["b1"], opened=1),
            },
            total=4,
            closingCount=2,
            idleOrder=["b1"],
            opened=4,
            waiters=done,
        )
        self.assertStep(
            core.closeIdle(C, CloseReason.SHUTDOWN),
            [],
            buckets={
                A: bucket(inUse=["a3"], closing=["a1", "a2"], opened=3),
                B: bucket(idle=["b1"], opened=1),
            },
            total=4,
            closingCount=2,
            idleOrder=["b1"],
            opened=4,
            waiters=done,
        )

    def test_closeIdleAll(self) -> None:
        """
        Every idle connection closes, in the global idle order.
        """
        core = self.makeCore(3, 10, 3)
        a1, a2 = self.openInUse(A, "a1", "a2")
        (b1,) = self.openInUse(B, "b1")
        for connection in (a1, b1, a2):
            core.release(connection, True)
        done = {"wa1": DONE, "wa2": DONE, "wb1": DONE}
        self.assertStep(
            [],
            [],
            buckets={
                A: bucket(idle=["a1", "a2"], opened=2),
                B: bucket(idle=["b1"], opened=1),
            },
            total=3,
            idleOrder=["a1", "b1", "a2"],
            opened=3,
            waiters=done,
        )
        reason = CloseReason.SHUTDOWN
        self.assertStep(
            core.closeIdle(None, reason),
            [close("a1", reason), close("b1", reason), close("a2", reason)],
            buckets={
                A: bucket(closing=["a1", "a2"], opened=2),
                B: bucket(closing=["b1"], opened=1),
            },
            total=3,
            closingCount=3,
            opened=3,
            waiters=done,
        )
        for connection in (a1, a2, b1):
            core.lost(connection)
        self.assertStep([], [], buckets={}, total=0, opened=3, waiters=done)


class ShutdownTests(CoreTestCase):
    """
    The pool closing.
    """

    def test_shutdown(self) -> None:
        """
        Every waiter fails, the ring empties, every idle connection closes
        and keys that held only waiters are forgotten; connections in use
        and being opened stay until they come back, and are then closed.
        """
        core = self.makeCore(3, 8, 3)
        a1, a2, a3 = self.openInUse(A, "a1", "a2", "a3")
        wc = self.waiter("wc", C)
        core.request(wc)
        b1, b2, b3 = self.openIdle(B, "b1", "b2", "b3")
        (d1,) = self.openInUse(D, "d1")
        wa, wd, we = self.waiter("wa", A), self.waiter("wd", D), self.waiter("we", E)
        for w in (wa, wd, we):
            core.request(w)
        states = {n: DONE for n in ("wa1", "wa2", "wa3", "wb1", "wb2", "wb3", "wd1")}
        states.update(wc=CONNECTING, wa=WAITING, wd=WAITING, we=WAITING)
        # D and E wait for the global limit, each promised one of B's idle
        # connections, closed for them.
        self.assertStep(
            [],
            [],
            buckets={
                A: bucket(inUse=["a1", "a2", "a3"], waiters=["wa"], opened=3),
                C: bucket(connecting=["wc"]),
                B: bucket(idle=["b3"], closing=["b1", "b2"], opened=3),
                D: bucket(inUse=["d1"], waiters=["wd"], opened=1),
                E: bucket(waiters=["we"]),
            },
            total=8,
            closingCount=2,
            idleOrder=["b3"],
            ring=[D, E],
            opened=7,
            waiters=states,
        )
        states.update(wa=DONE, wd=DONE, we=DONE)
        self.assertStep(
            core.shutdown(),
            [fail("wa"), fail("wd"), fail("we"), close("b3", CloseReason.SHUTDOWN)],
            buckets={
                A: bucket(inUse=["a1", "a2", "a3"], opened=3),
                C: bucket(connecting=["wc"]),
                B: bucket(closing=["b1", "b2", "b3"], opened=3),
                D: bucket(inUse=["d1"], opened=1),
            },
            total=8,
            closingCount=3,
            opened=7,
            closed=True,
            waiters=states,
        )
        self.assertStep(
            core.release(a1, True),
            [close("a1", CloseReason.SHUTDOWN)],
            buckets={
                A: bucket(inUse=["a2", "a3"], closing=["a1"], opened=3),
                C: bucket(connecting=["wc"]),
                B: bucket(closing=["b1", "b2", "b3"], opened=3),
                D: bucket(inUse=["d1"], opened=1),
            },
            total=8,
            closingCount=4,
            opened=7,
            closed=True,
            waiters=states,
        )
        states.update(wc=DONE)
        self.assertStep(
            core.connectFailed(wc),
            [],
            buckets={
                A: bucket(inUse=["a2", "a3"], closing=["a1"], opened=3),
                B: bucket(closing=["b1", "b2", "b3"], opened=3),
                D: bucket(inUse=["d1"], opened=1),
            },
            total=7,
            closingCount=4,
            opened=7,
            closed=True,
            waiters=states,
        )
        for connection in (a1, a2, a3, b1, b2, b3):
            core.lost(connection)
        self.assertStep(
            core.lost(d1),
            [],
            buckets={},
            total=0,
            opened=7,
            closed=True,
            waiters=states,
        )
        self.assertStep(
            core.shutdown(),
            [],
            buckets={},
            total=0,
            opened=7,
            closed=True,
            waiters=states,
        )

    def test_connectedAfterShutdown(self) -> None:
        """
        A connect that completes after shutdown is still handed to its
        waiter (the pool decides what to do with it); it is closed when it
        comes back.
        """
        core = self.makeCore(1, 3, 1)
        w = self.waiter("w", A)
        core.request(w)
        core.shutdown()
        a1 = self.connection("a1", A)
        self.assertStep(
            core.connected(w, a1),
            [hand("w", "a1", False)],
            buckets={A: bucket(inUse=["a1"], opened=1)},
            total=1,
            opened=1,
            closed=True,
            waiters={"w": DONE},
        )
        self.assertStep(
            core.release(a1, True),
            [close("a1", CloseReason.SHUTDOWN)],
            buckets={A: bucket(closing=["a1"], opened=1)},
            total=1,
            closingCount=1,
            opened=1,
            closed=True,
            waiters={"w": DONE},
        )


class LimitsChangedTests(CoreTestCase):
    """
    Limits changed while the pool runs.
    """

    def test_raisePerHost(self) -> None:
        """
        Waiters held back by the per-key limit connect once it is raised.
        """
        core = self.makeCore(1, 10, 1)
        self.openInUse(A, "a1")
        w2, w3 = self.waiter("w2", A), self.waiter("w3", A)
        core.request(w2)
        core.request(w3)
        core.perHostLimit = 3
        self.assertStep(
            core.limitsChanged(),
            [connect("w2"), connect("w3")],
            buckets={A: bucket(inUse=["a1"], connecting=["w2", "w3"], opened=1)},
            total=3,
            opened=1,
            waiters={"wa1": DONE, "w2": CONNECTING, "w3": CONNECTING},
        )

    def test_raiseGlobal(self) -> None:
        """
        Keys held back by the global limit connect once it is raised, in
        ring order.
        """
        core = self.makeCore(5, 1, 5)
        self.openInUse(A, "a1")
        wa2, wb = self.waiter("wa2", A), self.waiter("wb", B)
        wa3 = self.waiter("wa3", A)
        for w in (wa2, wb, wa3):
            core.request(w)
        self.assertStep(
            [],
            [],
            buckets={
                A: bucket(inUse=["a1"], waiters=["wa2", "wa3"], opened=1),
                B: bucket(waiters=["wb"]),
            },
            total=1,
            ring=[A, B],
            opened=1,
            waiters={"wa1": DONE, "wa2": WAITING, "wb": WAITING, "wa3": WAITING},
        )
        core.globalLimit = 3
        self.assertStep(
            core.limitsChanged(),
            [connect("wa2"), connect("wb")],
            buckets={
                A: bucket(inUse=["a1"], connecting=["wa2"], waiters=["wa3"], opened=1),
                B: bucket(connecting=["wb"]),
            },
            total=3,
            ring=[A],
            opened=1,
            waiters={"wa1": DONE, "wa2": CONNECTING, "wb": CONNECTING, "wa3": WAITING},
        )

    def test_lowerPerHost(self) -> None:
        """
        Lowering the per-key limit closes nothing at once; the key's
        waiters stop being served, and a connection that comes back over
        the new limit is closed.
        """
        core = self.makeCore(3, 10, 3)
        a1, a2, a3 = self.openInUse(A, "a1", "a2", "a3")
        core.release(a1, True)
        core.release(a2, True)
        core.perHostLimit = 1
        core.maxIdlePerHost = 1
        done = {"wa1": DONE, "wa2": DONE, "wa3": DONE}
        self.assertStep(
            core.limitsChanged(),
            [],
            buckets={A: bucket(idle=["a1", "a2"], inUse=["a3"], opened=3)},
            total=3,
            idleOrder=["a1", "a2"],
            opened=3,
            waiters=done,
        )
        self.assertStep(
            core.release(a3, True),
            [close("a3", CloseReason.TOO_MANY_IDLE)],
            buckets={A: bucket(idle=["a1", "a2"], closing=["a3"], opened=3)},
            total=3,
            closingCount=1,
            idleOrder=["a1", "a2"],
            opened=3,
            waiters=done,
        )

    def test_lowerGlobal(self) -> None:
        """
        Lowering the global limit closes nothing at once.  A connection
        that comes back over it is closed; a waiting key then has idle
        connections of other keys closed for it, one at a time, until the
        total is under the new limit.
        """
        core = self.makeCore(2, 4, 2)
        self.openIdle(A, "a1", "a2")
        b1, b2 = self.openInUse(B, "b1", "b2")
        states = {"wa1": DONE, "wa2": DONE, "wb1": DONE, "wb2": DONE}
        core.globalLimit = 2
        self.assertStep(
            core.limitsChanged(),
            [],
            buckets={
                A: bucket(idle=["a1", "a2"], opened=2),
                B: bucket(inUse=["b1", "b2"], opened=2),
            },
            total=4,
            idleOrder=["a1", "a2"],
            opened=4,
            waiters=states,
        )
        self.assertStep(
            core.release(b1, True),
            [close("b1", CloseReason.TOO_MANY_IDLE)],
            buckets={
                A: bucket(idle=["a1", "a2"], opened=2),
                B: bucket(inUse=["b2"], closing=["b1"], opened=2),
            },
            total=4,
            closingCount=1,
            idleOrder=["a1", "a2"],
            opened=4,
            waiters=states,
        )
        wc = self.waiter("wc", C)
        states["wc"] = WAITING
        self.assertStep(
            core.request(wc),
            [],
            buckets={
                A: bucket(idle=["a1", "a2"], opened=2),
                B: bucket(inUse=["b2"], closing=["b1"], opened=2),
                C: bucket(waiters=["wc"]),
            },
            total=4,
            closingCount=1,
            idleOrder=["a1", "a2"],
            ring=[C],
            opened=4,
            waiters=states,
        )
        self.assertStep(
            core.lost(b1),
            [close("a1", CloseReason.EVICTED)],
            buckets={
                A: bucket(idle=["a2"], closing=["a1"], opened=2),
                B: bucket(inUse=["b2"], opened=2),
                C: bucket(waiters=["wc"]),
            },
            total=3,
            closingCount=1,
            idleOrder=["a2"],
            ring=[C],
            opened=4,
            waiters=states,
        )
        self.assertStep(
            core.lost(self.connections["a1"]),
            [close("a2", CloseReason.EVICTED)],
            buckets={
                A: bucket(closing=["a2"], opened=2),
                B: bucket(inUse=["b2"], opened=2),
                C: bucket(waiters=["wc"]),
            },
            total=2,
            closingCount=1,
            ring=[C],
            opened=4,
            waiters=states,
        )
        states["wc"] = CONNECTING
        self.assertStep(
            core.lost(self.connections["a2"]),
            [connect("wc")],
            buckets={B: bucket(inUse=["b2"], opened=2), C: bucket(connecting=["wc"])},
            total=2,
            opened=4,
            waiters=states,
        )


def _require(condition: bool, what: str) -> None:
    """
    Raise L{AssertionError} saying C{what} unless C{condition} holds.
    """
    if not condition:
        raise AssertionError(what)


class _Walk:
    """
    One seeded random walk over the core's events.  It keeps its own model
    of what a pool would hold (connections open, connects under way,
    connections handed out, closes asked for) and, after every event,
    checks the core against it and against the rules it promises.

    @ivar limitsAbove: Whether the limits were lowered below what the core
        holds, which the core only works off as connections come back.
    """

    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        perHost = rng.randint(1, 3)
        self.core = PoolCore(perHost, rng.randint(1, 5), rng.randint(1, perHost))
        self.serial = 0
        self.live: list[FakeConnection] = []
        self.connecting: list[Waiter] = []
        self.inUse: list[FakeConnection] = []
        self.closing: list[FakeConnection] = []
        self.waiting: list[Waiter] = []
        self.handed: set[Waiter] = set()
        self.limitsAbove = False

    def carryOut(self, actions: list[Action]) -> None:
        """
        Do what a pool would do with C{actions}, checking each makes sense.
        """
        for action in actions:
            waiter: Any = action.waiter
            connection = action.connection
            if action.kind is ActionKind.HAND:
                _require(waiter not in self.handed, f"{waiter} handed twice")
                _require(
                    connection.serial >= waiter.minSerial,
                    f"{connection} too old for {waiter}",
                )
                self.handed.add(waiter)
                self.inUse.append(connection)
                if waiter in self.waiting:
                    self.waiting.remove(waiter)
            elif action.kind is ActionKind.CONNECT:
                self.waiting.remove(waiter)
                self.connecting.append(waiter)
            elif action.kind is ActionKind.CLOSE:
                _require(connection not in self.closing, f"{connection} closed twice")
                self.closing.append(connection)
                if connection in self.inUse:
                    self.inUse.remove(connection)
            elif action.kind is ActionKind.FAIL:
                self.waiting.remove(waiter)

    def pick(self, things: list[Any]) -> Any:
        """
        Take one of C{things} at random out of the list.
        """
        return things.pop(self.rng.randrange(len(things)))

    def step(self) -> None:
        """
        Feed the core one random event.
        """
        core, rng = self.core, self.rng
        choice = rng.randrange(10)
        settled = [c for c in self.live if c not in self.closing]
        if choice <= 2:
            if core.closed:
                # The pool fails requests itself once it is closed.
                return
            key = rng.choice((A, B, C))
            if rng.random() < 0.3:
                connection = core.takeIdle(key)
                if connection is not None:
                    self.inUse.append(connection)
                    return
            minSerial = self.serial + 1 if rng.random() < 0.15 else 0
            waiter = Waiter(key, minSerial)
            self.waiting.append(waiter)
            self.carryOut(core.request(waiter))
        elif choice == 3 and self.connecting:
            waiter = self.pick(self.connecting)
            if rng.random() < 0.2:
                self.carryOut(core.connectFailed(waiter))
                return
            self.serial += 1
            connection = FakeConnection(f"c{self.serial}", waiter.key, self.serial)
            self.live.append(connection)
            self.carryOut(core.connected(waiter, connection))
        elif choice == 4 and self.inUse:
            connection = self.pick(self.inUse)
            reusable = rng.random() < 0.8
            self.carryOut(core.release(connection, reusable, CloseReason.NOT_REUSABLE))
        elif choice == 5 and self.waiting:
            waiter = self.pick(self.waiting)
            self.carryOut(core.cancel(waiter))
        elif choice == 6 and self.closing:
            self.lose(self.pick(self.closing))
        elif choice == 7 and settled:
            connection = rng.choice(settled)
            what = rng.random()
            if what < 0.4:
                self.lose(connection)
            elif what < 0.8:
                if connection in self.inUse:
                    self.inUse.remove(connection)
                self.carryOut(core.discard(connection, CloseReason.ERROR))
            else:
                # Its transport starts going away; the loss comes later.
                connection.stale = True
        elif choice == 8:
            self.carryOut(core.closeIdle(rng.choice((A, B, None)), CloseReason.SHUTDOWN))
        elif choice == 9:
            if rng.random() < 0.05:
                self.carryOut(core.shutdown())
                return
            core.perHostLimit = rng.randint(1, 3)
            core.globalLimit = rng.randint(1, 5)
            core.maxIdlePerHost = rng.randint(1, core.perHostLimit)
            self.limitsAbove = self.over()
            self.carryOut(core.limitsChanged())

    def lose(self, connection: FakeConnection) -> None:
        """
        The transport of C{connection} is gone.
        """
        self.live.remove(connection)
        for where in (self.closing, self.inUse):
            if connection in where:
                where.remove(connection)
        self.carryOut(self.core.lost(connection))

    def over(self) -> bool:
        """
        Whether the core holds more than a limit allows.
        """
        core = self.core
        return core.total > core.globalLimit or any(
            b.total > core.perHostLimit for b in core.buckets.values()
        )

    def check(self) -> None:
        """
        The core agrees with the model and keeps its promises: the limits
        hold, nobody waits who could be served, and a key waiting for the
        global limit has another key's idle connection closed for it unless
        a closing one will free a slot.
        """
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
            if not b.waiters or core.closed:
                _require(key not in core._ring, f"{key!r} in the ring for nobody")
                continue
            room = b.total < core.perHostLimit
            _require(not (room and core.total < core.globalLimit), f"{key!r} waits")
            _require(room == (key in core._ring), f"{key!r} ring place")
            head = b.waiters[0]
            _require(all(c.serial < head.minSerial for c in b.idle), f"{key!r} idle")
        if core._ring and core.total >= core.globalLimit and not self.limitsAbove:
            first = next(iter(core._ring))
            others = [c for c, owner in core._idle.items() if owner.key != first]
            _require(
                len(core._ring) <= core.closingCount or not others,
                f"idle {others} kept while {list(core._ring)} wait",
            )


class RandomWalkTests(SynchronousTestCase):
    """
    Seeded random walks over the core's events.
    """

    def test_walks(self) -> None:
        """
        Across many walks, every event leaves the core consistent and its
        promises kept.
        """
        for seed in range(300):
            walk = _Walk(seed)
            for step in range(400):
                try:
                    walk.step()
                    walk.check()
                except AssertionError as e:
                    self.fail(f"seed {seed}, step {step}: {e}")
