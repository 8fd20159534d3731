"""
The TLS layer of the connections L{pooled_http.PooledAgent} opens:
Twisted's own (C{twisted.protocols.tls.TLSMemoryBIOProtocol}), with its
four data calls into OpenSSL made for less.

Per request and response, Twisted's layer encrypts the request
(C{send}), takes the record out (C{bio_read}), hands OpenSSL the
response (C{bio_write}) and decrypts it (C{recv}); then it calls C{recv}
until that raises C{WantReadError}, and C{bio_read} once more, which
raises too when there is nothing to send.  Each pyOpenSSL call wraps one
OpenSSL function in checks, a fresh 32 KiB buffer and, for the last two,
an exception: about 15 us per request, of which OpenSSL's own work is 5.

Here:
  - the memory buffers are asked how many bytes they hold
    (C{BIO_get_mem_data}) before reading them, and the read is made only
    when there is something to take.  An empty buffer is exactly when
    those reads would raise C{WantReadError}: OpenSSL takes a socket's
    records out of the buffer one at a time (read-ahead is off, and
    pyOpenSSL has no way to turn it on), so a record still to be
    decrypted is always in the buffer; and each read asks for more than
    a record holds, so no part of a decrypted record is left behind;
  - the four calls go to the OpenSSL functions pyOpenSSL itself calls,
    into one reused buffer.  Whenever a function returns anything but
    success, pyOpenSSL's own error handling of that very result runs, so
    the exception (C{WantReadError}, C{ZeroReturnError}, C{SysCallError},
    C{Error}, or one a callback of the context raised) is the one
    pyOpenSSL's method would have raised.  On success pyOpenSSL also asks
    the context's callback helpers for an exception they kept; a callback
    runs inside a handshake, and one that raised fails the handshake, so
    that exception comes with a failure, never with a success.

The connection objects, and everything else about them (the connection
creator, SNI, ALPN, certificate checks, C{getPeerCertificate}), are
pyOpenSSL's and Twisted's as before.  Where the running pyOpenSSL does not
have what this needs (its C{_lib} bindings, a connection's C{_ssl},
C{_into_ssl} and C{_from_ssl}, C{_raise_ssl_error}), or the connection is
not a plain C{OpenSSL.SSL.Connection}, the layer is Twisted's, unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from OpenSSL.SSL import Connection, Error, WantReadError, ZeroReturnError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import (
    BufferingTLSTransport,
    TLSMemoryBIOFactory,
    TLSMemoryBIOProtocol,
)
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["wrapClientTLS"]

#: The largest record's plaintext: Twisted's layer encrypts in pieces of
#: this size.
_RECORD = 2**14

#: Bytes read at most per call, as Twisted's layer asks: more than a
#: record holds.
_READ = 2**15
assert _READ > _RECORD


class _OpenSSL:
    """
    The OpenSSL functions pyOpenSSL calls, and one buffer per thread to
    read into.
    """

    def __init__(self) -> None:
        from OpenSSL.SSL import TLS_METHOD, Context, _ffi, _lib

        self.ffi = _ffi
        self.memData = _lib.BIO_get_mem_data
        self.read = _lib.SSL_read
        self.write = _lib.SSL_write
        self.bioRead = _lib.BIO_read
        self.bioWrite = _lib.BIO_write
        self.null = _ffi.NULL
        self._local = threading.local()
        probe = Connection(Context(TLS_METHOD), None)
        for name in ("_ssl", "_into_ssl", "_from_ssl"):
            if getattr(probe, name, None) is None:
                raise AttributeError(name)
        for name in ("_raise_ssl_error", "_handle_bio_errors"):
            if not callable(getattr(probe, name, None)):
                raise AttributeError(name)
        if self.memData(probe._into_ssl, self.null) != 0:
            raise ValueError("BIO_get_mem_data")

    def buffer(self) -> Any:
        """
        This thread's buffer of L{_READ} bytes.
        """
        try:
            return self._local.buffer
        except AttributeError:
            buffer = self._local.buffer = self.ffi.new("char[]", _READ)
            return buffer


def _openSSL() -> _OpenSSL | None:
    try:
        return _OpenSSL()
    except Exception:  # pragma: no cover - a pyOpenSSL unlike the known ones
        return None


_LIB = _openSSL()


def _direct(connection: Any) -> bool:
    """
    Whether C{connection}'s data calls may go to OpenSSL directly.
    """
    return _LIB is not None and type(connection) is Connection


def _put(write: Any, handle: Any, data: bytes, fail: Any) -> int:
    """
    Hand C{data} to OpenSSL's C{write(handle, data, size)}; a result that
    is not a success goes to pyOpenSSL's C{fail(handle, result)}, which
    raises what pyOpenSSL's own method would.
    """
    result = int(write(handle, data, len(data)))
    if result <= 0:
        fail(handle, result)
    return result


def _take(read: Any, handle: Any, size: int, fail: Any) -> bytes:
    """
    Up to C{size} bytes from OpenSSL's C{read(handle, buffer, size)}, into
    this thread's buffer; a result that is not a success goes to
    pyOpenSSL's C{fail(handle, result)}, as in L{_put}.
    """
    assert _LIB is not None
    buffer = _LIB.buffer()
    result = int(read(handle, buffer, size))
    if result <= 0:
        fail(handle, result)
        return b""  # pragma: no cover - it raised
    return bytes(_LIB.ffi.buffer(buffer, result))


def _send(connection: Any, data: bytes) -> int:
    """
    As C{connection.send(data)}, for a L{_direct} connection.
    """
    if type(data) is not bytes:
        return int(connection.send(data))
    assert _LIB is not None
    return _put(_LIB.write, connection._ssl, data, connection._raise_ssl_error)


def _recv(connection: Any) -> bytes:
    """
    As C{connection.recv(2**15)}, for a L{_direct} connection.
    """
    assert _LIB is not None
    return _take(_LIB.read, connection._ssl, _READ, connection._raise_ssl_error)


def _bioRead(connection: Any, size: int) -> bytes:
    """
    As C{connection.bio_read(size)}, for a L{_direct} connection.
    """
    if size > _READ:
        return bytes(connection.bio_read(size))
    assert _LIB is not None
    return _take(
        _LIB.bioRead, connection._from_ssl, size, connection._handle_bio_errors
    )


def _bioWrite(connection: Any, data: bytes) -> None:
    """
    As C{connection.bio_write(data)}, for a L{_direct} connection.
    """
    if type(data) is not bytes:
        connection.bio_write(data)
        return
    assert _LIB is not None
    _put(_LIB.bioWrite, connection._into_ssl, data, connection._handle_bio_errors)


class _TLSProtocol(BufferingTLSTransport):
    """
    The protocol of Twisted's C{TLSMemoryBIOFactory} (which keeps small
    writes for the end of the reactor's turn, and L{pooled_http._sending}
    knows), with the data calls of L{_direct} connections made for less
    (see the module's description).  Each method is
    C{TLSMemoryBIOProtocol}'s, with the calls replaced.

    @ivar _directCalls: Whether the connection is L{_direct}, once it
        exists.
    """

    _directCalls = False

    def makeConnection(self, transport: Any) -> None:
        BufferingTLSTransport.makeConnection(self, transport)
        self._directCalls = _direct(self._tlsConnection)

    def dataReceived(self, data: bytes) -> None:
        if not (self._directCalls and self._handshakeDone and not self._appSendBuffer):
            TLSMemoryBIOProtocol.dataReceived(self, data)
            return
        _bioWrite(self._tlsConnection, data)
        self._flushReceiveBIO()

    def _flushSendBIO(self) -> None:
        connection = self._tlsConnection
        if not self._directCalls:
            TLSMemoryBIOProtocol._flushSendBIO(self)
            return
        assert _LIB is not None
        size = int(_LIB.memData(connection._from_ssl, _LIB.null))
        if size > 0:
            transport: Any = self.transport
            transport.write(_bioRead(connection, size))

    def _flushReceiveBIO(self) -> None:
        connection = self._tlsConnection
        if not self._directCalls:
            TLSMemoryBIOProtocol._flushReceiveBIO(self)
            return
        assert _LIB is not None
        memData, null = _LIB.memData, _LIB.null
        bio = connection._into_ssl
        while not self._lostTLSConnection:
            if memData(bio, null) <= 0:
                # Where recv() would raise WantReadError.
                break
            try:
                data = _recv(connection)
            except WantReadError:
                # Part of a record: the rest is still to come.
                break
            except ZeroReturnError:
                # The peer's close_notify.
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            except Error:
                self._tlsShutdownFinished(Failure())
            else:
                if not self._aborted:
                    ProtocolWrapper.dataReceived(self, data)
        self._flushSendBIO()

    def _write(self, data: bytes) -> None:
        connection = self._tlsConnection
        if not self._directCalls:
            TLSMemoryBIOProtocol._write(self, data)
            return
        if self._lostTLSConnection:
            return
        done = 0
        size = len(data)
        while done < size:
            piece = (
                data if done == 0 and size <= _RECORD else data[done : done + _RECORD]
            )
            try:
                sent = _send(connection, piece)
            except WantReadError:
                self._bufferedWrite(data[done:])
                break
            except Error:
                self._tlsShutdownFinished(Failure())
                break
            else:
                done += sent
                self._flushSendBIO()


class _TLSFactory(TLSMemoryBIOFactory):
    """
    C{TLSMemoryBIOFactory} of L{_TLSProtocol}s.
    """

    protocol = _TLSProtocol


def _wrappedProtocol(protocol: Any) -> Any:
    return protocol.wrappedProtocol


@implementer(IStreamClientEndpoint)
class _TLSEndpoint:
    """
    TLS by a connection creator over another endpoint.
    """

    def __init__(self, creator: Any, wrapped: IStreamClientEndpoint) -> None:
        self._creator = creator
        self._wrapped: Any = wrapped

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect the wrapped endpoint with TLS over it; fire with
        C{protocolFactory}'s protocol.
        """
        return self._wrapped.connect(
            _TLSFactory(self._creator, True, protocolFactory)
        ).addCallback(_wrappedProtocol)


def wrapClientTLS(
    creator: Any, wrapped: IStreamClientEndpoint
) -> IStreamClientEndpoint:
    """
    As L{twisted.internet.endpoints.wrapClientTLS}: an endpoint that
    connects C{wrapped}, then runs TLS over the connection.

    @param creator: The L{twisted.internet.interfaces.IOpenSSLClientConnectionCreator}
        of the TLS connections.
    @param wrapped: The endpoint the TLS connections run over.
    """
    endpoint: Any = _TLSEndpoint(creator, wrapped)
    return endpoint
