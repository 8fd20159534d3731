"""
The response of an L{pooled_http._http11.HTTP11Connection}: the
L{IResponse} a request's Deferred fires with, which is also the transport
its body protocol is given, and the delivery of the body (kept until
C{deliverBody}, with back-pressure on the connection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import AlreadyCalledError
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from zope.interface import implementer

if TYPE_CHECKING:
    from ._http11 import HTTP11Connection

__all__ = ["BODY_BUFFER_LIMIT", "RESPONSE_DONE", "connectionTransport"]

_log = Logger()

#: Bytes of a response body kept before C{deliverBody} is called (or while
#: its protocol has paused it) before the transport stops reading.
BODY_BUFFER_LIMIT = 65536

#: One shared end-of-body reason (HTTP/1.1 and HTTP/2): it carries no
#: traceback and nothing in it changes, so every response may be told with
#: the same object.
RESPONSE_DONE = Failure(ResponseDone("Response body fully received"))


def connectionTransport(response: IResponse) -> Any:
    """
    The transport of the connection a response of a pooled_http connection
    came on (HTTP/1.1 on llhttp or on Twisted's protocol, or HTTP/2), for
    its peer's address and certificate: readable from when the request's
    Deferred fires with the response until its body is over (for a
    response whose body was over before it came, while that Deferred's
    callbacks run), so that no response keeps a closed connection's
    transport alive.

    @return: The transport, or L{None} after that, or for a response of
        something else.
    """
    return getattr(response, "connectionTransport", None)


@implementer(IResponse, IPushProducer)
class _Response:
    """
    One response: the L{IResponse} a request's Deferred fires with, and the
    transport its body protocol is given (pause, resume, stop, abort).

    Body bytes that arrive before L{deliverBody} are kept, and the
    connection stops reading once L{BODY_BUFFER_LIMIT} of them wait.
    """

    __slots__ = (
        "version",
        "code",
        "phrase",
        "headers",
        "length",
        "request",
        "previousResponse",
        "connectionTransport",
        "_connection",
        "_protocol",
        "_buffer",
        "_buffered",
        "_ended",
        "_paused",
        "_abandoned",
        "_delivered",
        "__weakref__",
    )

    # Twisted's transport proxy says so too: the body protocol keeps
    # getting bytes until the connection is gone.
    disconnecting = False

    def __init__(
        self,
        connection: HTTP11Connection,
        version: tuple[bytes, int, int],
        code: int,
        phrase: bytes,
        headers: Headers,
        length: int | object,
        request: Any,
        transport: Any = None,
    ) -> None:
        self.version = version
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.length = length
        self.request = request
        self.previousResponse: IResponse | None = None
        self.connectionTransport: Any = transport
        self._connection: HTTP11Connection | None = connection
        self._protocol: Any = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._ended: Failure | None = None
        self._paused = False
        self._abandoned = False
        self._delivered = False

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.phrase!r} length={self.length!r}>"

    def setPreviousResponse(self, response: IResponse) -> None:
        """
        Set the response this one was redirected from.
        """
        self.previousResponse = response

    def deliverBody(self, protocol: Any) -> None:
        """
        Hand the body to C{protocol}: its C{makeConnection} gets this
        response as transport, then the bytes kept so far, then
        C{connectionLost} once the body is done.

        @raise RuntimeError: If a protocol was already given.
        """
        if self._delivered:
            if self._protocol is None:
                raise RuntimeError("Response body already delivered")
            raise RuntimeError(f"Response already has protocol {self._protocol!r}")
        self._delivered = True
        self._protocol = protocol
        protocol.makeConnection(self)
        buffered, self._buffer = self._buffer, []
        self._buffered = 0
        for data in buffered:
            protocol.dataReceived(data)
        ended = self._ended
        if ended is not None:
            self._ended = None
            self._protocol = None
            protocol.connectionLost(ended)
            return
        self._updateReading()

    def _bodyData(self, data: bytes) -> None:
        protocol = self._protocol
        if protocol is not None:
            protocol.dataReceived(data)
            return
        if self._connection is None:
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > BODY_BUFFER_LIMIT:
            self._updateReading()

    def _end(self, reason: Failure, handedOver: bool = True) -> None:
        """
        The body is over, for C{reason}: tell the protocol, or keep the
        reason for L{deliverBody}.

        @param handedOver: Whether the request's Deferred has fired with
            this response; if not, its caller lets C{connectionTransport}
            go once it has.
        """
        if handedOver:
            self.connectionTransport = None
        if self._connection is None:
            return
        self._connection = None
        protocol = self._protocol
        if protocol is None:
            self._ended = reason
            return
        # As Twisted's response: the protocol, whose transport this is, is
        # let go once it has heard the end (no reference cycle is left).
        self._protocol = None
        try:
            protocol.connectionLost(reason)
        except AlreadyCalledError:
            # readBody's protocol fails its Deferred again after the caller
            # cancelled it (which is what aborted the connection): nothing
            # is lost by ignoring that.
            if not self._abandoned:
                _log.failure("body protocol {protocol!r} failed", protocol=protocol)
        except Exception:
            _log.failure("body protocol {protocol!r} failed", protocol=protocol)

    def _updateReading(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if self._paused or (
            self._protocol is None and self._buffered > BODY_BUFFER_LIMIT
        ):
            connection._pauseReading()
        else:
            connection._resumeReading()

    # The body protocol's transport

    def pauseProducing(self) -> None:
        """
        Stop reading from the connection until L{resumeProducing}.
        """
        self._paused = True
        self._updateReading()

    def resumeProducing(self) -> None:
        """
        Read from the connection again.
        """
        self._paused = False
        self._updateReading()

    def stopProducing(self) -> None:
        """
        The body is not wanted: drop the connection.
        """
        self.abortConnection()

    def loseConnection(self) -> None:
        """
        The body is not wanted: drop the connection.
        """
        self.abortConnection()

    def abortConnection(self) -> None:
        """
        Drop the connection at once, if this response is still using it
        (cancelling L{twisted.web.client.readBody} comes here).
        """
        connection = self._connection
        if connection is not None:
            self._abandoned = True
            connection._abortResponse(self)
