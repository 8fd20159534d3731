"""
Limits and the fair queue of L{pooled_http.HTTPConnectionPool}: per-key and
global caps, FIFO and round-robin service, eviction, cancellation, connect
failure, slot accounting, C{poolTimeout} and validation of every setting.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectingCancelledError, ConnectionRefusedError
from twisted.web._newclient import ResponseNeverReceived

from pooled_http import HTTPConnectionPool, RetryPolicy
from pooled_http.errors import PoolTimeoutError
from pooled_http.stats import CloseReason
from tests.support.fakes import KEY, OTHER_KEY, PoolTestCase, makeRequest, settle

THIRD_KEY = (b"http", b"c.example", 80)


class PerHostLimitTests(PoolTestCase):
    """
    C{maxConnectionsPerHost} caps connecting + in use + idle per key.
    """

    def test_defaults(self) -> None:
        """
        The documented defaults.
        """
        pool = self.makePool()
        self.assertEqual(pool.maxConnectionsPerHost, 8)
        self.assertEqual(pool.maxPersistentPerHost, 8)
        self.assertEqual(pool.maxConnections, 256)
        self.assertEqual(pool.cachedConnectionTimeout, 240)
        self.assertIs(pool.retryAutomatically, True)
        self.assertIs(pool.persistent, True)
        self.assertIsNone(pool.poolTimeout)

    def test_defaultCapIsEight(self) -> None:
        """
        With default settings the ninth concurrent request waits.
        """
        self.makePool()
        ds = [self.get() for _ in range(9)]
        self.assertEqual(self.endpoint.connects, 8)
        for d in ds[:8]:
            self.successResultOf(d)
        self.assertNoResult(ds[8])
        self.assertEqual(self.counts(), (0, 8, 0, 1))

    def test_connectingCounts(self) -> None:
        """
        Connection attempts under way occupy slots.
        """
        self.makePool(maxConnectionsPerHost=2)
        self.endpoint.autoConnect = False
        d1, d2, d3 = self.get(), self.get(), self.get()
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.counts(), (0, 0, 2, 1))
        for d in (d1, d2, d3):
            self.assertNoResult(d)

    def test_idleCounts(self) -> None:
        """
        Idle connections occupy slots of their own key: with one connection
        idle and one in use at a cap of 2, a third request reuses the idle one
        and a fourth waits.
        """
        self.makePool(maxConnectionsPerHost=2)
        c1, _c2 = self.getNow(), self.getNow()
        self.roundTrip(c1)
        self.assertEqual(self.counts(), (1, 1, 0, 0))
        c3 = self.getNow()
        self.assertTrue(c3.reused)
        d4 = self.get()
        self.assertNoResult(d4)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.counts(), (0, 2, 0, 1))

    def test_otherKeyNotBlocked(self) -> None:
        """
        A key at its cap does not stop another key from connecting.
        """
        self.makePool(maxConnectionsPerHost=1)
        other = self.endpointFor()
        self.getNow()
        self.assertNoResult(self.get())
        self.getNow(OTHER_KEY, other)
        self.assertEqual(other.connects, 1)

    def test_maxPersistentAboveCapLiftsCap(self) -> None:
        """
        Raising C{maxPersistentPerHost} above C{maxConnectionsPerHost} lifts
        the per-host cap to it (Twisted users set it for parallelism).
        """
        self.makePool(maxPersistentPerHost=20)
        ds = [self.get() for _ in range(21)]
        self.assertEqual(self.endpoint.connects, 20)
        self.assertNoResult(ds[20])

    def test_maxPersistentAssignedLiftsCap(self) -> None:
        """
        The same when C{maxPersistentPerHost} is assigned after construction,
        as code written for Twisted's pool does.
        """
        pool = self.makePool()
        pool.maxPersistentPerHost = 12
        ds = [self.get() for _ in range(13)]
        self.assertEqual(self.endpoint.connects, 12)
        self.assertNoResult(ds[12])

    def test_maxPersistentAboveExplicitCap(self) -> None:
        """
        Also when both are given and C{maxPersistentPerHost} is the larger.
        """
        self.makePool(maxConnectionsPerHost=2, maxPersistentPerHost=5)
        [self.get() for _ in range(6)]
        self.assertEqual(self.endpoint.connects, 5)

    def test_maxPersistentBelowCapKeepsCap(self) -> None:
        """
        A smaller C{maxPersistentPerHost} does not lower the per-host cap.
        """
        self.makePool(maxConnectionsPerHost=4, maxPersistentPerHost=1)
        [self.get() for _ in range(5)]
        self.assertEqual(self.endpoint.connects, 4)

    def test_assignedCapApplies(self) -> None:
        """
        Assigning C{maxConnectionsPerHost} after construction takes effect.
        """
        pool = self.makePool()
        pool.maxConnectionsPerHost = 3
        self.assertEqual(pool.maxConnectionsPerHost, 3)
        [self.get() for _ in range(4)]
        self.assertEqual(self.endpoint.connects, 3)


class GlobalLimitTests(PoolTestCase):
    """
    C{maxConnections} caps connections over all keys.
    """

    def test_globalCap(self) -> None:
        """
        With C{maxConnections=3}, a request for a key below its own cap waits
        when three connections exist over all keys.
        """
        self.makePool(maxConnections=3)
        other = self.endpointFor()
        self.getNow()
        self.getNow()
        self.getNow(OTHER_KEY, other)
        d = self.get(OTHER_KEY, other)
        self.assertNoResult(d)
        self.assertEqual(other.connects, 1)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.counts(), (0, 3, 0, 1))

    def test_globalCapCountsConnecting(self) -> None:
        """
        Attempts under way count against the global cap.
        """
        self.makePool(maxConnections=2)
        self.endpoint.autoConnect = False
        other = self.endpointFor(autoConnect=False)
        self.get()
        self.get(OTHER_KEY, other)
        d = self.get(THIRD_KEY, self.endpointFor())
        self.assertNoResult(d)
        self.assertEqual(self.stats().connecting, 2)
        self.assertEqual(self.stats().waiting, 1)

    def test_roundRobinAcrossKeys(self) -> None:
        """
        When the global cap blocks, freed slots go to the waiting keys in
        turn, each key's oldest waiter first, so a key with many waiters
        does not starve the others.
        """
        self.makePool(maxConnections=2, maxConnectionsPerHost=10)
        epA = self.endpointFor(autoConnect=False)
        epB = self.endpointFor(autoConnect=False)
        epC = self.endpointFor(autoConnect=False)
        first = [self.get(KEY, epA), self.get(KEY, epA)]
        self.assertEqual(epA.connects, 2)
        waitersA = [self.get(KEY, epA) for _ in range(4)]
        waiterB = self.get(OTHER_KEY, epB)
        waiterC = self.get(THIRD_KEY, epC)
        self.assertEqual(self.stats().waiting, 6)
        everything = first + waitersA + [waiterB, waiterC]
        started: list[Any] = list(epA.attempts)

        # Free three slots one at a time by failing the oldest attempt.
        for _ in range(3):
            oldest = next(a for a in started if not a.done)
            oldest.fail(ConnectionRefusedError())
            settle(self.clock)
            for ep in (epA, epB, epC):
                for a in ep.attempts:
                    if a not in started:
                        started.append(a)
        # One slot went to each key; A got only its oldest waiter.
        self.assertEqual((epA.connects, epB.connects, epC.connects), (3, 1, 1))
        self.assertEqual(self.stats().waiting, 3)
        self.assertEqual(self.stats().connecting, 2)
        for d in waitersA[1:]:
            self.assertNoResult(d)
        for d in everything:
            if d.called:
                self.failureResultOf(d, ConnectionRefusedError)

    def test_evictIdleOfOtherKey(self) -> None:
        """
        When the global cap blocks and another key holds an idle connection,
        that idle connection is closed to make room for the waiter.
        """
        self.makePool(maxConnections=1)
        conn = self.getNow()
        self.roundTrip(conn)
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        other = self.endpointFor()
        d = self.get(OTHER_KEY, other)
        idle = self.endpoint.attempts[0].transport
        assert idle is not None
        self.assertTrue(idle.closing)
        settle(self.clock)
        self.assertEqual(other.connects, 1)
        self.successResultOf(d)
        s = self.stats()
        self.assertEqual(s.closed.get(CloseReason.EVICTED), 1)
        self.assertEqual((s.idle, s.inUse, s.waiting), (0, 1, 0))
        self.assertEqual(self.endpoint.connects, 1)

    def test_evictionNotNeededForSameKey(self) -> None:
        """
        An idle connection of the requested key is reused, not evicted.
        """
        self.makePool(maxConnections=1)
        conn = self.getNow()
        self.roundTrip(conn)
        again = self.getNow()
        self.assertTrue(again.reused)
        self.assertEqual(self.endpoint.connects, 1)
        self.assertEqual(self.stats().closed.get(CloseReason.EVICTED, 0), 0)


class QueueTests(PoolTestCase):
    """
    Waiters are served FIFO within a key, and a returned connection goes to
    its key's oldest waiter.
    """

    def test_fifoWithinKey(self) -> None:
        """
        Waiters of one key get connections in the order they asked.
        """
        self.makePool(maxConnectionsPerHost=1)
        conn = self.getNow()
        d2, d3, d4 = self.get(), self.get(), self.get()
        order = []
        d2.addCallback(lambda c: order.append(2) or c)
        d3.addCallback(lambda c: order.append(3) or c)
        d4.addCallback(lambda c: order.append(4) or c)
        self.roundTrip(conn)
        self.assertEqual(order, [2])
        c2 = self.successResultOf(d2)
        self.roundTrip(c2)
        self.assertEqual(order, [2, 3])
        c3 = self.successResultOf(d3)
        self.roundTrip(c3)
        self.assertEqual(order, [2, 3, 4])
        self.successResultOf(d4)
        self.assertEqual(self.endpoint.connects, 1)

    def test_returnedGoesToOldestWaiter(self) -> None:
        """
        A connection that comes back is handed straight to its key's oldest
        waiter, as a reused connection, without a new connect and without
        going idle.
        """
        self.makePool(maxConnectionsPerHost=1)
        conn = self.getNow()
        d2 = self.get()
        self.roundTrip(conn)
        c2 = self.successResultOf(d2)
        self.assertTrue(c2.reused)
        self.assertEqual(c2.key, KEY)
        self.assertEqual(self.endpoint.connects, 1)
        self.assertEqual(self.counts(), (0, 1, 0, 0))
        self.assertEqual(self.stats().reused, 1)
        # And it works.
        self.roundTrip(c2)
        self.assertEqual(self.counts(), (1, 0, 0, 0))

    def test_returnedGoesToOwnKeyFirst(self) -> None:
        """
        Under the global cap, a returned connection serves its own key's
        waiter rather than being evicted for another key.
        """
        self.makePool(maxConnections=1)
        other = self.endpointFor()
        conn = self.getNow()
        dOther = self.get(OTHER_KEY, other)
        dSame = self.get()
        self.roundTrip(conn)
        self.assertTrue(self.successResultOf(dSame).reused)
        self.assertNoResult(dOther)
        self.assertEqual(other.connects, 0)


class CancellationTests(PoolTestCase):
    """
    Cancelling C{getConnection}'s L{Deferred} in each state.
    """

    def test_cancelWaiter(self) -> None:
        """
        Cancelling a waiting L{Deferred} fails it with L{CancelledError} and
        removes the waiter: the connection that comes back goes idle.
        """
        self.makePool(maxConnectionsPerHost=1)
        conn = self.getNow()
        d2 = self.get()
        d3 = self.get()
        d2.cancel()
        self.failureResultOf(d2, CancelledError)
        self.assertEqual(self.stats().waiting, 1)
        d3.cancel()
        self.failureResultOf(d3, CancelledError)
        self.assertEqual(self.stats().waiting, 0)
        self.roundTrip(conn)
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        self.assertEqual(self.endpoint.connects, 1)

    def test_cancelMiddleWaiterKeepsOrder(self) -> None:
        """
        Cancelling a waiter in the middle of the queue keeps the others in
        order.
        """
        self.makePool(maxConnectionsPerHost=1)
        conn = self.getNow()
        d2, d3, d4 = self.get(), self.get(), self.get()
        d3.cancel()
        self.failureResultOf(d3, CancelledError)
        self.roundTrip(conn)
        c2 = self.successResultOf(d2)
        self.assertNoResult(d4)
        self.roundTrip(c2)
        self.successResultOf(d4)

    def test_cancelConnecting(self) -> None:
        """
        Cancelling a L{Deferred} whose connection is being opened cancels the
        endpoint's connect and frees the slot.
        """
        self.makePool(maxConnectionsPerHost=1)
        self.endpoint.autoConnect = False
        d1 = self.get()
        d2 = self.get()
        self.assertEqual(self.endpoint.connects, 1)
        d1.cancel()
        self.assertTrue(self.endpoint.attempts[0].cancelled)
        self.failureResultOf(d1, CancelledError, ConnectingCancelledError)
        settle(self.clock)
        # The freed slot goes to the waiter.
        self.assertEqual(self.endpoint.connects, 2)
        self.endpoint.attempts[1].succeed()
        c2 = self.successResultOf(d2)
        self.assertFalse(c2.reused)
        self.assertEqual(self.counts(), (0, 1, 0, 0))

    def test_cancelAfterHandedOut(self) -> None:
        """
        Cancelling a L{Deferred} that already fired does nothing to the pool.
        """
        self.makePool(maxConnectionsPerHost=1)
        d = self.get()
        conn = self.successResultOf(d)
        d.cancel()
        self.roundTrip(conn)
        self.assertEqual(self.counts(), (1, 0, 0, 0))


class SlotAccountingTests(PoolTestCase):
    """
    Every way a connection ends frees its slot.
    """

    def test_failedConnectFreesSlot(self) -> None:
        """
        A failed connect fails only its own L{Deferred} and frees its slot
        for the next waiter.
        """
        self.makePool(maxConnectionsPerHost=2)
        self.endpoint.autoConnect = False
        d1, d2, d3 = self.get(), self.get(), self.get()
        self.assertEqual(self.endpoint.connects, 2)
        self.endpoint.attempts[0].fail(ConnectionRefusedError())
        self.failureResultOf(d1, ConnectionRefusedError)
        settle(self.clock)
        self.assertNoResult(d2)
        self.assertNoResult(d3)
        self.assertEqual(self.endpoint.connects, 3)
        self.endpoint.attempts[1].succeed()
        self.endpoint.attempts[2].succeed()
        self.assertFalse(self.successResultOf(d2).reused)
        self.assertFalse(self.successResultOf(d3).reused)
        s = self.stats()
        self.assertEqual(s.failed, 1)
        self.assertEqual(s.opened, 2)

    def test_lostInUseFreesSlot(self) -> None:
        """
        A connection lost while in use frees its slot.
        """
        self.makePool(maxConnectionsPerHost=1)
        conn = self.getNow()
        d2 = self.get()
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        self.failureResultOf(rd, ResponseNeverReceived)
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertFalse(self.successResultOf(d2).reused)
        self.assertEqual(self.counts(), (0, 1, 0, 0))

    def test_lostBeforeRequestFreesSlot(self) -> None:
        """
        A connection handed out and lost before any request frees its slot.
        """
        self.makePool(maxConnectionsPerHost=1)
        self.getNow()
        d2 = self.get()
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 2)
        self.successResultOf(d2)

    def test_connectionCloseFreesSlot(self) -> None:
        """
        A response with C{Connection: close} frees the slot; the connection
        is not reused.
        """
        self.makePool(maxConnectionsPerHost=1)
        conn = self.getNow()
        d2 = self.get()
        response = self.roundTrip(conn, close=True)
        self.assertEqual(response.code, 200)
        transport = self.endpoint.attempts[0].transport
        assert transport is not None
        self.assertTrue(transport.closing)
        settle(self.clock)
        c2 = self.successResultOf(d2)
        self.assertFalse(c2.reused)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.counts(), (0, 1, 0, 0))

    def test_nonPersistentObeysLimits(self) -> None:
        """
        C{persistent=False} pools cap connections too; each connection is
        closed after its response and its slot freed.
        """
        self.makePool(persistent=False, maxConnectionsPerHost=2)
        c1, c2 = self.getNow(), self.getNow()
        d3 = self.get()
        self.assertNoResult(d3)
        self.assertEqual(self.endpoint.connects, 2)
        d = c1.request(makeRequest(persistent=False))
        self.endpoint.attempts[0].respond()
        self.successResultOf(d)
        settle(self.clock)
        c3 = self.successResultOf(d3)
        self.assertFalse(c3.reused)
        self.assertEqual(self.endpoint.connects, 3)
        self.assertEqual(self.stats().idle, 0)
        self.assertEqual(self.stats().inUse, 2)
        del c2

    def test_countsBackToZero(self) -> None:
        """
        After several requests and a server close, counts match reality.
        """
        self.makePool(maxConnectionsPerHost=3)
        conns = [self.getNow() for _ in range(3)]
        for conn in conns:
            self.roundTrip(conn)
        self.assertEqual(self.counts(), (3, 0, 0, 0))
        for attempt in self.endpoint.attempts:
            attempt.serverClose()
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.stats().closed.get(CloseReason.SERVER_CLOSED), 3)


class PoolTimeoutTests(PoolTestCase):
    """
    C{poolTimeout} bounds how long C{getConnection} waits for a slot.
    """

    def test_poolTimeout(self) -> None:
        """
        A waiter not served within C{poolTimeout} fails with
        L{PoolTimeoutError} naming the key, the limit and the wait.
        """
        self.makePool(maxConnectionsPerHost=1, poolTimeout=5)
        self.getNow()
        d = self.get()
        self.clock.advance(4.5)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        f = self.failureResultOf(d, PoolTimeoutError)
        err = f.value
        self.assertEqual(err.key, KEY)
        self.assertEqual(err.waited, 5)
        self.assertIn("maxConnectionsPerHost=1", err.limit)
        message = str(err)
        self.assertIn(repr(KEY), message)
        self.assertIn("maxConnectionsPerHost=1", message)
        self.assertIn("5", message)
        self.assertEqual(self.stats().waiting, 0)
        self.assertEqual(self.stats().timedOut, 1)

    def test_poolTimeoutGlobalLimit(self) -> None:
        """
        When the global cap blocks, the error names C{maxConnections}.
        """
        self.makePool(maxConnections=1, poolTimeout=2)
        self.getNow()
        d = self.get(OTHER_KEY, self.endpointFor())
        self.clock.advance(2)
        err = self.failureResultOf(d, PoolTimeoutError).value
        self.assertEqual(err.key, OTHER_KEY)
        self.assertIn("maxConnections=1", str(err))

    def test_servedBeforeTimeout(self) -> None:
        """
        A waiter served in time is not failed later and leaves no timer.
        """
        self.makePool(maxConnectionsPerHost=1, poolTimeout=5, cachedConnectionTimeout=100)
        conn = self.getNow()
        d = self.get()
        self.clock.advance(3)
        self.roundTrip(conn)
        c2 = self.successResultOf(d)
        self.clock.advance(10)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.roundTrip(c2)
        waited = self.stats().waitTime
        self.assertEqual(waited.count, 2)
        self.assertEqual(waited.max, 3)
        self.assertEqual(waited.mean, 1.5)

    def test_noTimeoutWhenSlotFree(self) -> None:
        """
        A request served at once leaves no pool-timeout timer behind.
        """
        self.makePool(poolTimeout=5)
        self.getNow()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timedOutWaiterDoesNotTakeSlot(self) -> None:
        """
        After a waiter timed out, the next returned connection goes to the
        following waiter.
        """
        self.makePool(maxConnectionsPerHost=1, poolTimeout=5)
        conn = self.getNow()
        d2 = self.get()
        self.clock.advance(3)
        d3 = self.get()
        self.clock.advance(2)
        self.failureResultOf(d2, PoolTimeoutError)
        self.roundTrip(conn)
        self.assertTrue(self.successResultOf(d3).reused)


_LIMITS = (
    "maxPersistentPerHost",
    "maxConnectionsPerHost",
    "maxConnections",
    "maxRequestsPerConnection",
)
_TIMES = (
    "cachedConnectionTimeout",
    "poolTimeout",
    "connectTimeout",
    "responseTimeout",
    "readTimeout",
    "maxConnectionAge",
)
_BAD: tuple[Any, ...] = (0, -1, -0.5, "5", True, False, [3])


class ValidationTests(PoolTestCase):
    """
    Bad settings raise L{ValueError} naming the setting, both at
    construction and on assignment.
    """

    def test_badAtConstruction(self) -> None:
        """
        Zero, negative, non-numeric and boolean values are refused by the
        constructor.
        """
        for name in _LIMITS + _TIMES:
            for bad in _BAD:
                with self.assertRaises(ValueError, msg=f"{name}={bad!r}") as cm:
                    HTTPConnectionPool(self.clockOrNew(), **{name: bad})
                self.assertIn(name, str(cm.exception), f"{name}={bad!r}")

    def test_badOnAssignment(self) -> None:
        """
        The same values are refused on assignment, and the old value stays.
        """
        pool = self.makePool()
        for name in _LIMITS + _TIMES:
            before = getattr(pool, name)
            for bad in _BAD:
                with self.assertRaises(ValueError, msg=f"{name}={bad!r}") as cm:
                    setattr(pool, name, bad)
                self.assertIn(name, str(cm.exception), f"{name}={bad!r}")
                self.assertEqual(getattr(pool, name), before)

    def test_nanRefused(self) -> None:
        """
        NaN is not a usable limit or timeout.
        """
        pool = self.makePool()
        for name in _LIMITS + _TIMES:
            with self.assertRaises(ValueError, msg=name):
                setattr(pool, name, float("nan"))

    def test_goodValues(self) -> None:
        """
        Positive numbers are accepted (fractions for times), and C{None}
        disables an optional timeout or limit.
        """
        pool = self.makePool()
        for name in _LIMITS:
            setattr(pool, name, 3)
            self.assertEqual(getattr(pool, name), 3)
        for name in _TIMES:
            setattr(pool, name, 0.25)
            self.assertEqual(getattr(pool, name), 0.25)
        for name in (
            "poolTimeout",
            "connectTimeout",
            "responseTimeout",
            "readTimeout",
            "maxConnectionAge",
            "maxRequestsPerConnection",
        ):
            setattr(pool, name, None)
            self.assertIsNone(getattr(pool, name))
            HTTPConnectionPool(self.clock, **{name: None})

    def test_retryAutomaticallyAssignable(self) -> None:
        """
        C{retryAutomatically} and C{persistent} stay plain settable flags, as
        on Twisted's pool.
        """
        pool = self.makePool()
        pool.retryAutomatically = False
        self.assertIs(pool.retryAutomatically, False)
        pool.persistent = False
        self.assertIs(pool.persistent, False)

    def test_typedSettings(self) -> None:
        """
        pooled_http's own switches take only C{True} or C{False}, and
        C{retryPolicy} only a L{RetryPolicy}, on assignment as at
        construction: each refusal names the setting and keeps the old
        value.
        """
        pool = self.makePool()
        for name in ("lenientHeaders", "logReuse"):
            for bad in ("no", 0, 1, None):
                with self.assertRaises(TypeError, msg=f"{name}={bad!r}") as cm:
                    setattr(pool, name, bad)
                self.assertIn(f"{name} must be True or False", str(cm.exception))
                self.assertIs(getattr(pool, name), False)
        with self.assertRaises(TypeError):
            HTTPConnectionPool(self.clock, lenientHeaders="no")
        policy = pool.retryPolicy
        for bad in (5, "never", None):
            with self.assertRaises(TypeError, msg=repr(bad)) as cm:
                pool.retryPolicy = bad  # type: ignore[assignment]
            self.assertIn("retryPolicy must be a RetryPolicy", str(cm.exception))
            self.assertIs(pool.retryPolicy, policy)
        with self.assertRaises(TypeError):
            HTTPConnectionPool(self.clock, retryPolicy=5)  # type: ignore[arg-type]
        pool.retryPolicy = RetryPolicy(retries=2)
        self.assertEqual(pool.retryPolicy.retries, 2)

    def clockOrNew(self) -> Any:
        """
        A new L{Clock}.
        """
        from twisted.internet.task import Clock

        return Clock()


class BadArgumentTests(PoolTestCase):
    """
    C{getConnection} refuses arguments it cannot work with, naming the key.
    """

    def test_unhashableKey(self) -> None:
        """
        A key that cannot be hashed raises L{TypeError} naming it.
        """
        pool = self.makePool()
        with self.assertRaises(TypeError) as cm:
            pool.getConnection([b"http", b"a.example", 80], self.endpoint)
        self.assertIn("[b'http', b'a.example', 80]", str(cm.exception))
        self.assertIn("hashable", str(cm.exception))

    def test_notAnEndpoint(self) -> None:
        """
        Something without C{connect} is not an endpoint: L{TypeError} naming
        the key, and nothing is left queued.
        """
        pool = self.makePool()
        with self.assertRaises(TypeError) as cm:
            pool.getConnection(KEY, None)  # type: ignore[arg-type]
        self.assertIn(repr(KEY), str(cm.exception))
        self.assertIn("IStreamClientEndpoint", str(cm.exception))
        self.assertEqual(self.counts(), (0, 0, 0, 0))


class SendTests(PoolTestCase):
    """
    The pool's C{_send} (what L{PooledAgent} uses): one Deferred for the
    wait and the response, cancellable in every phase without leaving a
    slot or a connection behind.
    """

    def send(self) -> Any:
        return self.pool._send(KEY, self.endpoint, makeRequest())

    def test_queuedThenServed(self) -> None:
        """
        A request queued behind a busy connection is sent on it once the
        first response is done, and its Deferred fires with its response.
        """
        self.makePool(maxConnectionsPerHost=1)
        first = self.send()
        second = self.send()
        self.assertEqual(self.counts(), (0, 1, 0, 1))
        attempt = self.endpoint.attempts[0]
        attempt.respond()
        self.assertEqual(self.successResultOf(first).code, 200)
        self.assertNoResult(second)
        attempt.respond()
        self.assertEqual(self.successResultOf(second).code, 200)
        self.assertEqual(self.counts(), (1, 0, 0, 0))

    def test_cancelQueued(self) -> None:
        """
        Cancelling a queued request takes it out of the queue: nothing is
        sent for it.
        """
        self.makePool(maxConnectionsPerHost=1)
        first = self.send()
        second = self.send()
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.assertEqual(self.counts(), (0, 1, 0, 0))
        attempt = self.endpoint.attempts[0]
        attempt.respond()
        self.successResultOf(first)
        self.assertEqual(attempt.unanswered, 0)
        self.assertEqual(self.counts(), (1, 0, 0, 0))

    def test_cancelSent(self) -> None:
        """
        Cancelling a request that was queued and then sent cancels the
        request: its connection is dropped and its slot freed.
        """
        self.makePool(maxConnectionsPerHost=1)
        first = self.send()
        second = self.send()
        attempt = self.endpoint.attempts[0]
        attempt.respond()
        self.successResultOf(first)
        self.assertEqual(attempt.unanswered, 1)
        second.cancel()
        self.failureResultOf(second, CancelledError)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        third = self.send()
        self.endpoint.attempts[-1].respond()
        self.assertEqual(self.successResultOf(third).code, 200)

    def test_cancelBeforeStart(self) -> None:
        """
        A queued request cancelled after a connection was handed to it but
        before its turn to send (from the previous response's own
        callbacks) sends nothing, and the connection comes back to the pool
        unused rather than failing the hand-over.
        """
        self.makePool(maxConnectionsPerHost=1)
        first = self.send()
        second = self.send()
        first.addCallback(lambda response: second.cancel())
        attempt = self.endpoint.attempts[0]
        attempt.respond()
        self.failureResultOf(second, CancelledError)
        self.assertEqual(attempt.unanswered, 0)
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        third = self.send()
        attempt.respond()
        self.assertEqual(self.successResultOf(third).code, 200)

    def test_cancelBeforeStartGetConnection(self) -> None:
        """
        The same for a caller of C{getConnection}: a lease whose Deferred
        was cancelled before the hand-over ran is not lost.
        """
        self.makePool(maxConnectionsPerHost=1)
        first = self.getNow().request(makeRequest())
        waiting = self.get()
        first.addCallback(lambda response: waiting.cancel())
        self.endpoint.attempts[0].respond()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.counts(), (1, 0, 0, 0))
