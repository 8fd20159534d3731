"""
The client's side of the proxies' handshakes, without I/O: one HTTP
C{CONNECT} (L{ConnectHandshake}) and the SOCKS5 greeting, optional
authentication and connect request (L{SOCKS5Handshake}).  Each takes the
proxy's bytes and says what to send and when the tunnel is up.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.abstract import isIPv6Address
from twisted.python.failure import Failure

from ._proxyurl import CREDENTIALS_HINT, ProxyURL
from .errors import (
    TEMPORARY_CONNECT_STATUSES,
    ProxyAuthenticationRequired,
    ProxyError,
    ProxyProtocolError,
    isTemporaryNetworkError,
)

__all__ = [
    "Handshake",
    "ConnectHandshake",
    "SOCKS5Handshake",
    "MAX_CONNECT_RESPONSE_BYTES",
]

#: The most bytes a proxy's answer to C{CONNECT} may take before its end.
MAX_CONNECT_RESPONSE_BYTES = 65536


class Handshake:
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


class ConnectHandshake(Handshake):
    """
    One HTTP C{CONNECT} and its answer.
    """

    def __init__(self, proxy: ProxyURL, host: str, port: int) -> None:
        Handshake.__init__(self, proxy)
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
                f"{what}; {CREDENTIALS_HINT}",
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


class SOCKS5Handshake(Handshake):
    """
    A SOCKS5 greeting, the optional username/password exchange and one
    CONNECT command, on socksio's state machine.  socksio parses whole
    messages; this class finds where each one ends.
    """

    def __init__(self, proxy: ProxyURL, host: str, port: int) -> None:
        from socksio import socks5

        Handshake.__init__(self, proxy)
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
