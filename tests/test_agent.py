"""
Tests for L{pooled_http._agent}: L{PooledAgent} and L{treqClient}.

The unit tests drive a L{PooledAgent} over a recording pool and
L{MemoryReactorClock}; the integration tests run it over loopback against
twisted.web, alone and under treq, L{RedirectAgent}, L{ContentDecoderAgent}
and L{CookieAgent}, and over TLS with a trustme certificate authority.
"""

from __future__ import annotations

from collections.abc import Hashable
from http.cookiejar import CookieJar
from typing import Any

import treq
import trustme
from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web._newclient import Request
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    ContentDecoderAgent,
    CookieAgent,
    GzipDecoder,
    RedirectAgent,
    readBody,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory
from twisted.web.resource import EncodingResourceWrapper, Resource
from twisted.web.server import GzipEncoderFactory, Site
from twisted.web.util import Redirect
from zope.interface import implementer
from zope.interface.verify import verifyObject

from pooled_http import (
    HTTPConnectionPool,
    PooledAgent,
    PooledHTTPClient,
    TLSPolicyIdentity,
    treqClient,
)
from tests.support.counting import CountingFactory


class _RecordingConnection:
    """
    A connection that records the requests sent over it.
    """

    def __init__(self, pool: _RecordingPool) -> None:
        self.pool = pool

    def request(self, request: Request) -> Deferred[Any]:
        self.pool.requests.append(request)
        return Deferred()


class _RecordingPool:
    """
    A pool that records every C{getConnection} call and hands out
    L{_RecordingConnection}s.
    """

    def __init__(self, persistent: bool = True) -> None:
        self.persistent = persistent
        self.calls: list[tuple[Hashable, IStreamClientEndpoint]] = []
        self.requests: list[Request] = []

    def getConnection(
        self, key: Hashable, endpoint: IStreamClientEndpoint
    ) -> Deferred[_RecordingConnection]:
        self.calls.append((key, endpoint))
        return defer.succeed(_RecordingConnection(self))


class _CountingEndpointFactory:
    """
    An endpoint factory counting how many endpoints it made.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.made = 0

    def endpointForURI(self, uri: Any) -> HostnameEndpoint:
        self.made += 1
        return HostnameEndpoint(self.reactor, uri.host.decode("ascii"), uri.port)


implementer(IAgentEndpointFactory)(_CountingEndpointFactory)


class PooledAgentUnitTests(SynchronousTestCase):
    """
    L{PooledAgent} over a recording pool.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.pool = _RecordingPool()
        self.agent = PooledAgent(self.reactor, pool=self.pool)

    def request(
        self, agent: PooledAgent | Agent, uri: bytes, headers: Headers | None = None
    ) -> Request:
        agent.request(b"GET", uri, headers)
        pool = agent._pool if isinstance(agent, Agent) else agent.pool
        return pool.requests[-1]  # type: ignore[attr-defined,no-any-return]

    def test_interface(self) -> None:
        """
        A L{PooledAgent} provides L{IAgent}.
        """
        self.assertTrue(verifyObject(IAgent, self.agent))

    def test_defaultPool(self) -> None:
        """
        Without a pool, a L{PooledAgent} makes a persistent
        L{HTTPConnectionPool}.
        """
        agent = PooledAgent(self.reactor)
        self.assertIsInstance(agent.pool, HTTPConnectionPool)
        self.assertTrue(agent.pool.persistent)

    def test_httpKey(self) -> None:
        """
        The key of an http URI is C{(scheme, host, port)}, as Agent's.
        """
        self.agent.request(b"GET", b"http://example.com/a")
        self.agent.request(b"GET", b"http://example.com:8080/a")
        self.agent.request(b"GET", b"http://[::1]:81/a")
        self.assertEqual(
            [key for key, _ in self.pool.calls],
            [
                (b"http", b"example.com", 80),
                (b"http", b"example.com", 8080),
                (b"http", b"::1", 81),
            ],
        )

    def test_httpsKeyHasPolicyIdentity(self) -> None:
        """
        The key of an https URI ends with the identity of the agent's TLS
        policy: agents with the same policy object get equal keys, agents
        with different policy objects (even of the same configuration)
        different keys.
        """
        policy = BrowserLikePolicyForHTTPS()
        first = PooledAgent(self.reactor, pool=self.pool, contextFactory=policy)
        second = PooledAgent(self.reactor, pool=self.pool, contextFactory=policy)
        other = PooledAgent(
            self.reactor, pool=self.pool, contextFactory=BrowserLikePolicyForHTTPS()
        )
        for agent in (first, second, other):
            agent.request(b"GET", b"https://example.com/")
        keys = [key for key, _ in self.pool.calls]
        self.assertEqual(keys[0], (b"https", b"example.com", 443, keys[0][3]))
        self.assertIsInstance(keys[0][3], TLSPolicyIdentity)
        self.assertIs(keys[0][3].policy, policy)
        self.assertEqual(keys[0], keys[1])
        self.assertEqual(hash(keys[0]), hash(keys[1]))
        self.assertNotEqual(keys[0], keys[2])

    def test_defaultPolicyShared(self) -> None:
        """
        Agents made without a policy share the default one, so they share
        https keys.
        """
        PooledAgent(self.reactor, pool=self.pool).request(b"GET", b"https://a/")
        PooledAgent(self.reactor, pool=self.pool).request(b"GET", b"https://a/")
        self.assertEqual(self.pool.calls[0][0], self.pool.calls[1][0])

    def test_policyIdentityIgnoresEquality(self) -> None:
        """
        L{TLSPolicyIdentity} compares the wrapped objects by identity, even
        when they claim to be equal, and keeps them alive.
        """

        class Equal:
            def __eq__(self, other: object) -> bool:
                return True

            def __hash__(self) -> int:
                return 0

        one, two = Equal(), Equal()
        self.assertEqual(TLSPolicyIdentity(one), TLSPolicyIdentity(one))
        self.assertNotEqual(TLSPolicyIdentity(one), TLSPolicyIdentity(two))
        self.assertIn("Equal at 0x", repr(TLSPolicyIdentity(one)))

    def test_endpointCached(self) -> None:
        """
        Requests to the same destination reuse one endpoint; another port
        gets another endpoint.
        """
        for uri in (
            b"http://example.com/a",
            b"http://example.com/b?q=1",
            b"http://example.com:80/c",
            b"http://example.com:81/c",
        ):
            self.agent.request(b"GET", uri)
        endpoints = [endpoint for _, endpoint in self.pool.calls]
        self.assertIsInstance(endpoints[0], HostnameEndpoint)
        self.assertIs(endpoints[0], endpoints[1])
        self.assertIs(endpoints[0], endpoints[2])
        self.assertIsNot(endpoints[0], endpoints[3])

    def test_httpsEndpointCached(self) -> None:
        """
        The TLS endpoint and its connection creator are made once per
        destination: the policy is asked once.
        """
        asked: list[tuple[bytes, int]] = []

        class Policy(BrowserLikePolicyForHTTPS):
            def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
                asked.append((hostname, port))
                return super().creatorForNetloc(hostname, port)

        agent = PooledAgent(self.reactor, pool=self.pool, contextFactory=Policy())
        agent.request(b"GET", b"https://example.com/1")
        agent.request(b"GET", b"https://example.com/2")
        self.assertEqual(asked, [(b"example.com", 443)])
        self.assertIs(self.pool.calls[0][1], self.pool.calls[1][1])

    def test_endpointCacheBounded(self) -> None:
        """
        The endpoint cache keeps at most C{maxCachedEndpoints} destinations
        and forgets the least recently used first.
        """
        agent = PooledAgent(self.reactor, pool=self.pool, maxCachedEndpoints=2)
        for host in (b"a", b"b", b"a", b"c", b"a", b"b"):
            agent.request(b"GET", b"http://" + host + b"/")
        endpoints = [endpoint for _, endpoint in self.pool.calls]
        # a, b cached; a used again; c evicts b; a still cached; b is new.
        self.assertIs(endpoints[0], endpoints[2])
        self.assertIs(endpoints[0], endpoints[4])
        self.assertIsNot(endpoints[1], endpoints[5])
        self.assertEqual(len(agent._routes), 2)

    def test_uriCacheBounded(self) -> None:
        """
        Many different URIs do not grow the agent's memory without bound.
        """
        from pooled_http._agent import DEFAULT_MAX_CACHED_URIS

        for i in range(DEFAULT_MAX_CACHED_URIS + 10):
            self.agent.request(b"GET", b"http://example.com/%d" % (i,))
        self.assertLessEqual(len(self.agent._uris), DEFAULT_MAX_CACHED_URIS)
        self.assertEqual(len(self.agent._routes), 1)

    def test_invalidMaxCachedEndpoints(self) -> None:
        """
        C{maxCachedEndpoints} must be a positive integer.
        """
        for bad in (0, -1, 1.5, True, "3"):
            exc = self.assertRaises(
                ValueError,
                PooledAgent,
                self.reactor,
                pool=self.pool,
                maxCachedEndpoints=bad,
            )
            self.assertIn("maxCachedEndpoints", str(exc))

    def test_badArguments(self) -> None:
        """
        A C{connectTimeout} that is not a positive number or L{None}, a
        switch that is not C{True} or C{False} and a pool without
        C{getConnection} are refused at construction, naming the argument
        (the first two would otherwise fail every request, or turn on
        environment proxies for C{trustEnv="no"}).
        """
        for bad in ("5", -1, 0, True, float("nan")):
            exc = self.assertRaises(
                ValueError, PooledAgent, self.reactor, self.pool, connectTimeout=bad
            )
            self.assertIn("connectTimeout", str(exc))
        for name in ("trustEnv", "http2"):
            exc = self.assertRaises(
                TypeError, PooledAgent, self.reactor, self.pool, **{name: "no"}
            )
            self.assertIn(f"{name} must be True or False", str(exc))
        exc = self.assertRaises(TypeError, PooledAgent, self.reactor, pool="pool")
        self.assertIn("getConnection", str(exc))
        PooledAgent(self.reactor, self.pool, connectTimeout=2.5)

    def test_sameRequestsAsAgent(self) -> None:
        """
        For each URI, L{PooledAgent} sends the same request line, the same
        headers (I{Host} included) and the same absolute URI as
        L{twisted.web.client.Agent}, and the same key for http.
        """
        stockPool = _RecordingPool()
        stock = Agent(self.reactor, pool=stockPool)  # type: ignore[arg-type]
        uris = [
            b"http://example.com",
            b"http://example.com/",
            b"http://example.com:80/a/b?c=d&e#frag",
            b"http://example.com:8080/;params?q",
            b"https://example.com/",
            b"https://example.com:443/x",
            b"https://example.com:8443/x",
            b"http://[::1]/",
            b"http://[::1]:8080/",
            b"https://[::1]:443/",
            b"http://127.0.0.1:1234/p",
            b"http://Example.COM/Case",
            b"  http://example.com/strip  ",
            b"http://example.com:notaport/",
        ]
        # Twisted's Agent takes ws:// and wss:// only since 24.7; PooledAgent
        # takes them whatever Twisted is installed, as the newer Agent does
        # (the Host header names the port: only http's and https's default
        # ports are left out).
        for ws, host in (
            (b"ws://example.com/ws", b"example.com:80"),
            (b"wss://example.com/ws", b"example.com:443"),
        ):
            mine = self.request(self.agent, ws)
            self.assertEqual(
                (mine.method, mine.uri, list(mine.headers.getAllRawHeaders())),
                (b"GET", b"/ws", [(b"Host", [host])]),
            )
        for uri in uris * 2:
            for headers in (None, Headers({b"X-Foo": [b"bar"]})):
                mine = self.request(self.agent, uri, headers)
                theirs = self.request(stock, uri, headers)
                self.assertEqual(
                    (mine.method, mine.uri, mine.persistent, mine.absoluteURI),
                    (theirs.method, theirs.uri, theirs.persistent, theirs.absoluteURI),
                )
                self.assertEqual(
                    list(mine.headers.getAllRawHeaders()),
                    list(theirs.headers.getAllRawHeaders()),
                )
                if not uri.strip().startswith((b"https", b"wss")):
                    self.assertEqual(self.pool.calls[-1][0], stockPool.calls[-1][0])

    def test_hostHeader(self) -> None:
        """
        The I{Host} header leaves out the default port and brackets IPv6.
        """
        cases = {
            b"http://example.com/": b"example.com",
            b"http://example.com:80/": b"example.com",
            b"http://example.com:443/": b"example.com:443",
            b"https://example.com:443/": b"example.com",
            b"https://example.com:80/": b"example.com:80",
            b"http://[::1]/": b"[::1]",
            b"http://[::1]:8080/": b"[::1]:8080",
            b"http://127.0.0.1:8080/": b"127.0.0.1:8080",
        }
        for uri, host in cases.items():
            request = self.request(self.agent, uri)
            self.assertEqual(request.headers.getRawHeaders(b"host"), [host], uri)

    def test_givenHostHeaderKept(self) -> None:
        """
        A I{Host} header given by the caller is sent as is, and the caller's
        L{Headers} are never changed.
        """
        given = Headers({b"Host": [b"other.example"]})
        request = self.request(self.agent, b"http://example.com/", given)
        self.assertEqual(request.headers.getRawHeaders(b"host"), [b"other.example"])
        plain = Headers({b"Accept": [b"*/*"]})
        request = self.request(self.agent, b"http://example.com/", plain)
        self.assertEqual(request.headers.getRawHeaders(b"host"), [b"example.com"])
        self.assertFalse(plain.hasHeader(b"host"))

    def test_freshURIPerRequest(self) -> None:
        """
        Each request gets its own parsed URI object, even for the same URI.
        """
        first = self.request(self.agent, b"http://example.com/x")
        second = self.request(self.agent, b"http://example.com/x")
        self.assertIsNot(first._parsedURI, second._parsedURI)
        self.assertEqual(second.absoluteURI, b"http://example.com/x")

    def test_persistentFromPool(self) -> None:
        """
        Requests are persistent if and only if the pool is.
        """
        agent = PooledAgent(self.reactor, pool=_RecordingPool(persistent=False))
        self.assertFalse(self.request(agent, b"http://example.com/").persistent)
        self.assertTrue(self.request(self.agent, b"http://example.com/").persistent)

    def test_methodNotBytes(self) -> None:
        """
        A method that is not bytes raises L{TypeError}, as with Agent.
        """
        exc = self.assertRaises(
            TypeError,
            self.agent.request,
            "GET",  # type: ignore[arg-type]
            b"http://example.com/",
        )
        self.assertIn("must be bytes", str(exc))
        self.assertEqual(self.pool.calls, [])

    def test_invalidMethod(self) -> None:
        """
        An invalid method raises L{ValueError}, as with Agent.
        """
        for method in (b"G ET", b"GET\r\n", b"", b"GET/"):
            self.assertRaises(
                ValueError, self.agent.request, method, b"http://example.com/"
            )
        self.assertEqual(self.pool.calls, [])

    def test_invalidURI(self) -> None:
        """
        A URI with control or non-ASCII characters raises L{ValueError}, as
        with Agent, and is not cached.
        """
        for uri in (b"http://example.com/a b", b"http://exa\x00mple.com/", b"\xff"):
            self.assertRaises(ValueError, self.agent.request, b"GET", uri)
            self.assertRaises(ValueError, Agent(self.reactor).request, b"GET", uri)
        self.assertEqual(len(self.agent._uris), 0)

    def test_unsupportedScheme(self) -> None:
        """
        An unknown scheme fails the returned L{Deferred} with
        L{SchemeNotSupported}, every time.
        """
        for _ in range(2):
            d = self.agent.request(b"GET", b"ftp://example.com/")
            self.failureResultOf(d, SchemeNotSupported)
        self.assertEqual(self.pool.calls, [])

    def test_endpointFactory(self) -> None:
        """
        L{PooledAgent.usingEndpointFactory} asks the factory once per
        destination and puts its identity in every key.
        """
        factory = _CountingEndpointFactory(self.reactor)
        agent = PooledAgent.usingEndpointFactory(self.reactor, factory, pool=self.pool)
        agent.request(b"GET", b"http://example.com/1")
        agent.request(b"GET", b"http://example.com/2")
        self.assertEqual(factory.made, 1)
        key = self.pool.calls[0][0]
        self.assertEqual(key, (b"http", b"example.com", 80, TLSPolicyIdentity(factory)))

    def test_endpointFor(self) -> None:
        """
        L{PooledAgent.endpointFor} tells the key and endpoint of a URI.
        """
        key, endpoint = self.agent.endpointFor(b"http://example.com/")
        self.agent.request(b"GET", b"http://example.com/")
        self.assertEqual(self.pool.calls, [(key, endpoint)])

    def test_connectTimeoutAndBindAddress(self) -> None:
        """
        C{connectTimeout} and C{bindAddress} reach the endpoint.
        """
        agent = PooledAgent(
            self.reactor,
            pool=self.pool,
            connectTimeout=7,
            bindAddress=("127.0.0.1", 0),
        )
        _, endpoint = agent.endpointFor(b"http://example.com/")
        assert isinstance(endpoint, HostnameEndpoint)
        self.assertEqual(endpoint._timeout, 7)
        self.assertEqual(endpoint._bindAddress, ("127.0.0.1", 0))

    def test_bindAddressInKey(self) -> None:
        """
        An agent's bind address is part of its pool keys (before an
        HTTP/2 key's closing C{b"h2"}), so that agents sharing a pool with
        other bind addresses never share connections.
        """
        bound = ("127.0.0.1", 0)
        plain = PooledAgent(self.reactor, pool=self.pool)
        agent = PooledAgent(self.reactor, pool=self.pool, bindAddress=bound)
        for uri in (b"http://example.com/", b"https://example.com/"):
            key, _ = agent.endpointFor(uri)
            plainKey, _ = plain.endpointFor(uri)
            self.assertEqual(key, (*plainKey, ("bind", bound)))
        h2 = HTTPConnectionPool(self.reactor)
        self.addCleanup(h2.close)
        key, _ = PooledAgent(
            self.reactor, pool=h2, bindAddress=bound, http2=True
        ).endpointFor(b"https://example.com/")
        self.assertEqual(key[-2:], (("bind", bound), b"h2"))

    def test_repr(self) -> None:
        """
        The repr tells how many endpoints are cached.
        """
        self.agent.request(b"GET", b"http://example.com/")
        self.assertIn("1/4096 endpoints", repr(self.agent))


class TreqClientUnitTests(SynchronousTestCase):
    """
    L{treqClient}.
    """

    def test_client(self) -> None:
        """
        L{treqClient} returns a L{treq.HTTPClient} over a L{PooledAgent} and
        a new pool made with the given options.
        """
        clock = MemoryReactorClock()
        client = treqClient(clock, maxConnectionsPerHost=3, connectTimeout=5)
        self.assertIsInstance(client, HTTPClient)
        self.assertIsInstance(client, PooledHTTPClient)
        self.assertIsInstance(client.agent, PooledAgent)
        self.assertIs(client.agent.pool, client.pool)
        self.assertIsInstance(client.pool, HTTPConnectionPool)
        self.assertEqual(client.pool.maxConnectionsPerHost, 3)
        self.assertEqual(client.pool.connectTimeout, 5)
        self.assertIsNot(treqClient(clock).pool, client.pool)
        self.successResultOf(client.close())


class _Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"hello " + (request.getHeader(b"host") or b"")


class _SetCookie(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.addCookie(b"flavour", b"oatmeal", path=b"/")
        return b"set"


class _ShowCookie(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return request.getCookie(b"flavour") or b"none"


def _site() -> Site:
    root = Resource()
    root.putChild(b"hello", _Hello())
    root.putChild(b"redirect", Redirect(b"/hello"))
    root.putChild(b"gzip", EncodingResourceWrapper(_Hello(), [GzipEncoderFactory()]))
    root.putChild(b"setcookie", _SetCookie())
    root.putChild(b"showcookie", _ShowCookie())
    site = Site(root)
    site.displayTracebacks = False
    return site


class _LoopbackMixin:
    """
    A twisted.web server on 127.0.0.1 and a pool, both cleaned up.
    """

    def startServer(self, tls: Any = None) -> CountingFactory:
        factory = CountingFactory(_site())
        if tls is None:
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        else:
            port = reactor.listenSSL(0, factory, tls, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)  # type: ignore[attr-defined]
        self.port = port.getHost().port
        self.hello = b"hello 127.0.0.1:%d" % (self.port,)
        return factory

    def makePool(self, **options: Any) -> HTTPConnectionPool:
        pool = HTTPConnectionPool(reactor, **options)
        self.addCleanup(pool.close)  # type: ignore[attr-defined]
        return pool

    def url(self, path: bytes, scheme: bytes = b"http") -> bytes:
        return b"%s://127.0.0.1:%d%s" % (scheme, self.port, path)


class PooledAgentIntegrationTests(_LoopbackMixin, TestCase):
    """
    L{PooledAgent} over loopback against twisted.web.
    """

    def setUp(self) -> None:
        self.server = self.startServer()
        self.pool = self.makePool()
        self.agent = PooledAgent(reactor, pool=self.pool)

    @defer.inlineCallbacks
    def test_keepAlive(self) -> Any:
        """
        Sequential requests reuse one connection.
        """
        for _ in range(3):
            response = yield self.agent.request(b"GET", self.url(b"/hello"))
            body = yield readBody(response)
            self.assertEqual(body, self.hello)
        self.assertEqual(self.server.total, 1)

    @defer.inlineCallbacks
    def test_treq(self) -> Any:
        """
        L{PooledAgent} works under L{treq.HTTPClient}.
        """
        client = HTTPClient(self.agent)
        response = yield client.get(self.url(b"/hello").decode())
        self.assertEqual(response.code, 200)
        text = yield response.text()
        self.assertEqual(text, self.hello.decode())
        response = yield client.get(self.url(b"/hello").decode())
        yield response.content()
        self.assertEqual(self.server.total, 1)
        response = yield client.get(self.url(b"/redirect").decode())
        self.assertEqual(response.code, 200)
        self.assertEqual(len(response.history()), 1)
        yield response.content()

    @defer.inlineCallbacks
    def test_treqClient(self) -> Any:
        """
        L{treqClient} gives a working client whose C{close} closes its pool.
        """
        client = treqClient(reactor, maxConnectionsPerHost=2)
        try:
            responses = yield defer.gatherResults(
                [client.get(self.url(b"/hello").decode()) for _ in range(4)]
            )
            texts = yield defer.gatherResults([r.text() for r in responses])
            self.assertEqual(set(texts), {self.hello.decode()})
        finally:
            yield client.close()
        self.assertLessEqual(self.server.total, 2)

    @defer.inlineCallbacks
    def test_treqModuleLevel(self) -> Any:
        """
        treq's module-level functions take a L{PooledAgent} as C{agent=}.
        """
        response = yield treq.get(self.url(b"/hello").decode(), agent=self.agent)
        body = yield response.content()
        self.assertEqual(body, self.hello)

    @defer.inlineCallbacks
    def test_redirectAgent(self) -> Any:
        """
        L{PooledAgent} works under L{RedirectAgent}.
        """
        agent = RedirectAgent(self.agent)
        response = yield agent.request(b"GET", self.url(b"/redirect"))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.previousResponse.code, 302)
        body = yield readBody(response)
        self.assertEqual(body, self.hello)

    @defer.inlineCallbacks
    def test_contentDecoderAgent(self) -> Any:
        """
        L{PooledAgent} works under L{ContentDecoderAgent} with gzip.
        """
        agent = ContentDecoderAgent(self.agent, [(b"gzip", GzipDecoder)])
        response = yield agent.request(b"GET", self.url(b"/gzip"))
        self.assertIsInstance(response, GzipDecoder)
        body = yield readBody(response)
        self.assertEqual(body, self.hello)

    @defer.inlineCallbacks
    def test_cookieAgent(self) -> Any:
        """
        L{PooledAgent} works under L{CookieAgent}.
        """
        jar = CookieJar()
        agent = CookieAgent(self.agent, jar)
        response = yield agent.request(b"GET", self.url(b"/setcookie"))
        yield readBody(response)
        self.assertEqual([cookie.name for cookie in jar], ["flavour"])
        response = yield agent.request(b"GET", self.url(b"/showcookie"))
        body = yield readBody(response)
        self.assertEqual(body, b"oatmeal")

    @defer.inlineCallbacks
    def test_defaultPool(self) -> Any:
        """
        An agent made without a pool makes a persistent one, reachable as
        C{agent.pool} and closed with it.
        """
        agent = PooledAgent(reactor)
        self.addCleanup(agent.pool.close)
        for _ in range(2):
            response = yield agent.request(b"GET", self.url(b"/hello"))
            yield readBody(response)
        self.assertEqual(self.server.total, 1)
        self.assertEqual(agent.pool.stats().reused, 1)

    @defer.inlineCallbacks
    def test_connectionRefused(self) -> Any:
        """
        A refused connection fails the request with the usual error.
        """
        from twisted.internet.error import ConnectError

        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")  # type: ignore[attr-defined]
        number = port.getHost().port
        yield port.stopListening()
        d = self.agent.request(b"GET", b"http://127.0.0.1:%d/" % (number,))
        failure = yield self.assertFailure(d, ConnectError)
        self.assertIsInstance(failure, ConnectError)


class TLSIsolationTests(_LoopbackMixin, TestCase):
    """
    Two agents with different TLS policies share a pool but never a
    connection.
    """

    def setUp(self) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        serverOptions = PrivateCertificate.loadPEM(
            cert.private_key_and_cert_chain_pem.bytes()
        ).options()
        self.trustRoot = Certificate.loadPEM(ca.cert_pem.bytes())
        self.server = self.startServer(tls=serverOptions)
        self.pool = self.makePool()

    def agent(self, trustRoot: Any) -> PooledAgent:
        policy = BrowserLikePolicyForHTTPS(trustRoot=trustRoot)
        return PooledAgent(reactor, pool=self.pool, contextFactory=policy)

    @defer.inlineCallbacks
    def get(self, agent: PooledAgent) -> Any:
        response = yield agent.request(b"GET", self.url(b"/hello", b"https"))
        body = yield readBody(response)
        return body

    @defer.inlineCallbacks
    def test_reuseWithinAgent(self) -> Any:
        """
        One agent reuses its verified connection.
        """
        agent = self.agent(self.trustRoot)
        for _ in range(3):
            body = yield self.get(agent)
            self.assertEqual(body, self.hello)
        self.assertEqual(self.server.total, 1)

    @defer.inlineCallbacks
    def test_samePolicyShares(self) -> Any:
        """
        Two agents given the same policy object share connections.
        """
        policy = BrowserLikePolicyForHTTPS(trustRoot=self.trustRoot)
        for _ in range(2):
            agent = PooledAgent(reactor, pool=self.pool, contextFactory=policy)
            yield self.get(agent)
        self.assertEqual(self.server.total, 1)

    @defer.inlineCallbacks
    def test_differentPoliciesDoNotShare(self) -> Any:
        """
        A second agent with its own policy opens its own connection rather
        than reusing the first agent's idle one.
        """
        yield self.get(self.agent(self.trustRoot))
        yield self.get(self.agent(self.trustRoot))
        self.assertEqual(self.server.total, 2)

    @defer.inlineCallbacks
    def test_untrustingAgentFails(self) -> Any:
        """
        An agent that does not trust the server's CA fails its request even
        while a connection verified by a trusting agent sits idle in the
        same pool; with stock keys it would have reused that connection.
        """
        from twisted.web._newclient import ResponseNeverReceived

        yield self.get(self.agent(self.trustRoot))
        untrusting = self.agent(Certificate.loadPEM(trustme.CA().cert_pem.bytes()))
        d = self.get(untrusting)
        failure: Any = yield self.assertFailure(d, ResponseNeverReceived)
        self.assertTrue(
            any("certificate verify failed" in str(f.value) for f in failure.reasons),
            failure.reasons,
        )
        self.assertEqual(self.server.total, 2)


class UserinfoTests(TestCase):
    """
    A URI's user info (C{http://user:password@host/}) is sent as
    C{Authorization: Basic}, as curl, requests, httpx and aiohttp do, and
    is kept out of the pool key, the I{Host} header and C{stats()}.
    """

    async def fetchEcho(self, agent: PooledAgent, uri: bytes, **kw: Any) -> Any:
        import json

        response = await agent.request(b"GET", uri, **kw)
        return json.loads(await readBody(response))

    async def test_basicAuthorization(self) -> None:
        from tests.support.proxyservers import startTarget

        target = startTarget(reactor)
        self.addCleanup(target.stop)
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.close)
        agent = PooledAgent(reactor, pool=pool)
        base = b"http://alice:p%40ss@127.0.0.1:" + str(target.port).encode()
        for _ in range(2):  # the second time from the URI cache
            echoed = await self.fetchEcho(agent, base + b"/a@b?c=@")
            self.assertEqual(echoed["uri"], "/a@b?c=@")
            self.assertEqual(echoed["headers"]["host"], [f"127.0.0.1:{target.port}"])
            self.assertEqual(
                echoed["headers"]["authorization"], ["Basic YWxpY2U6cEBzcw=="]
            )
        echoed = await self.fetchEcho(
            agent, base + b"/", headers=Headers({b"Authorization": [b"Bearer t"]})
        )
        self.assertEqual(echoed["headers"]["authorization"], ["Bearer t"])
        echoed = await self.fetchEcho(agent, b"http://127.0.0.1:%d/" % (target.port,))
        self.assertNotIn("authorization", echoed["headers"])
        key, _ = agent.endpointFor(base + b"/")
        self.assertEqual(key, (b"http", b"127.0.0.1", target.port))
        shown = repr(pool.stats()) + repr(pool) + repr(agent)
        self.assertNotIn("p%40ss", shown)
        self.assertNotIn("alice", shown)
        self.assertEqual(pool.stats().opened, 1)
