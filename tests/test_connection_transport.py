"""
L{pooled_http._http11response.connectionTransport} over loopback: the
transport a response came on, on each kind of connection (HTTP/1.1 on
llhttp and on Twisted's protocol, HTTP/2), readable while the request's
Deferred fires and while the body comes, and let go once the body is over.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest
from twisted.web.client import readBody

from pooled_http import HTTPConnectionPool, PooledAgent
from pooled_http._http11response import connectionTransport
from tests.support.servers import LOOPBACK, TLSMaterial

try:
    from tests.support.h2server import H2ServerFactory, Script, serverTLSOptions
except ImportError:  # pragma: no cover - h2 missing
    H2SKIP = "h2 is not installed (pip install 'pooled_http[http2]')"
else:
    H2SKIP = ""


class _HeadFirst(Protocol):
    """
    Answers C{/empty} with a 204 at once, anything else with a head
    announcing two bytes, whose body L{sendBody} sends later.
    """

    def connectionMade(self) -> None:
        self.factory.served.append(self)  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if b" /empty " in data:
            self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # type: ignore[union-attr]
        else:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")  # type: ignore[union-attr]

    def sendBody(self) -> None:
        self.transport.write(b"ok")  # type: ignore[union-attr]


class HTTP11Tests(unittest.TestCase):
    timeout = 30

    def setUp(self) -> None:
        factory = Factory.forProtocol(_HeadFirst)
        factory.served = []  # type: ignore[attr-defined]
        self.served: list[_HeadFirst] = factory.served  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface=LOOPBACK)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        self.base = b"http://%s:%d" % (LOOPBACK.encode(), self.port)

    async def check(self, protocol: str) -> None:
        pool = HTTPConnectionPool(reactor, protocol=protocol)
        self.addCleanup(pool.close)
        agent = PooledAgent(reactor, pool=pool)
        seen: list[Any] = []

        def note(response: Any) -> Any:
            seen.append(connectionTransport(response))
            return response

        # A body over before the Deferred fires: readable in its callbacks.
        empty = await agent.request(b"GET", self.base + b"/empty").addCallback(note)
        self.assertEqual(seen[0].getPeer().port, self.port)
        # A body still coming: readable until it is over.
        response = await agent.request(b"GET", self.base + b"/two")
        transport = connectionTransport(response)
        self.assertIs(transport, seen[0])
        body = readBody(response)
        self.served[-1].sendBody()
        self.assertEqual(await body, b"ok")
        self.assertIsNone(connectionTransport(response))
        self.assertIsNone(connectionTransport(empty))

    async def test_httptools(self) -> None:
        """
        On the llhttp connection.
        """
        await self.check("httptools")

    async def test_twisted(self) -> None:
        """
        On Twisted's protocol.
        """
        await self.check("twisted")

    def test_otherResponse(self) -> None:
        """
        Anything else has none.
        """
        self.assertIsNone(connectionTransport(object()))  # type: ignore[arg-type]


class HTTP2Tests(unittest.TestCase):
    timeout = 30

    async def test_http2(self) -> None:
        """
        On an HTTP/2 connection: the TLS transport, with the server's
        certificate.
        """
        if H2SKIP:
            raise unittest.SkipTest(H2SKIP)
        tls = TLSMaterial()
        port = reactor.listenSSL(  # type: ignore[attr-defined]
            0, H2ServerFactory(Script()), serverTLSOptions(tls, [b"h2"]), interface=LOOPBACK
        )
        self.addCleanup(port.stopListening)
        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.close)
        agent = PooledAgent(
            reactor, pool=pool, contextFactory=tls.clientPolicy(), http2=True
        )
        url = b"https://%s:%d/x" % (LOOPBACK.encode(), port.getHost().port)
        response = await agent.request(b"GET", url)
        self.assertEqual(response.version, (b"HTTP", 2, 0))
        transport = connectionTransport(response)
        self.assertEqual(transport.getPeer().port, port.getHost().port)
        self.assertIsNotNone(transport.getPeerCertificate())
        await readBody(response)
        self.assertIsNone(connectionTransport(response))
