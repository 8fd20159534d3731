"""
PooledAgent through scripted loopback proxies: tunnels that stay in the
pool, an https:// proxy, absolute-form forwarding, where the credentials go
and where they never go, and one test per proxy fault (407, refused
CONNECT, silence, garbage, a tunnel cut short, nothing listening).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import eventAsText, globalLogPublisher
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived
from twisted.web.client import Agent

from pooled_http import (
    ConnectTimeoutError,
    PooledAgent,
    ProxyAuthenticationRequired,
    ProxyEndpointFactory,
    ProxyError,
    ProxyProtocolError,
    ProxyUnreachableError,
    isTemporaryNetworkError,
    treqClient,
)
from tests.faults._base import FaultTestCase
from tests.support.failures import innermost
from tests.support.proxyservers import ProxyConnection, ScriptedProxy, startTarget
from tests.support.servers import TLSMaterial, unusedPort

SECRET = "s3cr3t-pw"
CREDENTIALS = base64.b64encode(f"alice:{SECRET}".encode()).decode()


def answering(status: bytes, extra: bytes = b"") -> Any:
    """
    A proxy script that answers every request head with C{status}.
    """

    def script(connection: ProxyConnection, head: bytes) -> None:
        connection.answer(status, extra)

    return script


def forwardingScript(connection: ProxyConnection, head: bytes) -> None:
    """
    Answer a forwarded request itself, with its head as the body.
    """
    connection.transport.write(  # type: ignore[union-attr]
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head)
    )


class ProxyTestCase(FaultTestCase):
    """
    Scripted proxies, echo targets and agents, all stopped when the test ends.
    """

    def setUp(self) -> None:
        self.tls = TLSMaterial()
        self.logged: list[str] = []

        def observe(event: Any) -> None:
            self.logged.append(eventAsText(event, includeTraceback=True))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def startProxy(self, script: Any = None, tls: bool = False) -> ScriptedProxy:
        kwargs: dict[str, Any] = {}
        if script is not None:
            kwargs["script"] = script
        if tls:
            kwargs["tls"] = self.tls.serverOptions()
        proxy = ScriptedProxy(reactor, **kwargs)
        self.addCleanup(proxy.stop)
        return proxy

    def startTarget(self, tls: bool = True) -> bytes:
        target = startTarget(reactor, self.tls.serverOptions() if tls else None)
        self.addCleanup(target.stop)
        scheme = b"https" if tls else b"http"
        return b"%s://127.0.0.1:%d" % (scheme, target.port)

    def agent(self, proxy: Any, **poolOptions: Any) -> PooledAgent:
        pool = self.makePool(**poolOptions)
        return PooledAgent(
            reactor, pool=pool, contextFactory=self.tls.clientPolicy(), proxy=proxy
        )

    def assertNoSecret(self, *texts: str, logged: bool = True) -> None:
        """
        Neither the password nor the encoded credentials are in C{texts} or
        in anything logged so far.

        @param logged: Whether something must have been logged.
        """
        if logged:
            self.assertTrue(self.logged)
        for text in (*texts, *self.logged):
            self.assertNotIn(SECRET, text)
            self.assertNotIn(CREDENTIALS, text)


class TunnelTests(ProxyTestCase):
    """
    https:// targets through CONNECT.
    """

    async def checkTunnel(self, proxyTLS: bool) -> None:
        proxy = self.startProxy(tls=proxyTLS)
        target = self.startTarget()
        scheme = "https" if proxyTLS else "http"
        agent = self.agent(f"{scheme}://alice:{SECRET}@127.0.0.1:{proxy.port}")
        for i in range(5):
            body = await self.fetchOk(agent, target + b"/page/%d" % (i,))
            echoed = json.loads(body)
            self.assertEqual(echoed["uri"], f"/page/{i}")
            self.assertNotIn("proxy-authorization", echoed["headers"])
        self.assertEqual(len(proxy.connects()), 1)
        connect = proxy.connects()[0]
        authority = target.split(b"://")[1]
        self.assertTrue(connect.startswith(b"CONNECT " + authority + b" HTTP/1.1"))
        self.assertIn(b"Proxy-Authorization: Basic " + CREDENTIALS.encode(), connect)
        await self.assertPoolAtRest(agent.pool, idle=1)
        stats = agent.pool.stats()  # type: ignore[attr-defined]
        self.assertNoSecret(repr(agent), repr(agent.pool), repr(stats))
        (key,) = list(stats.perKey)
        self.assertIn(f"{scheme}://127.0.0.1:{proxy.port}", key)

    async def test_connectOncePerConnection(self) -> None:
        """
        One CONNECT serves every request on the pooled tunnel; the
        credentials go in it and never to the target.
        """
        await self.checkTunnel(proxyTLS=False)

    async def test_httpsProxy(self) -> None:
        """
        TLS to an https:// proxy, CONNECT inside it, TLS to the target
        inside that.
        """
        await self.checkTunnel(proxyTLS=True)

    async def test_targetCertificateVerified(self) -> None:
        """
        The target's certificate is checked under the agent's TLS policy,
        not the proxy's: a target whose CA the agent does not trust fails.
        """
        proxy = self.startProxy()
        stranger = TLSMaterial()
        target = startTarget(reactor, stranger.serverOptions())
        self.addCleanup(target.stop)
        agent = self.agent(f"http://127.0.0.1:{proxy.port}")
        error = await self.failureOf(
            agent.request(b"GET", b"https://127.0.0.1:%d/" % (target.port,))
        )
        self.assertFalse(isTemporaryNetworkError(error))
        self.assertEqual(len(proxy.connects()), 1)

    async def test_stockAgentWithEndpointFactory(self) -> None:
        """
        A stock Agent over L{ProxyEndpointFactory} tunnels http:// and
        https:// targets, each connection with one CONNECT.
        """
        proxy = self.startProxy()
        httpsTarget = self.startTarget()
        httpTarget = self.startTarget(tls=False)
        factory = ProxyEndpointFactory(
            reactor, f"http://127.0.0.1:{proxy.port}", self.tls.clientPolicy()
        )
        agent = Agent.usingEndpointFactory(reactor, factory, pool=self.makePool())
        for _ in range(3):
            await self.fetchOk(agent, httpsTarget + b"/")
            await self.fetchOk(agent, httpTarget + b"/")
        self.assertEqual(len(proxy.connects()), 2)

    async def test_proxyPerRequest(self) -> None:
        """
        A C{proxyFor(uri)} callable sends each request through the proxy it
        picks, or directly; their connections are kept apart.
        """
        first, second = self.startProxy(), self.startProxy()
        target = self.startTarget()

        def proxyFor(uri: bytes) -> str | None:
            if b"/direct" in uri:
                return None
            chosen = first if b"/first" in uri else second
            return f"http://127.0.0.1:{chosen.port}"

        agent = self.agent(proxyFor)
        for path in (b"/first", b"/second", b"/direct", b"/first", b"/second"):
            await self.fetchOk(agent, target + path)
        self.assertEqual((len(first.connects()), len(second.connects())), (1, 1))
        await self.assertPoolAtRest(agent.pool, idle=3)


class TreqClientTests(ProxyTestCase):
    """
    L{treqClient} passes C{proxy} on to its agent.
    """

    async def test_proxy(self) -> None:
        proxy = self.startProxy()
        target = self.startTarget()
        client = treqClient(
            reactor,
            contextFactory=self.tls.clientPolicy(),
            proxy=f"http://127.0.0.1:{proxy.port}",
        )
        self.addCleanup(client.close)
        for _ in range(3):
            response = await client.get(target + b"/treq")
            self.assertEqual(json.loads(await response.content())["uri"], "/treq")
        self.assertEqual(len(proxy.connects()), 1)


class ForwardTests(ProxyTestCase):
    """
    http:// targets through an HTTP proxy.
    """

    async def test_absoluteFormSharedByTargets(self) -> None:
        """
        Requests go to the proxy in absolute form (an empty path kept
        empty, as given), with the proxy's credentials, on connections every
        target shares.
        """
        proxy = self.startProxy(forwardingScript)
        agent = self.agent(f"http://alice:{SECRET}@127.0.0.1:{proxy.port}")
        urls = [
            b"http://127.0.0.1:1/a?x=1",
            b"http://localhost:2/b",
            b"http://h3/",
            b"http://h4",
            b"http://h5?q=1",
        ]
        for url in urls:
            head = await self.fetchOk(agent, url)
            self.assertTrue(head.startswith(b"GET " + url + b" HTTP/1.1\r\n"))
            self.assertIn(b"Proxy-Authorization: Basic " + CREDENTIALS.encode(), head)
        self.assertIn(b"Host: localhost:2\r\n", proxy.heads[1])
        self.assertEqual(proxy.connectionCount, 1)
        self.assertEqual(proxy.connects(), [])

    async def test_overTLS(self) -> None:
        """
        Forwarding to an https:// proxy runs inside TLS to it.
        """
        proxy = self.startProxy(forwardingScript, tls=True)
        agent = self.agent(f"https://alice:{SECRET}@127.0.0.1:{proxy.port}")
        for _ in range(3):
            head = await self.fetchOk(agent, b"http://127.0.0.1:1/x")
            self.assertTrue(head.startswith(b"GET http://127.0.0.1:1/x HTTP/1.1"))
        self.assertEqual(proxy.connectionCount, 1)
        self.assertNoSecret(repr(agent), repr(agent.pool))

    async def test_authenticationRequired(self) -> None:
        """
        The forwarding proxy's own 407 fails the request with
        L{ProxyAuthenticationRequired}, as a refused C{CONNECT} does; its
        body is dropped and the connection serves the next request.
        """
        denied = [True]

        def script(connection: ProxyConnection, head: bytes) -> None:
            if denied.pop() if denied else False:
                connection.transport.write(  # type: ignore[union-attr]
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="x"\r\n'
                    b"Content-Length: 6\r\n\r\ndenied"
                )
            else:
                forwardingScript(connection, head)

        proxy = self.startProxy(script)
        agent = self.agent(f"http://alice:{SECRET}@127.0.0.1:{proxy.port}")
        url = b"http://127.0.0.1:1/x"
        error = await self.failureOf(agent.request(b"GET", url))
        self.assertIsInstance(error, ProxyAuthenticationRequired)
        assert isinstance(error, ProxyError)
        self.assertEqual(
            (error.status, error.reason, error.proxy),
            (407, "Proxy Authentication Required", f"http://127.0.0.1:{proxy.port}"),
        )
        self.assertEqual(error.key, agent.endpointFor(url)[0])
        self.assertFalse(isTemporaryNetworkError(error))
        self.assertNoSecret(str(error), repr(error), repr(agent.pool))
        head = await self.fetchOk(agent, url)
        self.assertTrue(head.startswith(b"GET " + url))
        self.assertEqual(proxy.connectionCount, 1)


class FaultTests(ProxyTestCase):
    """
    One test per way a proxy can fail.
    """

    async def refused(self, status: bytes, extra: bytes = b"") -> BaseException:
        proxy = self.startProxy(answering(status, extra))
        agent = self.agent(f"http://alice:{SECRET}@127.0.0.1:{proxy.port}")
        error = await self.failureOf(agent.request(b"GET", b"https://127.0.0.1:9/"))
        self.assertNoSecret(str(error), repr(error), repr(agent.pool))
        self.assertIsInstance(error, ProxyError)
        assert isinstance(error, ProxyError)
        self.assertEqual(error.proxy, f"http://127.0.0.1:{proxy.port}")
        self.assertEqual(error.key, agent.endpointFor(b"https://127.0.0.1:9/")[0])
        await self.assertPoolAtRest(agent.pool, idle=0)
        await self.waitFor(lambda: not proxy.open, "proxy connection closed")
        return error

    async def test_authenticationRequired(self) -> None:
        """
        407 is a permanent L{ProxyAuthenticationRequired}.
        """
        error = await self.refused(
            b"407 Proxy Authentication Required",
            b'Proxy-Authenticate: Basic realm="x"\r\n',
        )
        self.assertIsInstance(error, ProxyAuthenticationRequired)
        assert isinstance(error, ProxyError)
        self.assertEqual(
            (error.status, error.reason), (407, "Proxy Authentication Required")
        )
        self.assertFalse(isTemporaryNetworkError(error))
        self.assertIn("credentials", str(error))

    async def test_forbidden(self) -> None:
        """
        A CONNECT refused with 403 is permanent and says so.
        """
        error = await self.refused(b"403 Forbidden")
        assert isinstance(error, ProxyError)
        self.assertEqual((error.status, error.reason), (403, "Forbidden"))
        self.assertIn("403 Forbidden", str(error))
        self.assertFalse(isTemporaryNetworkError(error))

    async def test_badGateway(self) -> None:
        """
        A CONNECT refused with 502 is temporary.
        """
        error = await self.refused(b"502 Bad Gateway")
        assert isinstance(error, ProxyError)
        self.assertEqual(error.status, 502)
        self.assertTrue(isTemporaryNetworkError(error))

    async def test_garbage(self) -> None:
        """
        A proxy that does not answer in HTTP gives a permanent
        L{ProxyProtocolError}.
        """

        def garbage(connection: ProxyConnection, head: bytes) -> None:
            connection.transport.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")  # type: ignore[union-attr]

        proxy = self.startProxy(garbage)
        agent = self.agent(f"http://127.0.0.1:{proxy.port}")
        error = await self.failureOf(agent.request(b"GET", b"https://127.0.0.1:9/"))
        self.assertIsInstance(error, ProxyProtocolError)
        self.assertFalse(isTemporaryNetworkError(error))
        await self.waitFor(lambda: not proxy.open, "proxy connection closed")

    async def test_silentProxy(self) -> None:
        """
        A proxy that accepts and never answers the CONNECT runs into the
        pool's connectTimeout; the connection to it is aborted.
        """
        proxy = self.startProxy(lambda connection, head: None)
        agent = self.agent(f"http://127.0.0.1:{proxy.port}", connectTimeout=0.3)
        error = await self.failureOf(agent.request(b"GET", b"https://127.0.0.1:9/"))
        self.assertIsInstance(error, ConnectTimeoutError)
        self.assertTrue(isTemporaryNetworkError(error))
        await self.waitFor(lambda: not proxy.open, "proxy connection aborted")
        await self.assertPoolAtRest(agent.pool, idle=0)

    async def test_silentTLSProxy(self) -> None:
        """
        The same through TLS to an https:// proxy.
        """
        proxy = self.startProxy(lambda connection, head: None, tls=True)
        agent = self.agent(f"https://127.0.0.1:{proxy.port}", connectTimeout=0.3)
        error = await self.failureOf(agent.request(b"GET", b"https://127.0.0.1:9/"))
        self.assertIsInstance(error, ConnectTimeoutError)
        await self.waitFor(lambda: not proxy.open, "proxy connection aborted")

    async def test_closedMidTunnel(self) -> None:
        """
        A tunnel cut in the middle of a response fails that request only;
        the next one gets a new tunnel.
        """
        proxy = self.startProxy()
        target = self.startTarget(tls=False)
        # A stock Agent tunnels an http target, so the cut lands in the
        # target's own response, in the clear.
        factory = ProxyEndpointFactory(reactor, f"http://127.0.0.1:{proxy.port}")
        agent = Agent.usingEndpointFactory(reactor, factory, pool=self.makePool())
        proxy.cutAfter = 40
        error = await self.failureOf(agent.request(b"GET", target + b"/"))
        self.assertIsInstance(error, (ResponseNeverReceived, ResponseFailed))
        self.assertTrue(isTemporaryNetworkError(error), innermost(error))
        proxy.cutAfter = None
        await self.fetchOk(agent, target + b"/")
        self.assertEqual(len(proxy.connects()), 2)

    async def test_targetNeverHandshakes(self) -> None:
        """
        connectTimeout covers the TLS handshake with the target inside the
        tunnel: a target that accepts and stays silent times out.
        """
        proxy = self.startProxy()
        silent = reactor.listenTCP(
            0, Factory.forProtocol(Protocol), interface="127.0.0.1"
        )
        self.addCleanup(silent.stopListening)
        agent = self.agent(f"http://127.0.0.1:{proxy.port}", connectTimeout=0.3)
        port = silent.getHost().port
        error = await self.failureOf(
            agent.request(b"GET", b"https://127.0.0.1:%d/" % (port,))
        )
        self.assertIsInstance(error, ConnectTimeoutError)
        self.assertEqual(len(proxy.connects()), 1)
        await self.waitFor(lambda: not proxy.open, "proxy connection aborted")
        await self.assertPoolAtRest(agent.pool, idle=0)

    async def test_proxyNeverHandshakes(self) -> None:
        """
        connectTimeout covers the TLS handshake with an https:// proxy.
        """
        proxy = self.startProxy()
        agent = self.agent(f"https://127.0.0.1:{proxy.port}", connectTimeout=0.3)
        error = await self.failureOf(agent.request(b"GET", b"https://127.0.0.1:9/"))
        self.assertIsInstance(error, ConnectTimeoutError)
        await self.waitFor(lambda: not proxy.open, "proxy connection aborted")
        self.assertEqual(proxy.connects(), [])

    async def test_unreachable(self) -> None:
        """
        Nothing listening at the proxy's address: a temporary
        L{ProxyUnreachableError} naming the proxy.
        """
        port = unusedPort()
        agent = self.agent(f"http://alice:{SECRET}@127.0.0.1:{port}")
        error = await self.failureOf(agent.request(b"GET", b"https://127.0.0.1:9/"))
        self.assertIsInstance(error, ProxyUnreachableError)
        self.assertIn(f"http://127.0.0.1:{port}", str(error))
        self.assertNoSecret(str(error))
        self.assertTrue(isTemporaryNetworkError(error))

    async def test_unreachableForwarding(self) -> None:
        """
        The same for http:// requests forwarded to the proxy.
        """
        port = unusedPort()
        agent = self.agent(f"http://alice:{SECRET}@127.0.0.1:{port}")
        error = await self.failureOf(agent.request(b"GET", b"http://127.0.0.1:9/"))
        self.assertIsInstance(error, ProxyUnreachableError)
        key = agent.endpointFor(b"http://127.0.0.1:9/")[0]
        self.assertEqual(error.key, key)  # type: ignore[attr-defined]
        self.assertNoSecret(str(error), repr(error), logged=False)
        self.assertTrue(isTemporaryNetworkError(error))
