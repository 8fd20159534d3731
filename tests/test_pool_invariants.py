"""
Seeded random walks over the pool's events (requests, connects succeeding
and failing, responses, server closes, cancellations, time passing) on a
L{Clock}, checking after every step that the limits hold, that the pool's
counts match the connections that really exist, that no request waits while
it could be served, and that everything ends cleanly on C{close()}.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pooled_http import HTTPConnectionPool
from tests.support.fakes import ConnectAttempt, FakeEndpoint, makeRequest, settle

KEYS = [(b"http", b"k%d.example" % (i,), 80) for i in range(3)]
PER_HOST = 2
GLOBAL = 4


class _Walk:
    """
    One random walk: the pool, its endpoints, and everything handed out.
    """

    def __init__(self, seed: int, rough: bool = False, **options: Any) -> None:
        self.rough = rough
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = Clock()
        self.pool = HTTPConnectionPool(
            self.clock,
            maxConnectionsPerHost=PER_HOST,
            maxPersistentPerHost=PER_HOST,
            maxConnections=GLOBAL,
            **options,
        )
        self.endpoints = {key: FakeEndpoint(self.clock, autoConnect=False) for key in KEYS}
        self.gets: list[tuple[Any, list[Any]]] = []
        self.fresh: list[Any] = []
        self.requests: list[tuple[Any, list[Any]]] = []
        self.log: list[str] = []
        self.seen: set[int] = set()

    def attempts(self) -> list[ConnectAttempt]:
        """
        Every connection attempt over all endpoints.
        """
        return [a for ep in self.endpoints.values() for a in ep.attempts]

    def capture(self, d: Any) -> list[Any]:
        """
        Keep C{d}'s result in a list (consuming failures).
        """
        box: list[Any] = []
        d.addBoth(box.append)
        return box

    def step(self) -> None:
        """
        Take one random action, then let zero-delay calls run.
        """
        rng = self.rng
        actions = ["get", "get", "get", "succeed", "succeed", "fail", "cancel",
                   "request", "request", "respond", "respond", "respondClose",
                   "serverClose", "advance", "abort"]
        if self.rough:
            actions += ["closeCached", "respondKeepAlive", "cancelRequest",
                        "partial", "garbage", "advance"]
        action = rng.choice(actions)
        self.log.append(action)
        if action == "get":
            key = rng.choice(KEYS)
            d = self.pool.getConnection(key, self.endpoints[key])
            box = self.capture(d)
            self.gets.append((d, box))
        elif action in ("succeed", "fail"):
            pending = [a for a in self.attempts() if not a.done]
            if pending:
                attempt = rng.choice(pending)
                if action == "succeed":
                    attempt.succeed(hangOnClose=self.rough and rng.random() < 0.25)
                else:
                    attempt.fail(ConnectionRefusedError())
        elif action == "cancel":
            waiting = [d for d, box in self.gets if not box]
            if waiting:
                rng.choice(waiting).cancel()
        elif action == "request":
            if self.fresh:
                conn = self.fresh.pop(rng.randrange(len(self.fresh)))
                rd = conn.request(makeRequest())
                self.requests.append((rd, self.capture(rd)))
        elif action in ("respond", "respondClose"):
            awaiting = [a for a in self.attempts() if a.unanswered > 0 and not a.transport.lost]
            if awaiting:
                rng.choice(awaiting).respond(close=action == "respondClose")
        elif action == "serverClose":
            live = [a for a in self.attempts() if a.transport is not None and not a.transport.lost]
            if live:
                rng.choice(live).serverClose()
        elif action == "abort":
            if self.fresh:
                conn = self.fresh.pop(rng.randrange(len(self.fresh)))
                conn.abort().addErrback(lambda f: None)
        elif action == "advance":
            self.clock.advance(rng.choice([0.5, 1, 2, 3]))
        elif action == "closeCached":
            self.capture(self.pool.closeCachedConnections(rng.choice([None] + KEYS)))
        elif action in ("respondKeepAlive", "partial", "garbage"):
            awaiting = [a for a in self.attempts() if a.unanswered > 0 and not a.transport.lost]
            if awaiting:
                attempt = rng.choice(awaiting)
                if action == "respondKeepAlive":
                    attempt.respond(headers={b"Keep-Alive": b"timeout=2, max=2"})
                elif action == "partial":
                    attempt.answered += 1
                    attempt.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                else:
                    attempt.answered += 1
                    attempt.feed(b"NOT HTTP AT ALL\r\n\r\n")
        elif action == "cancelRequest":
            inFlight = [rd for rd, box in self.requests if not box]
            if inFlight:
                rng.choice(inFlight).cancel()
        settle(self.clock)
        # Collect connections handed out in this step.
        for index, (_d, box) in enumerate(self.gets):
            if box and not isinstance(box[0], Failure) and index not in self.seen:
                self.seen.add(index)
                self.fresh.append(box[0])


class InvariantTests(SynchronousTestCase):
    """
    Random walks keep every invariant.
    """

    def check(self, walk: _Walk) -> None:
        """
        Assert every invariant on the walk's current state.
        """
        s = walk.pool.stats()
        context = f"seed {walk.seed} after {walk.log[-12:]}: {walk.pool!r}"
        self.assertLessEqual(s.total, GLOBAL, context)
        for ks in s.perKey.values():
            self.assertLessEqual(ks.total, PER_HOST, context)
        # Sockets, as the network sees them, stay within the limits.
        sockets = 0
        perKeySockets: dict[Any, int] = {}
        for key, ep in walk.endpoints.items():
            open_ = [a for a in ep.attempts if not a.done or (a.transport is not None and not a.transport.lost)]
            self.assertLessEqual(len(open_), PER_HOST, f"{key!r} {context}")
            perKeySockets[key] = len(open_)
            sockets += len(open_)
        self.assertLessEqual(sockets, GLOBAL, context)
        # The pool's counts match the connections that exist.
        live = [
            a for a in walk.attempts() if a.transport is not None and not a.transport.lost
        ]
        if walk.rough:
            self.assertLessEqual(s.idle + s.inUse, len(live), context)
        else:
            self.assertEqual(s.idle + s.inUse, len(live), context)
        pending = [a for a in walk.attempts() if not a.done]
        self.assertEqual(s.connecting, len(pending), context)
        # Nobody waits while they could be served: a key below its own cap
        # waits only when the global cap is reached, and then idle
        # connections of other keys are evicted for it, unless a connection
        # already closing will free a slot for each such key.
        closingSockets = sockets - (s.total - s.closing)
        blocked = 0
        for key, ks in s.perKey.items():
            if ks.waiting == 0:
                continue
            self.assertEqual(ks.idle, 0, context)
            if perKeySockets[key] < PER_HOST:
                self.assertEqual(sockets, GLOBAL, context)
                blocked += 1
        if blocked > closingSockets:
            self.assertEqual(s.idle, 0, context)

    def finish(self, walk: _Walk) -> None:
        """
        Close the pool and assert that everything ended.
        """
        closed = walk.capture(walk.pool.close(timeout=5))
        for attempt in walk.attempts():
            if not attempt.done:
                attempt.fail(ConnectionRefusedError())
        for _ in range(30):
            walk.clock.advance(1)
            settle(walk.clock)
        context = f"seed {walk.seed}: {walk.pool!r} {walk.log[-12:]}"
        self.assertEqual(closed, [None], context)
        for _d, box in walk.gets:
            self.assertEqual(len(box), 1, context)
        for _rd, box in walk.requests:
            self.assertEqual(len(box), 1, context)
        self.assertEqual(walk.pool.stats().total, 0, context)
        self.assertEqual(walk.pool.stats().waiting, 0, context)
        self.assertEqual(walk.clock.getDelayedCalls(), [], context)
        for attempt in walk.attempts():
            if attempt.transport is not None:
                self.assertTrue(attempt.transport.lost, context)

    def walk(self, seeds: range, steps: int, rough: bool = False, **options: Any) -> None:
        """
        Run a walk per seed, checking after every step.
        """
        for seed in seeds:
            walk = _Walk(seed, rough, **options)
            for _ in range(steps):
                walk.step()
                self.check(walk)
            self.finish(walk)

    def test_plain(self) -> None:
        """
        No timeouts: limits, accounting and fairness hold.
        """
        self.walk(range(60), 120)

    def test_withTimeouts(self) -> None:
        """
        With every timeout armed, the same holds and nothing is left on the
        clock at the end.
        """
        self.walk(
            range(60),
            120,
            poolTimeout=4,
            connectTimeout=3,
            responseTimeout=2.5,
            readTimeout=2,
            cachedConnectionTimeout=5,
            maxConnectionAge=7,
            maxRequestsPerConnection=3,
        )

    def test_noRetry(self) -> None:
        """
        Without retries the walk stays consistent too.
        """
        self.walk(range(30), 120, retryAutomatically=False, cachedConnectionTimeout=3)

    def test_rough(self) -> None:
        """
        Peers that never finish closing, partial and malformed responses,
        Keep-Alive limits, cancelled requests and C{closeCachedConnections()}
        mid-walk: sockets stay within the limits and everything ends.
        """
        self.walk(
            range(80),
            150,
            rough=True,
            poolTimeout=4,
            connectTimeout=3,
            responseTimeout=2.5,
            readTimeout=2,
            cachedConnectionTimeout=5,
        )

    def test_roughNoTimeouts(self) -> None:
        """
        The same without any timeout but the idle one.
        """
        self.walk(range(60), 150, rough=True, cachedConnectionTimeout=4)
