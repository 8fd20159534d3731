"""
Sending a request's bytes at once.

A Twisted TCP transport's C{write()} only buffers: the bytes go out on the
reactor's next turn, after two C{epoll_ctl} calls (start writing, stop
writing) and a write event of their own.  For a request head that is one
more turn of the reactor per request than the socket needs.  L{sendNow}
hands the bytes to the socket straight away when nothing else is waiting to
be written on it, and leaves whatever the socket did not take (and every
transport it does not know, TLS included) to the transport's own
C{write()}, so the order of bytes and every error path stay the
transport's.

This is the one module that knows the inside of Twisted's TCP transport
(its buffers and C{writeSomeData}); it checks for each attribute it reads
and falls back to C{write()} when one is missing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sendNow"]


def _directClass(transport: Any) -> bool:
    """
    Whether C{transport} is a plain (not TLS) Twisted TCP connection whose
    buffers L{sendNow} knows.
    """
    try:
        from twisted.internet.tcp import Connection
    except ImportError:  # pragma: no cover - a reactor without tcp
        return False
    return (
        isinstance(transport, Connection)
        and hasattr(transport, "_tempDataBuffer")
        and hasattr(transport, "dataBuffer")
        and callable(getattr(transport, "writeSomeData", None))
    )


# Transport class -> whether sendNow may write to its socket directly.
_DIRECT: dict[type, bool] = {}


def sendNow(transport: Any, data: bytes) -> None:
    """
    Write C{data} to C{transport}: to its socket at once if it is a plain
    TCP connection with nothing buffered, else (and for what the socket did
    not take) with C{transport.write}.

    @param transport: The connection's transport.
    @param data: The bytes, in order after everything written before.
    """
    kind = type(transport)
    direct = _DIRECT.get(kind)
    if direct is None:
        direct = _DIRECT[kind] = _directClass(transport)
    if (
        direct
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataBuffer
        and not transport.dataBuffer
    ):
        sent = transport.writeSomeData(data)
        if type(sent) is int and sent > 0:
            if sent == len(data):
                return
            data = data[sent:]
        # Nothing taken (the socket is full) or an error: the transport
        # buffers the rest, and its next write turn meets the same error.
    transport.write(data)
