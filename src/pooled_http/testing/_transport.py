"""
The in-memory transports the pool's real connections and the scripted servers talk over.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.base import DelayedCall
from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
)
from twisted.internet.interfaces import (
    IConsumer,
    IPushProducer,
    ITransport,
)
from twisted.python.failure import Failure
from zope.interface import implementer

if TYPE_CHECKING:  # pragma: no cover

    from ._network import MemoryNetwork




MAX_FLUSH_TURNS = 10000


class _NetworkCall:
    """
    A callable scheduled by the in-memory network, marked so that
    L{assertPoolAtRest} can tell the network's own timers from the pool's.
    """

    def __init__(self, function: Callable[[], object]) -> None:
        self.function = function
        self.__qualname__ = getattr(function, "__qualname__", repr(function))

    def __call__(self) -> None:
        self.function()


class _EndOfStream:
    """
    A marker queued after the last bytes of a stream: C{CLOSE} is an orderly
    close (the reader sees L{ConnectionDone}), C{RESET} a reset (it sees
    L{ConnectionLost}).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_CLOSE = _EndOfStream("close")
_RESET = _EndOfStream("reset")

# A queued piece of a stream: bytes (with an optional drip rate as
# (bytesPerTick, tickSeconds)) or an end-of-stream marker.
_Item = tuple["bytes | _EndOfStream", "tuple[int, float] | None"]


@implementer(ITransport, IConsumer, IPushProducer)
class _MemoryTransport:
    """
    One end of an in-memory connection.  Bytes written here reach the peer
    on a later turn of the network's clock; C{loseConnection} and
    C{abortConnection} end the connection on both sides as TCP does.

    @ivar disconnecting: Whether this end has started to close.
    @ivar disconnected: Whether this end's protocol has seen
        C{connectionLost}.
    """

    disconnecting = False
    disconnected = False

    def __init__(
        self, network: MemoryNetwork, protocol: Any, host: Any, peer: Any
    ) -> None:
        self._network = network
        self.protocol = protocol
        self._host = host
        self._peerAddress = peer
        self.peer: _MemoryTransport | None = None
        self._inbox: deque[_Item] = deque()
        self._readPaused = False
        self._delivery: DelayedCall | None = None
        self._producer: Any = None
        self._streaming = True
        # Called with each chunk this end writes, before it is queued for
        # the peer; the server side puts its fault script here.
        self.outgoing: Callable[[_Item], list[_Item]] = lambda item: [item]
        self.onLost: Callable[[Failure], None] = lambda reason: None

    # ITransport

    def write(self, data: bytes) -> None:
        """
        Send C{data} to the peer (dropped once this end is closing).
        """
        if self.disconnecting or self.disconnected or not data:
            return
        self._send((bytes(data), None))

    def writeSequence(self, data: Any) -> None:
        """
        Send every chunk of C{data}.
        """
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """
        Close after the bytes already written: the peer reads them, then
        sees L{ConnectionDone}; this end sees it too.
        """
        if self.disconnecting or self.disconnected:
            return
        self.disconnecting = True
        self._send((_CLOSE, None))
        self._network.callLater(0, self._lose, Failure(ConnectionDone()))

    def abortConnection(self) -> None:
        """
        Reset the connection: bytes not yet read are dropped, this end sees
        L{ConnectionAborted}, the peer L{ConnectionLost}.
        """
        if self.disconnected:
            return
        self.disconnecting = True
        peer = self.peer
        if peer is not None and not peer.disconnected:
            peer._inbox.clear()
            peer._inbox.append((_RESET, None))
            peer._kick()
        self._network.callLater(0, self._lose, Failure(ConnectionAborted()))

    def getPeer(self) -> Any:
        """
        The address of the other end.
        """
        return self._peerAddress

    def getHost(self) -> Any:
        """
        The address of this end.
        """
        return self._host

    # IConsumer

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        Take a producer that writes to this transport; a pull producer is
        asked for more on each turn of the clock.
        """
        self._producer = producer
        self._streaming = streaming
        if not streaming:
            self._network.callLater(0, self._pull, producer)

    def unregisterProducer(self) -> None:
        """
        Forget the producer.
        """
        self._producer = None

    def _pull(self, producer: Any) -> None:
        if self._producer is producer and not self.disconnected:
            producer.resumeProducing()
            if self._producer is producer:
                self._network.callLater(0, self._pull, producer)

    # IPushProducer: the protocol pausing what it reads.

    def pauseProducing(self) -> None:
        """
        Stop delivering received bytes until L{resumeProducing}.
        """
        self._readPaused = True
        if self._delivery is not None and self._delivery.active():
            self._delivery.cancel()
        self._delivery = None

    def resumeProducing(self) -> None:
        """
        Deliver received bytes again.
        """
        self._readPaused = False
        self._kick()

    def stopProducing(self) -> None:
        """
        Close the connection, as a TCP transport does.
        """
        self.loseConnection()

    # Moving bytes

    def _send(self, item: _Item) -> None:
        peer = self.peer
        if peer is None or peer.disconnected:
            return
        for piece in self.outgoing(item):
            peer._receive(piece)

    def _receive(self, item: _Item) -> None:
        if self.disconnected:
            return
        self._inbox.append(item)
        self._kick()

    def _kick(self, delay: float = 0.0) -> None:
        if (
            self._readPaused
            or self.disconnected
            or not self._inbox
            or (self._delivery is not None and self._delivery.active())
        ):
            return
        self._delivery = self._network.callLater(delay, self._deliver)

    def _deliver(self) -> None:
        self._delivery = None
        if self._readPaused or self.disconnected or not self._inbox:
            return
        data, drip = self._inbox.popleft()
        if isinstance(data, _EndOfStream):
            if data is _RESET:
                self._lose(Failure(ConnectionLost("Connection reset by peer")))
            else:
                self._lose(Failure(ConnectionDone()))
            return
        if drip is not None:
            size, tick = drip
            data, rest = data[:size], data[size:]
            if rest:
                self._inbox.appendleft((rest, drip))
            self.protocol.dataReceived(data)
            self._kick(tick)
            return
        # Everything queued without a drip rate, up to the next marker.
        chunks = [data]
        while self._inbox:
            nextData, nextDrip = self._inbox[0]
            if isinstance(nextData, _EndOfStream) or nextDrip is not None:
                break
            self._inbox.popleft()
            chunks.append(nextData)
        self.protocol.dataReceived(b"".join(chunks))
        self._kick()

    def _lose(self, reason: Failure) -> None:
        if self.disconnected:
            return
        self.disconnecting = True
        self.disconnected = True
        self._inbox.clear()
        self._producer = None
        if self._delivery is not None and self._delivery.active():
            self._delivery.cancel()
        self._delivery = None
        self.onLost(reason)
        self.protocol.connectionLost(reason)
