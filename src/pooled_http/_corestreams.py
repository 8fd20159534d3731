"""
The part of the pool's policy state (L{pooled_http._core.PoolCore}) that
keeps the books of multiplexed (HTTP/2) connections: how many requests
each one may carry (its capacity), how many it carries, which ones have
room, and what happens when one is done or the capacity changes.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ._coretypes import Action, ActionKind, Bucket, WaiterState
from .stats import CloseReason

__all__ = ["StreamBooks"]


class StreamBooks:
    """
    The stream books of L{pooled_http._core.PoolCore} (a mixin of it).
    """

    buckets: dict[Hashable, Bucket]
    closed: bool

    def _settle(self, bucket: Bucket, actions: list[Action]) -> None:
        raise NotImplementedError

    def _close(
        self, bucket: Bucket, connection: Any, reason: str, actions: list[Action]
    ) -> None:
        raise NotImplementedError

    def _unidle(self, bucket: Bucket, connection: Any) -> None:
        raise NotImplementedError

    def _reuse(self, bucket: Bucket) -> None:
        raise NotImplementedError

    def capacityChanged(self, connection: Any, capacity: int) -> list[Action]:
        """
        A multiplexed connection can now carry C{capacity} requests at once
        (the server changed its settings), or none (C{0}: it is going away;
        it is closed once its last request is done).
        """
        actions: list[Action] = []
        bucket = self.buckets.get(connection.key)
        if bucket is None or connection not in bucket.capacity:
            return actions
        bucket.capacity[connection] = capacity
        if connection in bucket.idle and capacity == 0:
            self._unidle(bucket, connection)
            self._close(bucket, connection, CloseReason.SERVER_CLOSED, actions)
        elif connection in bucket.inUse:
            self._updateSpare(bucket, connection)
        self._settle(bucket, actions)
        return actions

    def _serveFromSpare(self, bucket: Bucket, actions: list[Action]) -> bool:
        """
        Hand the oldest waiter that a multiplexed connection with room can
        serve that connection; return whether one was found.  A retry that
        wants a newer connection than any with room does not hold up the
        waiters behind it.
        """
        spare = bucket.spare
        for connection in list(spare):
            if connection.stale:
                # Going away: its loss is reported soon.
                del spare[connection]
        if not spare:
            return False
        newest = max(connection.serial for connection in spare)
        for waiter in bucket.waiters:
            if waiter.minSerial > newest:
                continue
            for connection in spare:
                if connection.serial >= waiter.minSerial:
                    bucket.waiters.remove(waiter)
                    waiter.state = WaiterState.DONE
                    self._addStream(bucket, connection)
                    self._reuse(bucket)
                    actions.append(Action(ActionKind.HAND, waiter, connection, True))
                    return True
        return False

    def _addStream(self, bucket: Bucket, connection: Any) -> None:
        """
        One more request on a multiplexed connection in use.
        """
        bucket.streams[connection] = bucket.streams.get(connection, 0) + 1
        self._updateSpare(bucket, connection)

    def _updateSpare(self, bucket: Bucket, connection: Any) -> None:
        if bucket.streams.get(connection, 0) < bucket.capacity[connection]:
            bucket.spare[connection] = None
        else:
            bucket.spare.pop(connection, None)

    def _endStream(
        self,
        bucket: Bucket,
        connection: Any,
        reusable: bool,
        reason: str,
        actions: list[Action],
    ) -> bool:
        """
        One request on a multiplexed connection is done.  Return whether
        that is all (other requests are still in flight on it); if it was
        the last one, the caller goes on as for a connection come back.
        """
        if not reusable or self.closed:
            # It takes no new request.
            bucket.capacity[connection] = 0
        left = bucket.streams.get(connection, 1) - 1
        if left > 0:
            bucket.streams[connection] = left
            self._updateSpare(bucket, connection)
            self._settle(bucket, actions)
            return True
        bucket.streams.pop(connection, None)
        bucket.spare.pop(connection, None)
        if bucket.capacity[connection] == 0:
            bucket.inUse.discard(connection)
            self._close(
                bucket, connection, reason or CloseReason.SERVER_CLOSED, actions
            )
            self._settle(bucket, actions)
            return True
        return False

    def _forgetStreams(self, bucket: Bucket, connection: Any) -> None:
        bucket.capacity.pop(connection, None)
        bucket.streams.pop(connection, None)
        bucket.spare.pop(connection, None)
