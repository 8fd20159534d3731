"""
A real loopback server for integration tests, HTTP or HTTPS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.protocols.policies import WrappingFactory
from twisted.web.server import Site

if TYPE_CHECKING:  # pragma: no cover

    pass

from ._server import _EchoResource


class _TrackingFactory(WrappingFactory):
    """
    Wraps a server factory and tells its L{LocalServer} when a connection
    closes.
    """

    def __init__(self, wrappedFactory: Any, server: LocalServer) -> None:
        super().__init__(wrappedFactory)
        self.server = server

    def registerProtocol(self, p: Any) -> None:
        super().registerProtocol(p)
        self.server.accepted += 1

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        self.server._maybeStopped()


class LocalServer:
    """
    A C{twisted.web} server listening on a loopback address and a free
    port, over HTTP or HTTPS; made by L{startLocalServer}.

    @ivar reactor: The reactor it listens with.
    @ivar tls: Whether it speaks HTTPS.
    @ivar port: The listening port's number.
    @ivar accepted: How many connections it accepted.
    @ivar policy: For HTTPS, an L{twisted.web.iweb.IPolicyForHTTPS} trusting this server's
        certificate authority (pass it as C{contextFactory} to C{Agent} or
        C{PooledAgent}); L{None} for HTTP.
    @ivar caCertificatePEM: For HTTPS, the authority's certificate in PEM.
    """

    def __init__(
        self,
        resource: Any,
        reactor: Any,
        *,
        tls: bool = False,
        interface: str = "127.0.0.1",
    ) -> None:
        self.reactor = reactor
        self.tls = tls
        self.accepted = 0
        self.policy: Any = None
        self.caCertificatePEM: bytes | None = None
        self._interface = interface
        self._stopping: list[Deferred[None]] = []
        self._stopped = False
        self._portClosed = False
        self._abortCall: DelayedCall | None = None
        self.site = Site(resource)
        self._factory = _TrackingFactory(self.site, self)
        if tls:
            self._listening = reactor.listenSSL(
                0, self._factory, self._serverOptions(interface), interface=interface
            )
        else:
            self._listening = reactor.listenTCP(0, self._factory, interface=interface)
        self.port: int = self._listening.getHost().port

    def _serverOptions(self, interface: str) -> Any:
        import trustme
        from twisted.internet import ssl
        from twisted.web.client import BrowserLikePolicyForHTTPS

        ca = trustme.CA()
        certificate = ca.issue_cert(interface)
        self.caCertificatePEM = ca.cert_pem.bytes()
        self.policy = BrowserLikePolicyForHTTPS(
            trustRoot=ssl.Certificate.loadPEM(self.caCertificatePEM)
        )
        pem = certificate.private_key_and_cert_chain_pem.bytes()
        return ssl.PrivateCertificate.loadPEM(pem).options()

    def __repr__(self) -> str:
        return (
            f"<LocalServer {self.url()} open={self.openConnections} "
            f"accepted={self.accepted}>"
        )

    @property
    def openConnections(self) -> int:
        """
        Server connections open now.
        """
        return len(self._factory.protocols)

    def url(self, path: str = "/") -> str:
        """
        The URL of C{path} on this server, e.g. C{"http://127.0.0.1:4321/a"}.
        """
        host = f"[{self._interface}]" if ":" in self._interface else self._interface
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def stop(self, abortAfter: float = 5.0) -> Deferred[None]:
        """
        Stop listening and close every server connection; a connection
        still open C{abortAfter} seconds later is aborted.

        @param abortAfter: Seconds connections may take to close politely.
        @return: A Deferred firing once the port and every server connection
            are closed.
        """
        d: Deferred[None] = Deferred()
        self._stopping.append(d)
        if not self._stopped:
            self._stopped = True
            maybeDeferred(self._listening.stopListening).addBoth(self._portDone)
            for protocol in list(self._factory.protocols):
                protocol.transport.loseConnection()
            if self._factory.protocols:
                self._abortCall = self.reactor.callLater(abortAfter, self._abortAll)
        self._maybeStopped()
        return d

    def _portDone(self, result: object) -> None:
        self._portClosed = True
        self._maybeStopped()

    def _abortAll(self) -> None:
        self._abortCall = None
        for protocol in list(self._factory.protocols):
            protocol.transport.abortConnection()

    def _maybeStopped(self) -> None:
        if not (self._stopped and self._portClosed) or self._factory.protocols:
            return
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        self._abortCall = None
        waiting, self._stopping = self._stopping, []
        for d in waiting:
            d.callback(None)


def startLocalServer(
    resource: Any = None,
    *,
    reactor: Any = None,
    tls: bool = False,
    interface: str = "127.0.0.1",
) -> LocalServer:
    """
    Start a C{twisted.web} server on C{interface} (a loopback address) and a
    free port.

    For HTTPS a certificate authority and a certificate for C{interface}
    are made with C{trustme} (install C{pooled_http[testing]}); the client
    side trusts it through C{server.policy}::

        server = startLocalServer(resource, tls=True)
        agent = PooledAgent(reactor, pool=pool, contextFactory=server.policy)
        ...
        yield server.stop()

    @param resource: What to serve; by default a resource answering each
        request with its method and path.
    @param reactor: The reactor; by default the global one.
    @param tls: Whether to speak HTTPS.
    @param interface: The loopback address to listen on (C{"127.0.0.1"} or
        C{"::1"}).
    @return: The running L{LocalServer}.
    @raise ValueError: If C{interface} is not a loopback address.
    """
    import ipaddress

    if not ipaddress.ip_address(interface).is_loopback:
        raise ValueError(f"interface must be a loopback address, not {interface!r}")
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    return LocalServer(
        resource if resource is not None else _EchoResource(),
        reactor,
        tls=tls,
        interface=interface,
    )


# trial
