"""
The error taxonomy of L{pooled_http.errors} and L{isTemporaryNetworkError}.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError
from twisted.names import error as nerror
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import (
    ParseError,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)

from pooled_http import errors
from pooled_http.errors import (
    ConnectTimeoutError,
    PoolClosedError,
    PoolError,
    PoolTimeoutError,
    ReadTimeoutError,
    ResponseTimeoutError,
    isTemporaryNetworkError,
)
from tests.support.fakes import KEY


def _wrapped(cls: Any, *reasons: BaseException) -> BaseException:
    return cls([Failure(r) for r in reasons])


def _sslError() -> BaseException:
    from OpenSSL import SSL

    return SSL.Error([("SSL routines", "", "certificate verify failed")])


def _verificationError() -> BaseException:
    from service_identity import VerificationError

    return VerificationError(errors=[])


TEMPORARY: list[tuple[str, Any]] = [
    ("refused (twisted)", lambda: ierror.ConnectionRefusedError()),
    ("refused (builtin)", lambda: ConnectionRefusedError()),
    ("reset (builtin)", lambda: ConnectionResetError()),
    ("lost", lambda: ierror.ConnectionLost()),
    ("aborted", lambda: ierror.ConnectionAborted()),
    ("aborted (builtin)", lambda: ConnectionAbortedError()),
    ("tcp timed out", lambda: ierror.TCPTimedOutError()),
    ("twisted timeout", lambda: ierror.TimeoutError()),
    ("builtin timeout", lambda: TimeoutError()),
    ("connect timeout", lambda: ConnectTimeoutError(KEY, 5)),
    ("response timeout", lambda: ResponseTimeoutError(KEY, 5)),
    ("read timeout", lambda: ReadTimeoutError(KEY, 5)),
    ("pool timeout", lambda: PoolTimeoutError(KEY, "maxConnectionsPerHost=8", 5)),
    ("gaierror EAI_AGAIN", lambda: socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
    ("DNS server failure", lambda: nerror.DNSServerError()),
    ("DNS query timeout", lambda: nerror.DNSQueryTimeoutError(None)),
    (
        "never received: connection dropped",
        lambda: _wrapped(ResponseNeverReceived, ierror.ConnectionDone()),
    ),
    (
        "never received: reset",
        lambda: _wrapped(ResponseNeverReceived, ierror.ConnectionLost()),
    ),
    (
        "transmission failed: lost",
        lambda: _wrapped(RequestTransmissionFailed, ierror.ConnectionLost()),
    ),
]

PERMANENT: list[tuple[str, Any]] = [
    ("TLS error", _sslError),
    ("certificate name mismatch", _verificationError),
    ("no such name (twisted.names)", lambda: nerror.DNSNameError()),
    ("no such name (gaierror)", lambda: socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
    ("parse error", lambda: ParseError("bad status line", b"HTTP/1.1 abc")),
    ("cancelled", lambda: CancelledError()),
    ("connecting cancelled", lambda: ierror.ConnectingCancelledError(None)),
    ("pool closed", lambda: PoolClosedError(KEY)),
    ("never received: cancelled", lambda: _wrapped(ResponseNeverReceived, CancelledError())),
    ("never received: TLS", lambda: _wrapped(ResponseNeverReceived, _sslError())),
    ("response failed: parse error", lambda: _wrapped(ResponseFailed, ParseError("x", b"y"))),
    ("a programming error", lambda: ValueError("bug")),
]


class TemporaryNetworkErrorTests(SynchronousTestCase):
    """
    L{isTemporaryNetworkError} tells failures worth retrying later from the
    rest, for exceptions and for L{Failure}s.
    """

    def test_temporary(self) -> None:
        """
        Refused/reset/aborted connections, every timeout, a temporary DNS
        failure and a response never received are temporary.
        """
        for name, make in TEMPORARY:
            exc = make()
            self.assertIs(isTemporaryNetworkError(exc), True, name)
            self.assertIs(isTemporaryNetworkError(Failure(exc)), True, name)

    def test_permanent(self) -> None:
        """
        TLS and certificate failures, a name that does not exist, malformed
        responses and cancellation are not temporary.
        """
        for name, make in PERMANENT:
            exc = make()
            self.assertIs(isTemporaryNetworkError(exc), False, name)
            self.assertIs(isTemporaryNetworkError(Failure(exc)), False, name)

    def test_dnsLookupError(self) -> None:
        """
        Twisted's L{DNSLookupError}: "no such name" is permanent, a resolver
        timeout is temporary.
        """
        self.assertFalse(
            isTemporaryNetworkError(ierror.DNSLookupError("address 'nx.invalid' not found: [Errno -2] Name or service not known"))
        )
        self.assertTrue(
            isTemporaryNetworkError(ierror.DNSLookupError("Temporary failure in name resolution"))
        )

    def test_mixedWrapped(self) -> None:
        """
        A wrapper is temporary only if every reason it wraps is.
        """
        mixed = ResponseNeverReceived([Failure(ierror.ConnectionLost()), Failure(CancelledError())])
        self.assertFalse(isTemporaryNetworkError(mixed))


class ErrorTypeTests(SynchronousTestCase):
    """
    The pool's errors carry their key and still match the Twisted types
    existing code catches.
    """

    def test_hierarchy(self) -> None:
        """
        Every pool error is a L{PoolError}; timeouts are also the Twisted
        exception callers already handle.
        """
        for cls in (
            PoolTimeoutError,
            PoolClosedError,
            ConnectTimeoutError,
            ResponseTimeoutError,
            ReadTimeoutError,
        ):
            self.assertTrue(issubclass(cls, PoolError), cls)
        self.assertTrue(issubclass(ConnectTimeoutError, ierror.TimeoutError))
        self.assertTrue(issubclass(ResponseTimeoutError, ResponseNeverReceived))
        self.assertTrue(issubclass(ReadTimeoutError, ResponseFailed))

    def test_keyAndMessage(self) -> None:
        """
        Each error carries the key and names it in its message.
        """
        made: list[PoolError] = [
            PoolTimeoutError(KEY, "maxConnectionsPerHost=8", 30),
            PoolClosedError(KEY),
            ConnectTimeoutError(KEY, 30),
            ResponseTimeoutError(KEY, 30),
            ReadTimeoutError(KEY, 30),
        ]
        for err in made:
            self.assertEqual(err.key, KEY, type(err))
            self.assertIn(repr(KEY), str(err), type(err))

    def test_poolTimeoutMessage(self) -> None:
        """
        L{PoolTimeoutError} names the limit and the wait, and says what to do.
        """
        err = PoolTimeoutError(KEY, "maxConnectionsPerHost=8", 30)
        self.assertEqual(err.limit, "maxConnectionsPerHost=8")
        self.assertEqual(err.waited, 30)
        message = str(err)
        self.assertIn("maxConnectionsPerHost=8", message)
        self.assertIn("30", message)
        self.assertIn("raise", message)

    def test_timeoutsNameTheirSetting(self) -> None:
        """
        Timeout messages name the setting and the value.
        """
        self.assertIn("connectTimeout=5", str(ConnectTimeoutError(KEY, 5)))
        self.assertIn("responseTimeout=5", str(ResponseTimeoutError(KEY, 5)))
        self.assertIn("readTimeout=5", str(ReadTimeoutError(KEY, 5)))

    def test_failureCheck(self) -> None:
        """
        C{Failure.check} with the Twisted type finds the pool's timeout, as
        Agent and treq callers already write it.
        """
        f = Failure(ResponseTimeoutError(KEY, 1))
        self.assertIs(f.check(ResponseNeverReceived), ResponseNeverReceived)
        f = Failure(ReadTimeoutError(KEY, 1))
        self.assertIs(f.check(ResponseFailed), ResponseFailed)

    def test_exported(self) -> None:
        """
        The names are exported from L{pooled_http.errors}.
        """
        for name in (
            "PoolError",
            "PoolTimeoutError",
            "PoolClosedError",
            "ConnectTimeoutError",
            "ResponseTimeoutError",
            "ReadTimeoutError",
            "isTemporaryNetworkError",
        ):
            self.assertIn(name, errors.__all__)
