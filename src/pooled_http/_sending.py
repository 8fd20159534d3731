"""
Sending a request's bytes at once.

A Twisted TCP transport's C{write()} only buffers: the bytes go out on the
reactor's next turn, after two C{epoll_ctl} calls (start writing, stop
writing) and a write event of their own.  Twisted's TLS transport first
keeps small writes for a zero-delay timer, then encrypts them into the TCP
transport's buffer: two more turns.  For a request head, written whole in
one call, that is one or two turns of the reactor per request more than
the socket needs.

L{sendNow} hands the bytes on straight away when nothing else is waiting
to be written before them: a plain TCP connection's socket takes them (what
it does not take goes to the transport's own C{write()}); a TLS layer
encrypts them at once and its TCP transport writes them, as the reactor's
next turn would.  Any other transport, or any state it does not know, gets
the transport's own C{write()}, so the order of bytes and every error path
stay the transport's.

This is the one module that knows the inside of Twisted's transports (the
TCP buffers and C{writeSomeData}, the TLS layer's write aggregator); it
checks each class once for what it reads and falls back to C{write()}
otherwise.

L{TurnBatch} sends the heads of one reactor turn together when several
requests are in flight, once the turn's events are all handled.  A client that reads several responses in one turn
(its connections all busy) would otherwise write each next request as it
goes, and a server that answers faster than the client reads wakes for
every one of them (in the kernel, the dearest part of a send on loopback);
written back to back, they find it awake.  With fewer requests in flight
the gain is smaller than the zero-delay timer that ends a turn, and heads
go at once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

__all__ = ["TurnBatch", "sendNow", "turnBatch"]

_TCP = "tcp"
_TLS = "tls"

# Twisted's TLS layer, once a transport of it has been seen.
_TLSMemoryBIOProtocol: Any = None


def _kindOf(transport: Any) -> str | None:
    """
    Whether C{transport} is a plain Twisted TCP connection (L{_TCP}), a
    buffering TLS layer over one (L{_TLS}), or neither (L{None}).
    """
    try:
        from twisted.internet.tcp import Connection
        from twisted.protocols.tls import TLSMemoryBIOProtocol
    except ImportError:  # pragma: no cover - a reactor without tcp
        return None
    if (
        isinstance(transport, Connection)
        and isinstance(getattr(transport, "_tempDataBuffer", None), list)
        and hasattr(transport, "dataBuffer")
        and callable(getattr(transport, "writeSomeData", None))
        and callable(getattr(transport, "doWrite", None))
    ):
        return _TCP
    aggregator = getattr(transport, "_aggregator", None)
    if (
        isinstance(transport, TLSMemoryBIOProtocol)
        and isinstance(getattr(aggregator, "_buffer", None), list)
        # Its write() is the aggregator's, which would keep the bytes for a
        # zero-delay timer.
        and getattr(transport, "write", None) == getattr(aggregator, "write", None)
    ):
        global _TLSMemoryBIOProtocol
        _TLSMemoryBIOProtocol = TLSMemoryBIOProtocol
        return _TLS
    return None


# Transport class -> what sendNow knows of it.
_KINDS: dict[type, str | None] = {}


def _kind(transport: Any) -> str | None:
    kind = type(transport)
    try:
        return _KINDS[kind]
    except KeyError:
        found = _KINDS[kind] = _kindOf(transport)
        return found


def _idleTCP(tcp: Any) -> bool:
    """
    Whether a TCP transport is connected, staying so, and has nothing
    buffered.
    """
    return bool(
        not tcp.TLS
        and tcp.connected
        and not tcp.disconnecting
        and not tcp._writeDisconnecting
        and not tcp._writeDisconnected
        and not tcp._tempDataBuffer
        and not tcp.dataBuffer
    )


def _sendTCP(tcp: Any, data: bytes, write: Callable[[bytes], object]) -> None:
    """
    Hand C{data} to an idle TCP socket at once; what it does not take (or
    all of it, when something is buffered already) goes to C{write}, the
    transport's own buffering C{write()}.
    """
    if _idleTCP(tcp):
        sent = tcp.writeSomeData(data)
        if type(sent) is int and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
        # Nothing taken (the socket is full) or an error: the transport
        # buffers the rest, and its next write turn meets the same error.
    write(data)


def sendNow(transport: Any, data: bytes) -> None:
    """
    Write C{data} to C{transport} now rather than on the reactor's next
    turn when nothing written before is still waiting; else (and for what
    the socket did not take) with C{transport.write}.

    @param transport: The connection's transport.
    @param data: The bytes, in order after everything written before.
    """
    kind = _kind(transport)
    if kind is _TCP:
        # _sendTCP, written out: this runs for every request.
        if _idleTCP(transport):
            sent = transport.writeSomeData(data)
            if type(sent) is int and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
        transport.write(data)
        return
    if kind is _TLS:
        tcp = transport.transport
        if (
            not transport._aggregator._buffer
            and not transport.disconnecting
            and _kind(tcp) is _TCP
            and _idleTCP(tcp)
            and tcp.producer is None
        ):
            # Encrypt now (what the aggregator's timer would do), and let
            # the TCP socket take the records at once, as L{_TCP} above
            # (for this one call the TCP transport's write() is that):
            # without the two epoll_ctl calls and the write turn that
            # buffering them would cost.  What the socket does not take,
            # and any error, goes to the TCP transport's buffer, which the
            # reactor writes (or meets the error again and closes it).
            attributes = tcp.__dict__
            if "write" in attributes:
                # Someone else's write() is on it: theirs it is.
                _TLSMemoryBIOProtocol.write(transport, data)
            else:
                buffered = type(tcp).write.__get__(tcp)
                attributes["write"] = partial(_sendTCP, tcp, write=buffered)
                try:
                    _TLSMemoryBIOProtocol.write(transport, data)
                finally:
                    del attributes["write"]
            if tcp._tempDataBuffer and not tcp.disconnecting:
                tcp.doWrite()
            return
    transport.write(data)


class TurnBatch:
    """
    The request heads written to real transports in one turn of a reactor,
    sent together (L{sendNow}, each) when the turn ends: a zero-delay timer,
    which runs once the events the reactor polled are handled.

    Only a head after which nothing else is written to the transport until
    its response (a request without a body, on HTTP/1.1) may be kept: bytes
    written to the transport meanwhile would go out before it.  Transports
    L{sendNow} does not know (in-memory ones in tests) are written at once.

    @ivar busy: How many requests are in flight on the reactor's
        HTTP/1.1 connections (each counts itself in and out).
    """

    #: Below this many requests in flight, heads go at once.
    threshold = 4

    __slots__ = ("_reactor", "_kept", "_open", "busy", "__weakref__")

    def __init__(self, reactor: Any) -> None:
        """
        @param reactor: The reactor whose turns these are.
        """
        self._reactor = reactor
        self._kept: list[tuple[Any, bytes, Callable[[Any], bool]]] = []
        self._open = False
        self.busy = 0

    def send(
        self, transport: Any, data: bytes, wanted: Callable[[Any], bool]
    ) -> None:
        """
        Write a request head to C{transport}: when the turn ends, if
        C{wanted(transport)} says it still is (the request may have been
        cancelled meanwhile); now with fewer than C{threshold} requests in
        flight, or to a transport L{sendNow} does not know.

        @param transport: The connection's transport.
        @param data: The whole request (nothing follows it on C{transport}
            before its response).
        @param wanted: Asked at the turn's end whether to write it.
        """
        if self._open:
            if _kind(transport) is not None:
                self._kept.append((transport, data, wanted))
                return
        elif self.busy >= self.threshold and _kind(transport) is not None:
            self._open = True
            self._reactor.callLater(0, self._endTurn)
            self._kept.append((transport, data, wanted))
            return
        sendNow(transport, data)

    def _endTurn(self) -> None:
        """
        The turn is over: send what it kept and is still wanted, in order.
        """
        self._open = False
        kept = self._kept
        if not kept:
            return
        self._kept = []
        for transport, data, wanted in kept:
            if wanted(transport):
                sendNow(transport, data)


# Reactor -> its batch.
_BATCHES: WeakKeyDictionary[Any, TurnBatch] = WeakKeyDictionary()


def turnBatch(reactor: Any) -> TurnBatch:
    """
    The L{TurnBatch} of C{reactor} (one per reactor, made on first use).

    @param reactor: An L{twisted.internet.interfaces.IReactorTime} provider.
    """
    try:
        return _BATCHES[reactor]
    except KeyError:
        batch = _BATCHES[reactor] = TurnBatch(reactor)
        return batch
    except TypeError:  # pragma: no cover - a reactor that cannot be weakly kept
        return TurnBatch(reactor)
