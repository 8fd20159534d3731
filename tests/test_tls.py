"""
Tests for L{pooled_http._tls}: the TLS layer of the pool's connections
gives what Twisted's gives, byte for byte and failure for failure, over
in-memory transports against a Twisted TLS server.
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import Connection, Error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pooled_http import _tls
from pooled_http._tls import _TLSFactory, _TLSProtocol, wrapClientTLS

from .support.servers import LOOPBACK, TLSMaterial

_MATERIAL = TLSMaterial()


class _Collector(Protocol):
    """
    Keeps what it is given, and why it ended.
    """

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.calls = 0
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)
        self.calls += 1

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        self.reason = reason

    def received(self) -> bytes:
        return b"".join(self.data)


class _Pair:
    """
    A TLS client of the given factory class and a Twisted TLS server, each
    over a L{StringTransport}, and a pump that moves the bytes in pieces of
    a given size.
    """

    def __init__(self, factoryClass: type, connectionClass: type | None = None) -> None:
        self.clock = MemoryReactorClock()
        creator = _MATERIAL.clientPolicy().creatorForNetloc(LOOPBACK.encode(), 443)
        if connectionClass is not None:
            original = creator.clientConnectionForTLS

            def subclassed(tlsProtocol: Any) -> Any:
                connection = original(tlsProtocol)
                connection.__class__ = connectionClass
                return connection

            creator.clientConnectionForTLS = subclassed
        self.client = _Collector()
        self.server = _Collector()
        clientFactory = factoryClass(
            creator, True, Factory.forProtocol(lambda: self.client), clock=self.clock
        )
        serverFactory = TLSMemoryBIOFactory(
            _MATERIAL.serverOptions(),
            False,
            Factory.forProtocol(lambda: self.server),
            clock=self.clock,
        )
        self.clientTLS: TLSMemoryBIOProtocol = clientFactory.buildProtocol(None)
        self.serverTLS: TLSMemoryBIOProtocol = serverFactory.buildProtocol(None)
        self.clientWire = StringTransport()
        self.serverWire = StringTransport()
        self.serverTLS.makeConnection(self.serverWire)
        self.clientTLS.makeConnection(self.clientWire)
        self.pump()

    def pump(self, piece: int = 2**20, toClient: bool = True) -> None:
        """
        Move bytes both ways until neither side has any to send.
        """
        for _ in range(1000):
            self.clock.advance(0)
            up = self.clientWire.value()
            down = self.serverWire.value()
            if not up and not down:
                return
            self.clientWire.clear()
            self.serverWire.clear()
            for i in range(0, len(up), piece):
                self.serverTLS.dataReceived(up[i : i + piece])
            if toClient:
                for i in range(0, len(down), piece):
                    self.clientTLS.dataReceived(down[i : i + piece])
        raise AssertionError("the pair never went quiet")  # pragma: no cover


def _outcome(factoryClass: type, script: Any) -> tuple[bytes, bytes, Any]:
    """
    Run C{script(pair)}; what each side received, and the reason the
    client's protocol was given when it ended (its type, or L{None}).
    """
    pair = _Pair(factoryClass)
    script(pair)
    reason = pair.client.reason
    return (
        pair.client.received(),
        pair.server.received(),
        None if reason is None else reason.type,
    )


class DifferentialTests(SynchronousTestCase):
    """
    Each script gives the same outcome with L{_TLSFactory} as with
    Twisted's L{TLSMemoryBIOFactory}.
    """

    def same(self, script: Any) -> tuple[bytes, bytes, Any]:
        ours = _outcome(_TLSFactory, script)
        self.assertEqual(ours, _outcome(TLSMemoryBIOFactory, script))
        return ours

    def test_requestAndResponse(self) -> None:
        """
        A request and its response, each in one record.
        """

        def script(pair: _Pair) -> None:
            pair.clientTLS.write(b"GET / HTTP/1.1\r\n\r\n")
            pair.pump()
            pair.serverTLS.write(b"HTTP/1.1 200 OK\r\n\r\n")
            pair.pump()

        client, server, reason = self.same(script)
        self.assertEqual(client, b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertEqual(server, b"GET / HTTP/1.1\r\n\r\n")
        self.assertIsNone(reason)

    def test_manyRecordsOneRead(self) -> None:
        """
        Several records arriving in one read are all decrypted and
        delivered, in order: the loop goes on while the buffer holds
        bytes.
        """
        pieces = [bytes([65 + i]) * (3000 + i) for i in range(20)]

        def script(pair: _Pair) -> None:
            for piece in pieces:
                pair.serverTLS._write(piece)  # one record each, unaggregated
            pair.pump()

        client, _, _ = self.same(script)
        self.assertEqual(client, b"".join(pieces))

    def test_bigWrites(self) -> None:
        """
        Writes larger than a record (and than the read size) go in pieces
        and arrive whole, both ways.
        """
        big = bytes(range(256)) * 600  # 153,600 bytes

        def script(pair: _Pair) -> None:
            pair.clientTLS.write(big)
            pair.serverTLS.write(big[::-1])
            pair.pump()

        client, server, _ = self.same(script)
        self.assertEqual(client, big[::-1])
        self.assertEqual(server, big)

    def test_byteAtATime(self) -> None:
        """
        Records arriving a byte at a time (a partial record leaves the
        buffer empty and nothing to return) come out whole.
        """

        def script(pair: _Pair) -> None:
            pair.serverTLS.write(b"x" * 5000)
            pair.pump(piece=1)

        client, _, _ = self.same(script)
        self.assertEqual(client, b"x" * 5000)

    def test_closeNotify(self) -> None:
        """
        The server's close_notify ends the client's protocol cleanly, after
        the data before it.
        """

        def script(pair: _Pair) -> None:
            pair.serverTLS.write(b"last words")
            pair.serverTLS.loseConnection()
            pair.pump()
            pair.clientWire.loseConnection()
            if pair.client.reason is None:
                pair.clientTLS.connectionLost(Failure(ConnectionDone()))

        client, _, reason = self.same(script)
        self.assertEqual(client, b"last words")
        self.assertIs(reason, ConnectionDone)

    def test_corruptRecord(self) -> None:
        """
        A record that fails its integrity check fails the connection with
        OpenSSL's error, and nothing of it is delivered.
        """

        def script(pair: _Pair) -> None:
            pair.serverTLS.write(b"secret")
            pair.clock.advance(0)
            record = bytearray(pair.serverWire.value())
            pair.serverWire.clear()
            record[-1] ^= 0xFF
            pair.clientTLS.dataReceived(bytes(record))
            if pair.clientWire.disconnecting and pair.client.reason is None:
                pair.clientTLS.connectionLost(Failure(ConnectionDone()))

        client, _, reason = self.same(script)
        self.assertEqual(client, b"")
        self.assertIs(reason, Error)


class DirectTests(SynchronousTestCase):
    """
    When the data calls go to OpenSSL directly, and when not.
    """

    def test_fewerReads(self) -> None:
        """
        One response costs the client one decryption call: none made only to
        find the buffer empty.
        """
        pair = _Pair(_TLSFactory)
        calls: list[int] = []
        real = _tls._recv

        def counting(connection: Any) -> bytes:
            calls.append(1)
            return real(connection)

        self.patch(_tls, "_recv", counting)
        pair.serverTLS.write(b"HTTP/1.1 200 OK\r\n\r\n")
        pair.pump()
        self.assertEqual(pair.client.received(), b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertEqual(len(calls), 1)

    def test_plainConnectionOnly(self) -> None:
        """
        A connection of a subclass of pyOpenSSL's C{Connection} (which may
        change what its methods do) gets Twisted's layer as it is, and works.
        """

        class Subclass(Connection):
            sent = 0

            def send(self, buf: Any, flags: int = 0) -> int:
                Subclass.sent += 1
                return super().send(buf, flags)

        pair = _Pair(_TLSFactory, connectionClass=Subclass)
        self.assertFalse(_tls._direct(pair.clientTLS._tlsConnection))
        self.assertFalse(pair.clientTLS._directCalls)
        pair.clientTLS.write(b"hello")
        pair.serverTLS.write(b"world")
        pair.pump()
        self.assertEqual(pair.server.received(), b"hello")
        self.assertEqual(pair.client.received(), b"world")
        self.assertGreaterEqual(Subclass.sent, 1)

    def test_directWhenPlain(self) -> None:
        """
        Over this pyOpenSSL, a plain connection's calls go direct.
        """
        pair = _Pair(_TLSFactory)
        self.assertIsInstance(pair.clientTLS, _TLSProtocol)
        self.assertTrue(pair.clientTLS._directCalls)

    def test_notBytes(self) -> None:
        """
        Bytes that are not C{bytes} (a C{bytearray}; Twisted's own write
        paths join what they are given into C{bytes}) reach the peer.
        """
        pair = _Pair(_TLSFactory)
        pair.clientTLS._write(bytearray(b"viewed"))  # type: ignore[arg-type]
        pair.pump()
        self.assertEqual(pair.server.received(), b"viewed")

    def test_failedDecryptionNotDelivered(self) -> None:
        """
        After the connection failed, bytes still arriving deliver nothing.
        """
        pair = _Pair(_TLSFactory)
        pair.clientTLS.dataReceived(b"\x17\x03\x03\x00\x05garbage")
        self.assertIsNotNone(pair.clientTLS._reason)
        pair.serverTLS.write(b"later")
        pair.pump()
        self.assertEqual(pair.client.received(), b"")


class WrapClientTLSTests(SynchronousTestCase):
    """
    L{wrapClientTLS} connects the endpoint it wraps with the TLS layer
    over it.
    """

    def test_connect(self) -> None:
        creator = _MATERIAL.clientPolicy().creatorForNetloc(b"localhost", 443)
        factories: list[Any] = []

        class Endpoint:
            def connect(self, factory: Any) -> Deferred[Any]:
                factories.append(factory)
                protocol = factory.buildProtocol(None)
                protocol.makeConnection(StringTransport())
                return succeed(protocol)

        application = Factory.forProtocol(Protocol)
        connected: list[Any] = []
        wrapClientTLS(creator, Endpoint()).connect(application).addCallback(
            connected.append
        )
        [factory] = factories
        self.assertIsInstance(factory, _TLSFactory)
        self.assertIs(factory.wrappedFactory, application)
        [protocol] = connected
        self.assertIs(type(protocol), Protocol)
        self.assertIsInstance(protocol.transport, _TLSProtocol)

    def test_sendNowKnowsIt(self) -> None:
        """
        The layer is one L{pooled_http._sending.sendNow} knows: it keeps
        small writes for the end of the turn, as Twisted's does.
        """
        from pooled_http._sending import _TLS, _kind

        pair = _Pair(_TLSFactory)
        self.assertIs(_kind(pair.clientTLS), _TLS)
        pair.clientTLS.write(b"kept")
        self.assertEqual(pair.clientTLS._aggregator._buffer, [b"kept"])


class _Answer(Protocol):
    """
    Answers each request with a body of L{LoopbackTests.BODY}.
    """

    def dataReceived(self, data: bytes) -> None:
        body = LoopbackTests.BODY
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )


class LoopbackTests(TestCase):
    """
    L{pooled_http.PooledAgent}'s HTTPS connections run on the layer, over
    loopback sockets, and fail as Twisted's do.
    """

    timeout = 30

    #: More than a few records' worth.
    BODY = bytes(range(256)) * 400

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        port = reactor.listenSSL(  # type: ignore[attr-defined]
            0,
            Factory.forProtocol(_Answer),
            _MATERIAL.serverOptions(),
            interface=LOOPBACK,
        )
        self.addCleanup(port.stopListening)
        self.url = b"https://%s:%d/" % (LOOPBACK.encode(), port.getHost().port)

    async def test_requests(self) -> None:
        """
        Two requests on one connection of the layer, with the server's
        certificate readable.
        """
        from twisted.web.client import readBody

        from pooled_http import HTTPConnectionPool, PooledAgent
        from pooled_http._http11response import connectionTransport

        pool = HTTPConnectionPool(self.reactor)
        self.addCleanup(pool.close)
        agent = PooledAgent(
            self.reactor, pool=pool, contextFactory=_MATERIAL.clientPolicy()
        )
        transports = []
        for _ in range(2):
            response = await agent.request(b"GET", self.url)
            transports.append(connectionTransport(response))
            self.assertEqual(await readBody(response), self.BODY)
        self.assertIs(transports[0], transports[1])
        self.assertIsInstance(transports[0], _TLSProtocol)
        self.assertTrue(transports[0]._directCalls)
        self.assertIsNotNone(transports[0].getPeerCertificate())
        self.assertEqual(pool.stats().opened, 1)

    async def test_untrusted(self) -> None:
        """
        A certificate of a CA the policy does not trust fails the request
        as it fails through Twisted's layer (a stock C{Agent} over the same
        pool builds its own endpoints, with Twisted's C{wrapClientTLS}).
        """
        from twisted.web.client import Agent, ResponseNeverReceived

        from pooled_http import HTTPConnectionPool, PooledAgent

        other = TLSMaterial().clientPolicy()
        pool = HTTPConnectionPool(self.reactor)
        self.addCleanup(pool.close)
        failures = []
        for agent in (
            PooledAgent(self.reactor, pool=pool, contextFactory=other),
            Agent(self.reactor, pool=pool, contextFactory=other),
        ):
            with self.assertRaises(ResponseNeverReceived) as caught:
                await agent.request(b"GET", self.url)
            failures.append([reason.type for reason in caught.exception.reasons])
        self.assertEqual(failures[0], failures[1])
        self.assertEqual(failures[0], [Error])
