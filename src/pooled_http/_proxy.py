"""
Proxies as endpoint wrappers that compose.

    - L{ProxyURL}: a parsed proxy URL that keeps its credentials out of
      C{repr}, messages and pool keys (a keyed fingerprint stands in for
      them);
    - L{HTTPTunnelEndpoint}: connects to an HTTP(S) proxy with any endpoint
      and asks it for a tunnel with one C{CONNECT};
    - L{SOCKS5Endpoint}: the same through a SOCKS5 proxy (on socksio);
    - L{ProxyEndpointFactory}: builds TCP, then TLS to an C{https://}
      proxy, then the tunnel, then TLS to the target, for any
      L{twisted.web.client.Agent}.

The tunnel is set up inside C{connect()}: its L{Deferred} fires only once
the proxy has said yes, so a pool's C{connectTimeout}, which runs until
C{connect()} fires and then until the target's TLS handshake completes,
covers the whole way; cancelling it aborts the connection to the proxy at
whatever step it is.  After that the tunnel protocol only passes bytes
through: to the protocol above it, the transport is the connection to the
proxy, and TLS to the target (L{wrapClientTLS}) runs over it as it would
over TCP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Hashable
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from .errors import (
    TEMPORARY_CONNECT_STATUSES,
    ProxyAuthenticationRequired,
    ProxyError,
    ProxyProtocolError,
    ProxyUnreachableError,
    ProxyURLError,
    isCancellation,
    isTemporaryNetworkError,
)

__all__ = [
    "ProxyURL",
    "parseProxy",
    "HTTPTunnelEndpoint",
    "SOCKS5Endpoint",
    "ProxyEndpointFactory",
    "ForwardingEndpoint",
]

#: Default ports of the proxy schemes when the URL has none.
DEFAULT_PROXY_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}

#: The most bytes a proxy's answer to C{CONNECT} may take before its end.
MAX_CONNECT_RESPONSE_BYTES = 65536

# The key of the credential fingerprints: new in every process, so a
# fingerprint seen in stats or a log cannot be checked against guesses
# anywhere else.
_FINGERPRINT_KEY = os.urandom(32)

_USERINFO = re.compile(r"^([^:/?#]*://)?([^@/?#]*)@")


def _redact(text: str) -> str:
    """
    A proxy URL as it may be shown: the password replaced by C{***}.
    """

    def hide(match: re.Match[str]) -> str:
        scheme = match.group(1) or ""
        user, colon, _ = match.group(2).partition(":")
        return f"{scheme}{user}{':***' if colon else ''}@"

    return _USERINFO.sub(hide, text, count=1)


class ProxyURL:
    """
    A parsed proxy URL.

    Equal URLs (same scheme, host, port and credentials) are equal and hash
    alike.  C{repr}, L{url} and L{keyPart} never contain the password.

    @ivar scheme: C{"http"}, C{"https"}, C{"socks5"} or C{"socks5h"}.
    @ivar host: The proxy's host name or IP address (IPv6 without brackets).
    @ivar port: The proxy's port.
    @ivar username: The user name from the URL's userinfo, or L{None}.
    """

    __slots__ = ("scheme", "host", "port", "username", "_password", "_hash")

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """
        @param scheme: The scheme.
        @param host: The host.
        @param port: The port.
        @param username: The user name, or L{None} for none.
        @param password: The password, or L{None} for none.
        """
        self.scheme = scheme
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self._hash = hash((scheme, host, port, username, password))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProxyURL):
            return NotImplemented
        return (
            self.scheme,
            self.host,
            self.port,
            self.username,
            self._password,
        ) == (other.scheme, other.host, other.port, other.username, other._password)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"<ProxyURL {self.url}>"

    @property
    def hasCredentials(self) -> bool:
        """
        Whether the URL carries a user name.
        """
        return self.username is not None

    @property
    def url(self) -> str:
        """
        The URL without credentials, e.g. C{"http://127.0.0.1:3128"}.
        """
        host = f"[{self.host}]" if isIPv6Address(self.host) else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def fingerprint(self) -> str | None:
        """
        A keyed hash of the credentials (L{None} without them): tells
        different credentials apart in pool keys without revealing them.
        """
        if self.username is None:
            return None
        secret = f"{self.username}\0{self._password or ''}".encode()
        return hmac.new(_FINGERPRINT_KEY, secret, hashlib.sha256).hexdigest()[:16]

    @property
    def keyPart(self) -> tuple[str, str | None]:
        """
        What a pool key holds of this proxy: C{(url, fingerprint)}.
        """
        return (self.url, self.fingerprint)

    def basicCredentials(self) -> bytes | None:
        """
        The value of a C{Proxy-Authorization} header for this proxy.

        @return: C{b"Basic ..."}, or L{None} without credentials.
        """
        if self.username is None:
            return None
        pair = f"{self.username}:{self._password or ''}".encode()
        return b"Basic " + base64.b64encode(pair)

    def socksCredentials(self) -> tuple[bytes, bytes] | None:
        """
        The user name and password for SOCKS5 authentication.

        @return: C{(username, password)}, or L{None} without credentials.
        """
        if self.username is None:
            return None
        return self.username.encode(), (self._password or "").encode()


def parseProxy(value: str | bytes | ProxyURL, setting: str = "proxy") -> ProxyURL:
    """
    Parse a proxy URL.

    A URL without a scheme is an C{http://} proxy, as for curl.  The port
    defaults to 80 (C{http}), 443 (C{https}) or 1080 (SOCKS).  The userinfo
    may be percent-encoded.

    @param value: The URL, or an already parsed L{ProxyURL}.
    @param setting: The name of the setting, for the error message.
    @return: The parsed URL.
    @raise ProxyURLError: If C{value} is not a usable proxy URL.
    """
    if isinstance(value, ProxyURL):
        return value
    if isinstance(value, bytes):
        raw = value
        try:
            value = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ProxyURLError(
                setting, _redact(raw.decode("ascii", "replace")), "not ASCII"
            ) from None
    if not isinstance(value, str):
        raise ProxyURLError(setting, repr(type(value)), "not a str or bytes URL")
    text = value.strip()
    shown = _redact(text)
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ProxyURLError(
            setting, shown, "the port is not a number 0-65535"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PROXY_PORTS:
        raise ProxyURLError(setting, shown, f"the scheme {scheme!r} is not supported")
    host = parts.hostname
    if not host:
        raise ProxyURLError(setting, shown, "it has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyURLError(setting, shown, "a proxy URL has no path or query")
    if port is None:
        port = DEFAULT_PROXY_PORTS[scheme]
    if port == 0:
        raise ProxyURLError(setting, shown, "port 0 cannot be connected to")
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return ProxyURL(scheme, host, port, username, password)


class _Handshake:
    """
    The client's side of a proxy's handshake, without I/O.

    @ivar proxy: The proxy.
    """

    def __init__(self, proxy: ProxyURL) -> None:
        self.proxy = proxy
        self._buffer = b""

    def start(self) -> bytes:
        """
        @return: The bytes to send first.
        """
        raise NotImplementedError()

    def receive(self, data: bytes) -> tuple[bytes, bytes | None]:
        """
        Take bytes from the proxy.

        @param data: The bytes.
        @return: C{(toSend, rest)}: bytes to send now, and L{None} while the
            handshake goes on or, once the tunnel is up, the bytes that
            followed the proxy's answer (they belong to the target).
        @raise ProxyError: If the proxy said no or spoke garbage.
        """
        raise NotImplementedError()

    def lost(self, reason: Failure) -> ProxyError:
        """
        The error for a connection to the proxy that ended mid-handshake.

        @param reason: Why it ended.
        """
        return ProxyError(
            self.proxy.url,
            f"the connection to the proxy ended before the tunnel was set up "
            f"({type(reason.value).__name__}: {reason.getErrorMessage()})",
            temporary=isTemporaryNetworkError(reason),
        )


def _authority(host: str, port: int) -> bytes:
    if isIPv6Address(host):
        return f"[{host}]:{port}".encode("ascii")
    return f"{host}:{port}".encode("ascii")


class _ConnectHandshake(_Handshake):
    """
    One HTTP C{CONNECT} and its answer.
    """

    def __init__(self, proxy: ProxyURL, host: str, port: int) -> None:
        _Handshake.__init__(self, proxy)
        self._authority = _authority(host, port)

    def start(self) -> bytes:
        lines = [
            b"CONNECT " + self._authority + b" HTTP/1.1",
            b"Host: " + self._authority,
        ]
        credentials = self.proxy.basicCredentials()
        if credentials is not None:
            lines.append(b"Proxy-Authorization: " + credentials)
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def receive(self, data: bytes) -> tuple[bytes, bytes | None]:
        buffer = self._buffer + data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_CONNECT_RESPONSE_BYTES or (
                len(buffer) >= 5 and not buffer.startswith(b"HTTP/")
            ):
                raise self._garbage(buffer)
            self._buffer = buffer
            return b"", None
        head, rest = buffer[:end], buffer[end + 4 :]
        statusLine = head.split(b"\r\n", 1)[0]
        match = re.fullmatch(rb"HTTP/1\.[01] ([0-9]{3})(?: (.*))?", statusLine)
        if match is None:
            raise self._garbage(buffer)
        status = int(match.group(1))
        reason = (match.group(2) or b"").decode("latin-1")
        if 200 <= status < 300:
            return b"", rest
        what = (
            f"CONNECT {self._authority.decode('ascii')} was refused: {status} {reason}"
        )
        if status == 407:
            raise ProxyAuthenticationRequired(
                self.proxy.url,
                what + "; put working credentials in the proxy URL "
                "(scheme://user:password@host:port)",
                status=status,
                reason=reason,
            )
        temporary = status in TEMPORARY_CONNECT_STATUSES
        if temporary:
            what += "; the proxy could not reach the target this time, try again later"
        elif status == 403:
            what += "; the proxy's rules forbid this target or port"
        raise ProxyError(
            self.proxy.url, what, status=status, reason=reason, temporary=temporary
        )

    def _garbage(self, buffer: bytes) -> ProxyProtocolError:
        return ProxyProtocolError(
            self.proxy.url,
            f"the answer to CONNECT is not HTTP (starts {buffer[:32]!r}); "
            "check that the URL's scheme matches the kind of proxy",
        )


# SOCKS5 reply codes that may go away if tried again.
_TEMPORARY_SOCKS_REPLIES = frozenset({1, 3, 4, 5, 6})


class _SOCKS5Handshake(_Handshake):
    """
    A SOCKS5 greeting, the optional username/password exchange and one
    CONNECT command, on socksio's state machine.  socksio parses whole
    messages; this class finds where each one ends.
    """

    def __init__(self, proxy: ProxyURL, host: str, port: int) -> None:
        from socksio import socks5

        _Handshake.__init__(self, proxy)
        self._socks5 = socks5
        self._connection = socks5.SOCKS5Connection()
        self._target = (host, port)

    def start(self) -> bytes:
        socks5 = self._socks5
        method = (
            socks5.SOCKS5AuthMethod.USERNAME_PASSWORD
            if self.proxy.hasCredentials
            else socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED
        )
        self._connection.send(socks5.SOCKS5AuthMethodsRequest([method]))
        return self._connection.data_to_send()

    def _frameLength(self, buffer: bytes) -> int | None:
        """
        How long the next message from the proxy is, or L{None} if that is
        not known yet.
        """
        state = self._connection.state
        if state is not self._socks5.SOCKS5State.CLIENT_AUTHENTICATED:
            return 2
        if len(buffer) < 5:
            return None
        atype = buffer[3]
        if atype == 1:
            return 10
        if atype == 4:
            return 22
        if atype == 3:
            return 7 + buffer[4]
        raise self._garbage(buffer)

    def receive(self, data: bytes) -> tuple[bytes, bytes | None]:
        from socksio.exceptions import ProtocolError

        socks5 = self._socks5
        buffer = self._buffer + data
        toSend = b""
        for _ in range(4):
            length = self._frameLength(buffer)
            if length is None or len(buffer) < length:
                break
            frame, buffer = buffer[:length], buffer[length:]
            if frame[:1] not in (b"\x05", b"\x01"):
                raise self._garbage(frame)
            try:
                event = self._connection.receive_data(frame)
            except ProtocolError:
                raise self._garbage(frame) from None
            if isinstance(event, socks5.SOCKS5AuthReply):
                toSend += self._authReply(event)
            elif isinstance(event, socks5.SOCKS5UsernamePasswordReply):
                if not event.success:
                    raise ProxyAuthenticationRequired(
                        self.proxy.url,
                        "the SOCKS5 proxy refused the user name and password "
                        "of the proxy URL; put working credentials in it",
                    )
                toSend += self._command()
            elif isinstance(event, socks5.SOCKS5Reply):
                return toSend, self._reply(event, buffer)
        self._buffer = buffer
        return toSend, None

    def _authReply(self, event: Any) -> bytes:
        socks5 = self._socks5
        if event.method == socks5.SOCKS5AuthMethod.USERNAME_PASSWORD:
            credentials = self.proxy.socksCredentials()
            if credentials is None:
                raise ProxyProtocolError(
                    self.proxy.url, "chose an authentication method not offered"
                )
            self._connection.send(socks5.SOCKS5UsernamePasswordRequest(*credentials))
            return self._connection.data_to_send()
        if event.method == socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED:
            return self._command()
        if self.proxy.hasCredentials:
            raise ProxyError(
                self.proxy.url,
                "the SOCKS5 proxy accepts no authentication method pooled_http "
                "offers (username/password)",
            )
        raise ProxyAuthenticationRequired(
            self.proxy.url,
            "the SOCKS5 proxy requires authentication; put a user name and "
            "password in the proxy URL (socks5://user:password@host:port)",
        )

    def _command(self) -> bytes:
        socks5 = self._socks5
        self._connection.send(
            socks5.SOCKS5CommandRequest.from_address(
                socks5.SOCKS5Command.CONNECT, self._target
            )
        )
        return self._connection.data_to_send()

    def _reply(self, event: Any, rest: bytes) -> bytes:
        code = event.reply_code
        if code == self._socks5.SOCKS5ReplyCode.SUCCEEDED:
            return rest
        number = code.value[0]
        name = code.name.replace("_", " ").lower()
        host, port = self._target
        raise ProxyError(
            self.proxy.url,
            f"the SOCKS5 proxy refused to connect to {host}:{port}: {number} {name}",
            status=number,
            reason=name,
            temporary=number in _TEMPORARY_SOCKS_REPLIES,
        )

    def _garbage(self, data: bytes) -> ProxyProtocolError:
        return ProxyProtocolError(
            self.proxy.url,
            f"the answer is not SOCKS5 (starts {data[:16]!r}); check that the "
            "URL's scheme matches the kind of proxy",
        )


class _TunnelProtocol(Protocol):
    """
    Runs a handshake over the connection to the proxy, then hands the
    connection to the protocol the caller asked for and passes bytes and
    the end of the connection on to it.

    @ivar app: The caller's protocol, once the tunnel is up.
    """

    app: Any = None
    transport: Any

    def __init__(self, handshake: _Handshake, attempt: _Attempt) -> None:
        self._handshake = handshake
        self._attempt = attempt

    def connectionMade(self) -> None:
        self.transport.write(self._handshake.start())

    def dataReceived(self, data: bytes) -> None:
        app = self.app
        if app is not None:
            app.dataReceived(data)
            return
        result = self._attempt.result
        if result.called:
            return
        try:
            toSend, rest = self._handshake.receive(data)
        except ProxyError as e:
            self._attempt.fail(e)
            self.transport.abortConnection()
            return
        if toSend:
            self.transport.write(toSend)
        if rest is None:
            return
        app = self._attempt.factory.buildProtocol(self.transport.getPeer())
        if app is None:
            self._attempt.fail(
                ProxyError(self._handshake.proxy.url, "the protocol factory built none")
            )
            self.transport.abortConnection()
            return
        self.app = app
        app.makeConnection(self.transport)
        result.callback(app)
        if rest:
            app.dataReceived(rest)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        if self.app is not None:
            self.app.connectionLost(reason)
            return
        if not self._attempt.result.called:
            self._attempt.fail(self._handshake.lost(reason))


class _OneProtocolFactory(ClientFactory):
    """
    A factory that builds one given protocol.
    """

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self._protocol


class _Attempt:
    """
    One call of a tunnel endpoint's C{connect()}: resolve (SOCKS5 with
    local resolution), connect to the proxy, run the handshake.

    @ivar result: What C{connect()} returned.
    @ivar factory: The caller's protocol factory.
    """

    def __init__(self, endpoint: _TunnelEndpointBase, factory: Any) -> None:
        self._endpoint = endpoint
        self.factory = factory
        self.result: Deferred[Any] = Deferred(self._cancel)
        self._pending: Deferred[Any] | None = None
        self._protocol: _TunnelProtocol | None = None

    def _cancel(self, result: Deferred[Any]) -> None:
        pending = self._pending
        if pending is not None:
            # Its errback passes the cancellation on to result.
            pending.cancel()
            return
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abortConnection()

    def wait(self, step: Deferred[Any], then: Callable[[Any], None]) -> None:
        """
        Run one cancellable step.

        @param step: Its L{Deferred}.
        @param then: Called with its result.
        """
        self._pending = step

        def done(value: Any) -> None:
            self._pending = None
            then(value)

        step.addCallbacks(done, self._stepFailed)

    def _stepFailed(self, failure: Failure) -> None:
        self._pending = None
        if self.result.called:
            return
        if self._protocol is None or isCancellation(failure.value or Exception()):
            # Cancelled, or a target name that could not be resolved: not
            # about the proxy.
            self.result.errback(failure)
            return
        self.fail(_unreachable(self._endpoint.proxy, failure))

    def fail(self, error: ProxyError) -> None:
        """
        Fail the attempt with a proxy error, which gets the endpoint's pool
        key.

        @param error: The error.
        """
        if error.key is None:
            error.key = self._endpoint.key
        self.result.errback(Failure(error))

    def connectToProxy(self, host: str) -> None:
        """
        Connect to the proxy, and through it to C{host}.

        @param host: The target host as the proxy is to be told it.
        """
        if self.result.called:
            return
        endpoint = self._endpoint
        protocol = _TunnelProtocol(endpoint.handshake(host), self)
        self._protocol = protocol
        try:
            proxyEndpoint: Any = endpoint.proxyEndpoint
            d = proxyEndpoint.connect(_OneProtocolFactory(protocol))
        except BaseException:
            d = Deferred()
            d.errback(Failure())
        self.wait(d, lambda _: None)


def _unreachable(
    proxy: ProxyURL, failure: Failure, key: Hashable | None = None
) -> ProxyUnreachableError:
    """
    The error for a connection to a proxy that could not be made.

    @param proxy: The proxy.
    @param failure: Why the connection failed.
    @param key: The pool key, or L{None}.
    """
    return ProxyUnreachableError(
        proxy.url,
        f"the proxy could not be connected to "
        f"({type(failure.value).__name__}: {failure.getErrorMessage()}); "
        "check the proxy URL and that the proxy is running",
        key,
        temporary=isTemporaryNetworkError(failure),
    )


@implementer(IStreamClientEndpoint)
class ForwardingEndpoint:
    """
    The endpoint of connections that carry requests to an HTTP proxy in
    absolute form: the endpoint to the proxy itself, whose failures to
    connect are L{ProxyUnreachableError}s (a cancellation stays one).

    @ivar proxy: The proxy.
    @ivar key: The pool key, put in the errors, or L{None}.
    """

    def __init__(
        self,
        proxyEndpoint: IStreamClientEndpoint,
        proxy: ProxyURL,
        key: Hashable | None = None,
    ) -> None:
        """
        @param proxyEndpoint: The endpoint to the proxy itself.
        @param proxy: The proxy.
        @param key: The pool key.
        """
        self._proxyEndpoint: Any = proxyEndpoint
        self.proxy = proxy
        self.key = key

    def __repr__(self) -> str:
        return f"<ForwardingEndpoint via {self.proxy.url}>"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect to the proxy.

        @param protocolFactory: Builds the protocol that talks to it.
        @return: A L{Deferred} that fires with that protocol.
        """

        def failed(failure: Failure) -> Failure:
            if isCancellation(failure.value or Exception()):
                return failure
            return Failure(_unreachable(self.proxy, failure, self.key))

        d: Deferred[Any] = self._proxyEndpoint.connect(protocolFactory)
        return d.addErrback(failed)


class _TunnelEndpointBase:
    """
    What the tunnel endpoints share.

    @ivar proxyEndpoint: The endpoint to the proxy itself.
    @ivar proxy: The proxy.
    @ivar host: The target host.
    @ivar port: The target port.
    @ivar key: The pool key of the connections made, put in the errors, or
        L{None}.
    """

    key: Hashable | None = None

    def __init__(
        self,
        proxyEndpoint: IStreamClientEndpoint,
        proxy: ProxyURL,
        host: str,
        port: int,
    ) -> None:
        """
        @param proxyEndpoint: The endpoint to the proxy itself.
        @param proxy: The proxy.
        @param host: The target host.
        @param port: The target port.
        """
        self.proxyEndpoint = proxyEndpoint
        self.proxy = proxy
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} to {self.host}:{self.port} via {self.proxy.url}>"
        )

    def handshake(self, host: str) -> _Handshake:
        """
        @param host: The target host as the proxy is to be told it.
        @return: A new handshake for one connection.
        """
        raise NotImplementedError()

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect to the proxy and set up the tunnel.

        @param protocolFactory: Builds the protocol that talks to the target.
        @return: A L{Deferred} that fires with that protocol once the tunnel
            is up, or fails with a L{ProxyError} (or the failure of a
            cancelled or unresolvable attempt).  Cancelling it aborts the
            connection to the proxy at any step.
        """
        attempt = _Attempt(self, protocolFactory)
        attempt.connectToProxy(self.host)
        return attempt.result


@implementer(IStreamClientEndpoint)
class HTTPTunnelEndpoint(_TunnelEndpointBase):
    """
    An endpoint to C{host:port} through an HTTP proxy's C{CONNECT}: one
    C{CONNECT} per connection, with C{Proxy-Authorization: Basic} from the
    proxy URL's credentials.  Wrap it with L{wrapClientTLS} for TLS to the
    target.
    """

    def handshake(self, host: str) -> _Handshake:
        return _ConnectHandshake(self.proxy, host, self.port)


@implementer(IStreamClientEndpoint)
class SOCKS5Endpoint(_TunnelEndpointBase):
    """
    An endpoint to C{host:port} through a SOCKS5 proxy.  For C{socks5://}
    proxies the target's name is resolved here (to IPv4, with the
    reactor's resolver) and the proxy is given the address; for
    C{socks5h://} the proxy is given the name.
    """

    def __init__(
        self,
        reactor: Any,
        proxyEndpoint: IStreamClientEndpoint,
        proxy: ProxyURL,
        host: str,
        port: int,
    ) -> None:
        """
        @param reactor: The reactor whose resolver C{socks5://} uses.
        @param proxyEndpoint: The endpoint to the proxy itself.
        @param proxy: The proxy.
        @param host: The target host.
        @param port: The target port.
        """
        _TunnelEndpointBase.__init__(self, proxyEndpoint, proxy, host, port)
        self._reactor = reactor

    def handshake(self, host: str) -> _Handshake:
        return _SOCKS5Handshake(self.proxy, host, self.port)

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        host = self.host
        if self.proxy.scheme == "socks5h" or isIPAddress(host) or isIPv6Address(host):
            return _TunnelEndpointBase.connect(self, protocolFactory)
        attempt = _Attempt(self, protocolFactory)
        attempt.wait(self._reactor.resolve(host), attempt.connectToProxy)
        return attempt.result


ProxySelector = Callable[[bytes], "str | bytes | ProxyURL | None"]


@implementer(IAgentEndpointFactory)
class ProxyEndpointFactory:
    """
    Builds the endpoints of connections through proxies; an
    L{IAgentEndpointFactory} for L{twisted.web.client.Agent.usingEndpointFactory}.

    Under a stock L{twisted.web.client.Agent}, which always sends
    origin-form requests, every target is reached through a tunnel
    (C{CONNECT}, or SOCKS5), C{http://} ones too.

    @ivar proxy: The proxy URL, a callable C{proxyFor(uri) -> url or None},
        or L{None} for direct connections.
    """

    def __init__(
        self,
        reactor: Any,
        proxy: str | bytes | ProxyURL | ProxySelector | None,
        contextFactory: Any = None,
        connectTimeout: float | None = None,
        bindAddress: Any = None,
    ) -> None:
        """
        @param reactor: The reactor.
        @param proxy: The proxy URL (str or bytes), a callable taking the
            request URI and returning one (or L{None}: direct), or L{None}.
        @param contextFactory: The L{twisted.web.iweb.IPolicyForHTTPS} that
            verifies the targets and C{https://} proxies; a new
            L{BrowserLikePolicyForHTTPS} if L{None}.
        @param connectTimeout: The C{timeout} of the TCP connection.
        @param bindAddress: The local address client sockets bind to.
        @raise ProxyURLError: If C{proxy} is a string that is not a usable
            proxy URL.
        """
        self._reactor = reactor
        self.proxy = proxy
        self._static: ProxyURL | None = None
        if proxy is not None and not callable(proxy):
            self._static = parseProxy(proxy)
        if contextFactory is None:
            contextFactory = BrowserLikePolicyForHTTPS()
        self._policy = contextFactory
        self._endpointArgs: dict[str, Any] = {"bindAddress": bindAddress}
        if connectTimeout is not None:
            self._endpointArgs["timeout"] = connectTimeout

    def __repr__(self) -> str:
        shown = self._static if self._static is not None else self.proxy
        return f"<ProxyEndpointFactory proxy={shown!r}>"

    def proxyFor(self, uri: bytes) -> ProxyURL | None:
        """
        The proxy a request goes through.

        @param uri: The request URI.
        @return: The proxy, or L{None} for a direct connection.
        @raise ProxyURLError: If a callable returned an unusable URL.
        """
        if self._static is not None or self.proxy is None:
            return self._static
        chosen = self.proxy(uri)  # type: ignore[operator]
        return None if chosen is None else parseProxy(chosen, "proxyFor(uri)")

    def proxyEndpoint(self, proxy: ProxyURL) -> IStreamClientEndpoint:
        """
        The endpoint to a proxy itself: TCP, then TLS for C{https://}.

        @param proxy: The proxy.
        """
        endpoint: Any = HostnameEndpoint(
            self._reactor, proxy.host, proxy.port, **self._endpointArgs
        )
        if proxy.scheme == "https":
            endpoint = wrapClientTLS(
                self._policy.creatorForNetloc(proxy.host.encode("idna"), proxy.port),
                endpoint,
            )
        return endpoint

    def endpoint(
        self,
        scheme: bytes,
        host: bytes,
        port: int,
        proxy: ProxyURL | None,
        key: Hashable | None = None,
    ) -> IStreamClientEndpoint:
        """
        The endpoint of a tunnelled (or direct) connection to a target.

        @param scheme: The target's scheme; C{https} and C{wss} get TLS to
            the target, verified under this factory's TLS policy.
        @param host: The target host.
        @param port: The target port.
        @param proxy: The proxy, or L{None} for a direct connection.
        @param key: The pool key the connections go under, for the errors.
        """
        textHost = host.decode("ascii")
        endpoint: Any
        if proxy is None:
            endpoint = HostnameEndpoint(
                self._reactor, textHost, port, **self._endpointArgs
            )
        elif proxy.scheme in ("socks5", "socks5h"):
            endpoint = SOCKS5Endpoint(
                self._reactor, self.proxyEndpoint(proxy), proxy, textHost, port
            )
        else:
            endpoint = HTTPTunnelEndpoint(
                self.proxyEndpoint(proxy), proxy, textHost, port
            )
        if proxy is not None:
            endpoint.key = key
        if scheme in (b"https", b"wss"):
            endpoint = wrapClientTLS(
                self._policy.creatorForNetloc(host, port), endpoint
            )
        return endpoint

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """
        The endpoint for a request, as L{twisted.web.client.Agent} asks.

        @param uri: The parsed request URI.
        """
        return self.endpoint(
            uri.scheme, uri.host, uri.port, self.proxyFor(uri.toBytes())
        )
