"""
The pool's policy state: every rule about who gets a connection, when a
connection is opened, kept, handed out, evicted or closed lives here, in one
place, with no reactor and no I/O.

L{PoolCore} takes events (a request arrived, a connection came back, a
connection was lost, ...) and returns the list of L{Action}s the pool must
carry out, in order.  The pool (L{pooled_http._pool}) owns Deferreds, timers
and transports; this module only keeps the books.

Vocabulary:
    - a I{slot} is one connection counted against the limits: one being
      opened, one in use, or one idle;
    - a I{waiter} is one C{getConnection} call that has not been answered;
    - the I{ring} is the round-robin order of keys whose oldest waiter could
      be served now if the global limit allowed it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ._coretypes import Action, ActionKind, Bucket, Waiter, WaiterState
from .stats import CloseReason

__all__ = ["PoolCore", "Action", "ActionKind", "Bucket", "Waiter", "WaiterState"]


class PoolCore:
    """
    The books of a connection pool.

    Connections carry three attributes the core reads: C{key}, C{serial}
    (a number that grows with every connection opened) and C{stale}
    (whether its transport is already going away).

    @ivar perHostLimit: Slots one key may occupy.
    @ivar globalLimit: Slots all keys together may occupy.
    @ivar maxIdlePerHost: Idle connections one key may keep.
    @ivar total: Slots occupied over all keys.
    @ivar closingCount: Connections closing over all keys.
    @ivar opened: Connections opened since the core was made.
    @ivar reused: Idle connections handed out again since then.
    @ivar buckets: Map of key to L{Bucket}; a key that holds nothing is
        removed, so memory follows what is open, not what was ever seen.
    @ivar closed: Whether the pool is shut down (no new connections).
    """

    def __init__(
        self, perHostLimit: int, globalLimit: int, maxIdlePerHost: int
    ) -> None:
        self.perHostLimit = perHostLimit
        self.globalLimit = globalLimit
        self.maxIdlePerHost = maxIdlePerHost
        self.total = 0
        self.closingCount = 0
        self.opened = 0
        self.reused = 0
        self.buckets: dict[Hashable, Bucket] = {}
        # Every idle connection, oldest first: the eviction order.
        self._idle: dict[Any, Bucket] = {}
        # Keys whose oldest waiter could be served but for the global limit.
        self._ring: dict[Hashable, None] = {}
        self.closed = False

    # Reading the books

    @property
    def idleCount(self) -> int:
        """
        Idle connections over all keys.
        """
        return len(self._idle)

    def blockingLimit(self, key: Hashable) -> str:
        """
        Name the limit that keeps C{key}'s waiters waiting.
        """
        bucket = self.buckets.get(key)
        if bucket is not None and bucket.total >= self.perHostLimit:
            return f"maxConnectionsPerHost={self.perHostLimit}"
        return f"maxConnections={self.globalLimit}"

    # Events

    def takeIdle(self, key: Hashable) -> Any:
        """
        The fast path of a request: hand out an idle connection of C{key} if
        there is one and nobody is queued ahead, else return L{None}.
        """
        bucket = self.buckets.get(key)
        if bucket is None or not bucket.idle or bucket.waiters or self.closed:
            return None
        connection, _ = bucket.idle.popitem()
        del self._idle[connection]
        if connection.stale:
            # Its close is under way: a request on it would be lost.
            bucket.closing.add(connection)
            self.closingCount += 1
            return None
        bucket.inUse.add(connection)
        bucket.reused += 1
        self.reused += 1
        return connection

    def request(self, waiter: Waiter) -> list[Action]:
        """
        A connection was asked for.  Queue the waiter behind any of its key,
        then serve whoever can be served.
        """
        bucket = self._bucket(waiter.key)
        bucket.waiters.append(waiter)
        actions: list[Action] = []
        self._settle(bucket, actions)
        return actions

    def cancel(self, waiter: Waiter) -> list[Action]:
        """
        A queued waiter gave up (cancelled or timed out).
        """
        actions: list[Action] = []
        bucket = self.buckets.get(waiter.key)
        if bucket is None or waiter.state is not WaiterState.WAITING:
            return actions
        try:
            bucket.waiters.remove(waiter)
        except ValueError:
            return actions
        waiter.state = WaiterState.DONE
        self._settle(bucket, actions)
        return actions

    def abandon(self, waiter: Waiter) -> None:
        """
        A waiter whose connection is being opened went away.  It keeps its
        slot until L{connected} or L{connectFailed}; a connection that
        still comes serves the next in line.
        """
        if waiter.state is WaiterState.CONNECTING:
            waiter.state = WaiterState.DONE

    def connected(self, waiter: Waiter, connection: Any) -> list[Action]:
        """
        The connection opened for C{waiter} is up.  If the waiter has gone
        away meanwhile the connection serves the next in line instead.
        """
        bucket = self._bucket(waiter.key)
        bucket.connecting.discard(waiter)
        bucket.opened += 1
        self.opened += 1
        bucket.inUse.add(connection)
        if waiter.state is WaiterState.CONNECTING:
            waiter.state = WaiterState.DONE
            return [Action(ActionKind.HAND, waiter, connection, False)]
        waiter.state = WaiterState.DONE
        return self.release(connection, True)

    def connectFailed(self, waiter: Waiter) -> list[Action]:
        """
        Opening a connection for C{waiter} failed or was cancelled; its slot
        is free.
        """
        actions: list[Action] = []
        bucket = self.buckets.get(waiter.key)
        waiter.state = WaiterState.DONE
        if bucket is None or waiter not in bucket.connecting:
            return actions
        bucket.connecting.discard(waiter)
        self.total -= 1
        self._settle(bucket, actions)
        return actions

    def release(
        self, connection: Any, reusable: bool, reason: str = ""
    ) -> list[Action]:
        """
        A connection in use is done with its request.  A reusable one goes to
        its key's oldest waiter, or makes room for another key's waiter, or
        waits idle; one that is not reusable is closed for C{reason}.
        """
        actions: list[Action] = []
        bucket = self.buckets.get(connection.key)
        if bucket is None or connection not in bucket.inUse:
            return actions
        bucket.inUse.discard(connection)
        if not reusable or self.closed:
            self._close(bucket, connection, reason or CloseReason.SHUTDOWN, actions)
        elif bucket.waiters and connection.stale:
            # Its close is already under way: a request handed it would be
            # lost.  (One parked instead is looked at again when handed out.)
            self._close(bucket, connection, CloseReason.SERVER_CLOSED, actions)
        elif bucket.waiters:
            waiter = bucket.waiters[0]
            if connection.serial >= waiter.minSerial:
                bucket.waiters.popleft()
                waiter.state = WaiterState.DONE
                bucket.inUse.add(connection)
                bucket.reused += 1
                self.reused += 1
                actions.append(Action(ActionKind.HAND, waiter, connection, True))
            else:
                # A retry wants a connection newer than the one that failed:
                # this one's slot goes to a new connection for it.
                self._close(bucket, connection, CloseReason.EVICTED, actions)
        elif self.total >= self.globalLimit and len(self._ring) > self.closingCount:
            # Another key waits for a slot: this connection makes room.
            self._close(bucket, connection, CloseReason.EVICTED, actions)
        elif bucket.total >= self.perHostLimit or self.total > self.globalLimit:
            # A limit was lowered while it was in use.
            self._close(bucket, connection, CloseReason.TOO_MANY_IDLE, actions)
        else:
            if len(bucket.idle) >= self.maxIdlePerHost:
                oldest = next(iter(bucket.idle))
                self._unidle(bucket, oldest)
                self._close(bucket, oldest, CloseReason.TOO_MANY_IDLE, actions)
            bucket.idle[connection] = None
            self._idle[connection] = bucket
            actions.append(Action(ActionKind.PARK, connection=connection))
            return actions
        self._settle(bucket, actions)
        return actions

    def discard(self, connection: Any, reason: str) -> list[Action]:
        """
        Close a connection that is idle or in use for C{reason}: idle
        timeout, expiry, a timeout, an error, the pool closing.  It keeps its
        slot until L{lost}.
        """
        actions: list[Action] = []
        bucket = self._detach(connection)
        if bucket is not None:
            self._close(bucket, connection, reason, actions)
            self._settle(bucket, actions)
        return actions

    def lost(self, connection: Any) -> list[Action]:
        """
        A connection's transport is gone (closed by us, by the peer, or
        broken).  Its slot is free.
        """
        actions: list[Action] = []
        bucket = self.buckets.get(connection.key)
        if bucket is not None and connection in bucket.closing:
            bucket.closing.discard(connection)
            self.closingCount -= 1
        else:
            bucket = self._detach(connection)
        if bucket is not None:
            self.total -= 1
            self._settle(bucket, actions)
        return actions

    def _detach(self, connection: Any) -> Bucket | None:
        """
        Take a connection out of its bucket's idle or in-use set; return the
        bucket, or L{None} if it was in neither.
        """
        bucket = self.buckets.get(connection.key)
        if bucket is None:
            return None
        if connection in bucket.idle:
            self._unidle(bucket, connection)
        elif connection in bucket.inUse:
            bucket.inUse.discard(connection)
        else:
            return None
        return bucket

    def closeIdle(self, key: Hashable | None, reason: str) -> list[Action]:
        """
        Close every idle connection, or only those of C{key}.
        """
        actions: list[Action] = []
        if key is None:
            victims = list(self._idle.items())
        else:
            bucket = self.buckets.get(key)
            victims = [(c, bucket) for c in bucket.idle] if bucket is not None else []
        for connection, bucket in victims:
            self._unidle(bucket, connection)
            self._close(bucket, connection, reason, actions)
        return actions

    def shutdown(self) -> list[Action]:
        """
        The pool is closing: fail every waiter and close every idle
        connection.  Connections in use are closed as they come back.
        """
        self.closed = True
        actions: list[Action] = []
        for bucket in list(self.buckets.values()):
            while bucket.waiters:
                waiter = bucket.waiters.popleft()
                waiter.state = WaiterState.DONE
                actions.append(Action(ActionKind.FAIL, waiter))
        self._ring.clear()
        actions.extend(self.closeIdle(None, CloseReason.SHUTDOWN))
        for bucket in list(self.buckets.values()):
            self._forgetIfEmpty(bucket)
        return actions

    def limitsChanged(self) -> list[Action]:
        """
        A limit was changed: serve whoever the new limits let through.
        """
        actions: list[Action] = []
        for bucket in list(self.buckets.values()):
            self._touch(bucket)
        self._serveRing(actions)
        return actions

    # Internals

    def _bucket(self, key: Hashable) -> Bucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(key)
        return bucket

    def _reuse(self, bucket: Bucket) -> None:
        bucket.reused += 1
        self.reused += 1

    def _unidle(self, bucket: Bucket, connection: Any) -> None:
        del bucket.idle[connection]
        del self._idle[connection]

    def _close(
        self, bucket: Bucket, connection: Any, reason: str, actions: list[Action]
    ) -> None:
        """
        Move a connection that is neither idle nor in use any more to
        closing, and ask the pool to close it.
        """
        bucket.closing.add(connection)
        self.closingCount += 1
        actions.append(Action(ActionKind.CLOSE, connection=connection, reason=reason))

    def _forgetIfEmpty(self, bucket: Bucket) -> None:
        if bucket.empty():
            self.buckets.pop(bucket.key, None)
            self._ring.pop(bucket.key, None)

    def _settle(self, bucket: Bucket, actions: list[Action]) -> None:
        """
        After an event on C{bucket}: serve its own waiters from its idle
        connections, update its place in the ring, serve the ring, and forget
        the bucket if it is empty.
        """
        # The checks written out here spare the calls that would do
        # nothing on the common paths (no idle connection for a waiter, an
        # empty ring, a key still in use).
        waiters = bucket.waiters
        if waiters and bucket.idle:
            self._serveFromIdle(bucket, actions)
        ring = self._ring
        if (
            waiters
            # Bucket.total, written out: this runs on every request queued.
            and len(bucket.idle)
            + len(bucket.inUse)
            + len(bucket.connecting)
            + len(bucket.closing)
            < self.perHostLimit
            and not self.closed
        ):
            if bucket.key not in ring:
                ring[bucket.key] = None
        elif ring:
            ring.pop(bucket.key, None)
        if ring:
            self._serveRing(actions)
        if not (bucket.inUse or bucket.idle):
            self._forgetIfEmpty(bucket)

    def _serveFromIdle(self, bucket: Bucket, actions: list[Action]) -> None:
        while bucket.waiters and bucket.idle:
            waiter = bucket.waiters[0]
            connection, _ = bucket.idle.popitem()
            del self._idle[connection]
            if connection.stale:
                self._close(bucket, connection, CloseReason.SERVER_CLOSED, actions)
                continue
            if connection.serial < waiter.minSerial:
                # A retry wants a newer connection: this one's slot is its.
                self._close(bucket, connection, CloseReason.EVICTED, actions)
                return
            bucket.waiters.popleft()
            waiter.state = WaiterState.DONE
            bucket.inUse.add(connection)
            self._reuse(bucket)
            actions.append(Action(ActionKind.HAND, waiter, connection, True))

    def _touch(self, bucket: Bucket) -> None:
        """
        Put C{bucket}'s key in the ring if its oldest waiter could be served
        now, take it out otherwise.
        """
        if bucket.waiters and bucket.total < self.perHostLimit and not self.closed:
            if bucket.key not in self._ring:
                self._ring[bucket.key] = None
        else:
            self._ring.pop(bucket.key, None)

    def _serveRing(self, actions: list[Action]) -> None:
        """
        Open connections for waiters, one key at a time in round-robin
        order, while the global limit allows.  When it does not, close idle
        connections of other keys to make room: one per waiting key not
        already promised a closing connection's slot.
        """
        ring = self._ring
        while ring:
            key = next(iter(ring))
            bucket = self.buckets[key]
            if self.total >= self.globalLimit:
                while len(ring) > self.closingCount and self._evictFor(bucket, actions):
                    pass
                return
            del ring[key]
            waiter = bucket.waiters.popleft()
            waiter.state = WaiterState.CONNECTING
            bucket.connecting.add(waiter)
            self.total += 1
            actions.append(Action(ActionKind.CONNECT, waiter))
            if bucket.waiters and bucket.total < self.perHostLimit:
                ring[key] = None

    def _evictFor(self, bucket: Bucket, actions: list[Action]) -> bool:
        """
        Close the oldest idle connection of another key to make room for
        C{bucket}'s waiter.  Return whether one was found.
        """
        for connection, owner in self._idle.items():
            if owner is not bucket:
                self._unidle(owner, connection)
                self._close(owner, connection, CloseReason.EVICTED, actions)
                return True
        return False
