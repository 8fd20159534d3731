"""
Proxy URLs, the CONNECT and SOCKS5 handshakes byte by byte, cancelling a
tunnel at each step, and the pool keys PooledAgent builds for proxied
destinations.  No sockets: fake endpoints and L{Clock}.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectingCancelledError, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pooled_http import (
    PooledAgent,
    ProxyAuthenticationRequired,
    ProxyError,
    ProxyProtocolError,
    ProxyUnreachableError,
    ProxyURLError,
    isTemporaryNetworkError,
)
from pooled_http._proxyurl import parseProxy
from pooled_http._tunnel import HTTPTunnelEndpoint, SOCKS5Endpoint
from tests.support.fakes import FakeEndpoint

# (value, scheme, host, port, username, url)
GOOD_URLS = [
    ("http://127.0.0.1:3128", "http", "127.0.0.1", 3128, None, "http://127.0.0.1:3128"),
    (
        b"http://127.0.0.1:3128/",
        "http",
        "127.0.0.1",
        3128,
        None,
        "http://127.0.0.1:3128",
    ),
    ("127.0.0.1:3128", "http", "127.0.0.1", 3128, None, "http://127.0.0.1:3128"),
    ("HTTPS://Proxy.Test", "https", "proxy.test", 443, None, "https://proxy.test:443"),
    ("socks5://u:p@[::1]:1080", "socks5", "::1", 1080, "u", "socks5://[::1]:1080"),
    (
        "socks5h://localhost",
        "socks5h",
        "localhost",
        1080,
        None,
        "socks5h://localhost:1080",
    ),
    ("http://a%40b:p%3Aw@h:8", "http", "h", 8, "a@b", "http://h:8"),
    ("http://user@h:8", "http", "h", 8, "user", "http://h:8"),
]


BAD_URLS = [
    ("ftp://u:hunter2@h:21", "scheme"),
    ("http://u:hunter2@h:99999", "port"),
    ("http://u:hunter2@h:abc", "port"),
    ("http://u:hunter2@:3128", "no host"),
    ("http://u:hunter2@h:3128/path", "no path"),
    ("http://u:hunter2@h:0", "port 0"),
    ("socks4://u:hunter2@h", "scheme"),
    # A password with an unencoded delimiter: all of it stays hidden.
    ("http://u:hunter2/x@h:3128", "percent-encode"),
    ("http://u:x?hunter2@h:3128", "percent-encode"),
    ("http://u:x#hunter2@h:3128", "percent-encode"),
    ("http://u:x@hunter2@h:abc", "port"),
]


class ProxyURLTests(SynchronousTestCase):
    """
    L{parseProxy} and L{ProxyURL}.
    """

    def test_parse(self) -> None:
        for value, scheme, host, port, username, url in GOOD_URLS:
            proxy = parseProxy(value)
            self.assertEqual(
                (proxy.scheme, proxy.host, proxy.port, proxy.username, proxy.url),
                (scheme, host, port, username, url),
                repr(value),
            )
            self.assertEqual(repr(proxy), f"<ProxyURL {url}>")

    def test_badURL(self) -> None:
        """
        A bad URL raises L{ProxyURLError} naming the setting, saying why,
        and hiding the password.
        """
        for value, why in BAD_URLS:
            with self.assertRaises(ProxyURLError, msg=value) as info:
                parseProxy(value, "https_proxy")
            message = str(info.exception)
            self.assertTrue(message.startswith("https_proxy='"), message)
            self.assertIn(why, message)
            self.assertNotIn("hunter2", message + repr(info.exception))
            self.assertIn("u:***@", message)
            self.assertEqual(info.exception.setting, "https_proxy")
            self.assertIsInstance(info.exception, ValueError)

    def test_badType(self) -> None:
        with self.assertRaises(ProxyURLError):
            parseProxy(3128)  # type: ignore[arg-type]
        with self.assertRaises(ProxyURLError):
            parseProxy(b"http://\xff:pw@h")

    def test_credentials(self) -> None:
        """
        Credentials give a Basic value and a fingerprint that tells them
        apart without containing them.
        """
        one = parseProxy("http://alice:secret@h:1")
        other = parseProxy("http://alice:other@h:1")
        none = parseProxy("http://h:1")
        self.assertEqual(
            one.basicCredentials(), b"Basic " + base64.b64encode(b"alice:secret")
        )
        self.assertEqual(one.socksCredentials(), (b"alice", b"secret"))
        self.assertIsNone(none.basicCredentials())
        self.assertIsNone(none.fingerprint)
        self.assertNotEqual(one.fingerprint, other.fingerprint)
        self.assertEqual(
            one.fingerprint, parseProxy("http://alice:secret@h:1").fingerprint
        )
        self.assertEqual(one.keyPart, ("http://h:1", one.fingerprint))
        self.assertNotEqual(one, other)
        self.assertEqual(one, parseProxy("http://alice:secret@h:1"))
        for text in (repr(one), str(one.keyPart), one.url):
            self.assertNotIn("secret", text)
            self.assertNotIn(base64.b64encode(b"alice:secret").decode(), text)


class _Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.lost: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = reason


class TunnelEndpointTests(SynchronousTestCase):
    """
    L{HTTPTunnelEndpoint} over a fake endpoint to the proxy.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.proxyEndpoint = FakeEndpoint(self.clock, autoConnect=False)
        self.proxy = parseProxy("http://alice:pw@127.0.0.1:3128")
        self.endpoint = HTTPTunnelEndpoint(
            self.proxyEndpoint, self.proxy, "target.test", 443
        )
        self.app = _Recorder()
        self.result = self.endpoint.connect(Factory.forProtocol(lambda: self.app))

    def connected(self) -> Any:
        (attempt,) = self.proxyEndpoint.attempts
        attempt.succeed()
        return attempt

    def test_connectRequest(self) -> None:
        """
        One CONNECT with the target's authority and the proxy's credentials.
        """
        attempt = self.connected()
        self.assertEqual(
            attempt.transport.value(),
            b"CONNECT target.test:443 HTTP/1.1\r\n"
            b"Host: target.test:443\r\n"
            b"Proxy-Authorization: Basic "
            + base64.b64encode(b"alice:pw")
            + b"\r\n\r\n",
        )
        self.assertNoResult(self.result)

    def test_ipv6Target(self) -> None:
        """
        An IPv6 target is written in brackets in the CONNECT line.
        """
        proxyEndpoint = FakeEndpoint(self.clock, autoConnect=True)
        endpoint = HTTPTunnelEndpoint(
            proxyEndpoint, parseProxy("http://h:1"), "::1", 8443
        )
        endpoint.connect(Factory.forProtocol(_Recorder))
        self.assertTrue(
            proxyEndpoint.attempts[0]
            .transport.value()
            .startswith(b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n")
        )

    def test_established(self) -> None:
        """
        A 200 answer, even in pieces, hands the connection to the caller's
        protocol; bytes after it and later bytes are the target's.
        """
        attempt = self.connected()
        for piece in (
            b"HTTP/1.1 200 Connection established\r",
            b"\nVia: x\r\n\r",
            b"\n",
        ):
            attempt.feed(piece)
        self.assertIs(self.successResultOf(self.result), self.app)
        self.assertIs(self.app.transport, attempt.transport)
        attempt.feed(b"target bytes")
        self.assertEqual(self.app.received, b"target bytes")
        attempt.serverClose()
        self.assertIsNotNone(self.app.lost)

    def test_bytesAfterAnswer(self) -> None:
        attempt = self.connected()
        attempt.feed(b"HTTP/1.0 200 OK\r\n\r\nfirst")
        self.successResultOf(self.result)
        self.assertEqual(self.app.received, b"first")

    def test_refused(self) -> None:
        attempt = self.connected()
        attempt.feed(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        error = self.failureResultOf(self.result, ProxyError).value
        self.assertEqual((error.status, error.reason), (503, "Service Unavailable"))
        self.assertTrue(isTemporaryNetworkError(error))
        self.assertTrue(attempt.transport.aborted)

    def test_authentication(self) -> None:
        attempt = self.connected()
        attempt.feed(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
        error = self.failureResultOf(self.result, ProxyAuthenticationRequired).value
        self.assertFalse(isTemporaryNetworkError(error))
        self.assertNotIn("pw", str(error).replace("proxy", ""))

    def test_garbage(self) -> None:
        attempt = self.connected()
        attempt.feed(b"\x05\x00garbage")
        self.failureResultOf(self.result, ProxyProtocolError)
        self.assertTrue(attempt.transport.aborted)

    def test_endlessHead(self) -> None:
        attempt = self.connected()
        attempt.feed(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):
            if self.result.called:
                break
            attempt.feed(b"X-Pad: " + b"x" * 1000 + b"\r\n")
        self.failureResultOf(self.result, ProxyProtocolError)

    def test_lostBeforeAnswer(self) -> None:
        attempt = self.connected()
        attempt.serverClose()
        error = self.failureResultOf(self.result, ProxyError).value
        self.assertTrue(isTemporaryNetworkError(error))
        self.assertIn("before the tunnel was set up", str(error))

    def test_unreachable(self) -> None:
        (attempt,) = self.proxyEndpoint.attempts
        attempt.fail(ConnectionRefusedError())
        error = self.failureResultOf(self.result, ProxyUnreachableError).value
        self.assertTrue(isTemporaryNetworkError(error))
        self.assertEqual(error.proxy, "http://127.0.0.1:3128")

    def test_cancelWhileConnecting(self) -> None:
        """
        Cancelling before the proxy answered the TCP connect cancels that.
        """
        (attempt,) = self.proxyEndpoint.attempts
        self.result.cancel()
        self.assertTrue(attempt.cancelled)
        self.failureResultOf(self.result, ConnectingCancelledError)

    def test_cancelDuringConnect(self) -> None:
        """
        Cancelling while the CONNECT is unanswered aborts the connection to
        the proxy; its later loss changes nothing.
        """
        attempt = self.connected()
        self.result.cancel()
        self.failureResultOf(self.result, CancelledError)
        self.assertTrue(attempt.transport.aborted)
        attempt.serverClose()
        attempt.feed(b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertIsNone(self.app.transport)

    def test_cancelAfterEstablished(self) -> None:
        attempt = self.connected()
        attempt.feed(b"HTTP/1.1 200 OK\r\n\r\n")
        self.result.cancel()
        self.successResultOf(self.result)
        self.assertFalse(attempt.transport.aborted)


class SOCKS5EndpointTests(SynchronousTestCase):
    """
    L{SOCKS5Endpoint}: greeting, authentication, command, reply framing.
    """

    def start(self, url: str, host: str = "target.test") -> Any:
        self.clock = Clock()
        self.reactor = MemoryReactorClock()
        self.proxyEndpoint = FakeEndpoint(self.clock, autoConnect=True)
        self.app = _Recorder()
        endpoint = SOCKS5Endpoint(
            self.reactor, self.proxyEndpoint, parseProxy(url), host, 443
        )
        self.result = endpoint.connect(Factory.forProtocol(lambda: self.app))
        return self.proxyEndpoint.attempts[-1] if self.proxyEndpoint.attempts else None

    def test_passwordAndName(self) -> None:
        """
        socks5h: username/password, then CONNECT by name; the reply may
        come in pieces and carry the target's first bytes.
        """
        attempt = self.start("socks5h://bob:pw@127.0.0.1:1080")
        sent = attempt.transport
        self.assertEqual(sent.value(), b"\x05\x01\x02")
        sent.clear()
        attempt.feed(b"\x05\x02")
        self.assertEqual(sent.value(), b"\x01\x03bob\x02pw")
        sent.clear()
        attempt.feed(b"\x01\x00")
        self.assertEqual(sent.value(), b"\x05\x01\x00\x03\x0btarget.test\x01\xbb")
        attempt.feed(b"\x05\x00\x00\x03\x09localhost")
        self.assertNoResult(self.result)
        attempt.feed(b"\x04\x38hello")
        self.assertIs(self.successResultOf(self.result), self.app)
        self.assertEqual(self.app.received, b"hello")

    def test_noAuthIPv4Reply(self) -> None:
        attempt = self.start("socks5h://127.0.0.1:1080", host="127.0.0.1")
        self.assertEqual(attempt.transport.value(), b"\x05\x01\x00")
        attempt.transport.clear()
        attempt.feed(b"\x05\x00")
        self.assertEqual(
            attempt.transport.value(), b"\x05\x01\x00\x01\x7f\x00\x00\x01\x01\xbb"
        )
        attempt.feed(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38")
        self.successResultOf(self.result)

    def test_wrongPassword(self) -> None:
        attempt = self.start("socks5://bob:nope@127.0.0.1:1080", host="127.0.0.1")
        attempt.feed(b"\x05\x02\x01\x01")
        error = self.failureResultOf(self.result, ProxyAuthenticationRequired).value
        self.assertNotIn("nope", str(error))
        self.assertTrue(attempt.transport.aborted)

    def test_authenticationWanted(self) -> None:
        attempt = self.start("socks5h://127.0.0.1:1080")
        attempt.feed(b"\x05\xff")
        self.failureResultOf(self.result, ProxyAuthenticationRequired)

    def test_refusedReply(self) -> None:
        for code, temporary in ((5, True), (2, False)):
            attempt = self.start("socks5h://127.0.0.1:1080")
            attempt.feed(b"\x05\x00" + bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
            error = self.failureResultOf(self.result, ProxyError).value
            self.assertEqual(error.status, code)
            self.assertIs(isTemporaryNetworkError(error), temporary)

    def test_garbage(self) -> None:
        attempt = self.start("socks5h://127.0.0.1:1080")
        attempt.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        self.failureResultOf(self.result, ProxyProtocolError)

    def test_localResolution(self) -> None:
        """
        socks5 resolves the name first (cancellable), then gives the proxy
        the address.
        """
        self.clock = Clock()
        resolved: list[Any] = []

        class Resolving(MemoryReactorClock):
            def resolve(self, name: str, timeout: Any = None) -> Any:
                from twisted.internet.defer import Deferred

                d: Deferred[str] = Deferred()
                resolved.append((name, d))
                return d

        self.reactor = Resolving()
        proxyEndpoint = FakeEndpoint(self.clock, autoConnect=True)
        endpoint = SOCKS5Endpoint(
            self.reactor, proxyEndpoint, parseProxy("socks5://h:1"), "target.test", 80
        )
        result = endpoint.connect(Factory.forProtocol(_Recorder))
        self.assertEqual(proxyEndpoint.attempts, [])
        resolved[0][1].callback("127.0.0.7")
        attempt = proxyEndpoint.attempts[0]
        attempt.feed(b"\x05\x00")
        self.assertTrue(
            attempt.transport.value().endswith(b"\x01\x7f\x00\x00\x07\x00\x50")
        )
        # A second attempt cancelled while resolving never connects.
        second = endpoint.connect(Factory.forProtocol(_Recorder))
        second.cancel()
        self.failureResultOf(second, CancelledError)
        resolved[1][1].callback("127.0.0.8")
        self.assertEqual(len(proxyEndpoint.attempts), 1)
        self.assertNoResult(result)


class AgentRoutingTests(SynchronousTestCase):
    """
    The pool keys and endpoints PooledAgent builds for proxied requests.
    """

    def agent(self, **kwargs: Any) -> PooledAgent:
        reactor = MemoryReactorClock()
        return PooledAgent(reactor, pool=_NullPool(), **kwargs)

    def test_keys(self) -> None:
        """
        http targets share one key per proxy; https keys name target,
        policy, proxy and credentials fingerprint, never the secret.
        """
        agent = self.agent(proxy="http://alice:secret@127.0.0.1:3128")
        plainA, _ = agent.endpointFor(b"http://a.test/")
        plainB, _ = agent.endpointFor(b"http://b.test:8080/")
        self.assertEqual(plainA, plainB)
        tlsA, endpoint = agent.endpointFor(b"https://a.test/")
        proxy = parseProxy("http://alice:secret@127.0.0.1:3128")
        self.assertEqual(tlsA[:3], (b"https", b"a.test", 443))
        self.assertEqual(tlsA[4:], ("http://127.0.0.1:3128", proxy.fingerprint))
        for text in (repr(plainA), repr(tlsA), repr(endpoint), repr(agent)):
            self.assertNotIn("secret", text)
        other = self.agent(proxy="http://alice:other@127.0.0.1:3128")
        self.assertNotEqual(other.endpointFor(b"http://a.test/")[0], plainA)
        direct = self.agent()
        self.assertEqual(
            direct.endpointFor(b"http://a.test/")[0], (b"http", b"a.test", 80)
        )

    def test_socksKeys(self) -> None:
        agent = self.agent(proxy="socks5h://127.0.0.1:1080")
        key, endpoint = agent.endpointFor(b"http://a.test/")
        self.assertEqual(key[:3], (b"http", b"a.test", 80))
        self.assertIn("socks5h://127.0.0.1:1080", key)
        self.assertIsInstance(endpoint, SOCKS5Endpoint)

    def test_badProxy(self) -> None:
        with self.assertRaises(ProxyURLError) as info:
            self.agent(proxy="gopher://u:pw123@h")
        self.assertIn("proxy=", str(info.exception))
        self.assertNotIn("pw123", str(info.exception))

    def test_callableChoosingBadURL(self) -> None:
        agent = self.agent(proxy=lambda uri: "nonsense://x")
        self.failureResultOf(agent.request(b"GET", b"http://a.test/"), ProxyURLError)

    def test_trustEnv(self) -> None:
        """
        With trustEnv the environment picks the proxy, no_proxy exempts
        targets; without it the environment is ignored.
        """
        self.patch(
            os,
            "environ",
            {
                "https_proxy": "http://127.0.0.1:3128",
                "HTTP_PROXY": "socks5h://127.0.0.1:1080",
                "no_proxy": "direct.test,127.64.0.0/10",
            },
        )
        agent = self.agent(trustEnv=True)
        self.assertIn("http://127.0.0.1:3128", agent.endpointFor(b"https://a.test/")[0])
        self.assertIn(
            "socks5h://127.0.0.1:1080", agent.endpointFor(b"http://a.test/")[0]
        )
        self.assertEqual(agent.endpointFor(b"https://x.direct.test/")[0][4:], ())
        self.assertEqual(len(agent.endpointFor(b"https://127.64.2.3/")[0]), 4)
        self.assertEqual(len(self.agent().endpointFor(b"https://a.test/")[0]), 4)
        # An explicit proxy still honours no_proxy with trustEnv.
        explicit = self.agent(proxy="http://127.0.0.1:9999", trustEnv=True)
        self.assertEqual(len(explicit.endpointFor(b"https://direct.test/")[0]), 4)
        self.assertIn(
            "http://127.0.0.1:9999", explicit.endpointFor(b"https://a.test/")[0]
        )

    def test_badEnvironment(self) -> None:
        self.patch(os, "environ", {"HTTPS_PROXY": "ftp://u:pw99@h"})
        with self.assertRaises(ProxyURLError) as info:
            self.agent(trustEnv=True)
        # The variable as it is set.
        self.assertIn("HTTPS_PROXY=", str(info.exception))
        self.assertEqual(info.exception.setting, "HTTPS_PROXY")
        self.assertNotIn("pw99", str(info.exception))
        self.agent()  # not read without trustEnv

    def test_forwardedRequest(self) -> None:
        """
        A forwarded request carries the absolute URI and the proxy's
        credentials; a tunnelled one carries neither.
        """
        pool = _NullPool()
        agent = PooledAgent(
            MemoryReactorClock(), pool=pool, proxy="http://alice:secret@127.0.0.1:1"
        )
        agent.request(b"GET", b"http://a.test:81/p?q=1#frag")
        agent.request(b"GET", b"https://a.test/p")
        forwarded, tunnelled = pool.sent
        self.assertEqual(forwarded.uri, b"http://a.test:81/p?q=1")
        self.assertEqual(
            forwarded.headers.getRawHeaders(b"Proxy-Authorization"),
            [b"Basic " + base64.b64encode(b"alice:secret")],
        )
        self.assertEqual(forwarded.headers.getRawHeaders(b"Host"), [b"a.test:81"])
        self.assertEqual(tunnelled.uri, b"/p")
        self.assertFalse(tunnelled.headers.hasHeader(b"Proxy-Authorization"))


class _NullPool:
    """
    A pool whose connections record the requests they are given.
    """

    persistent = True

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def getConnection(self, key: Any, endpoint: Any) -> Any:
        from twisted.internet.defer import Deferred, succeed

        pool = self

        class Connection:
            def request(self, request: Any) -> Deferred[Any]:
                pool.sent.append(request)
                return Deferred()

        return succeed(Connection())
