"""
Fallback benchmark server (used when nginx is not installed): a twisted.web
site answering every GET with a 1 KiB body on several loopback ports, one of
them over TLS, plus a status page imitating nginx's C{stub_status} so the
runner counts connections the same way with either server.

Run by benchmarks/run.py as::

    python benchmarks/twisted_server.py PORTS CERT_PEM KEY_PEM

It prints one JSON line C{{"ports": [...], "tlsPort": N, "statusPort": N}}
once listening, and serves until its standard input closes.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from _common import BODY_SIZE, raiseFileLimit
from twisted.internet import ssl, stdio
from twisted.internet.protocol import Protocol
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

# The repository root, for the connection counter the tests use too.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.support.counting import CountingFactory  # noqa: E402

BODY = b"x" * BODY_SIZE


class Counters:
    """
    Server-wide counters.

    @ivar requests: Requests answered so far.
    """

    def __init__(self) -> None:
        self.requests = 0


class Body(Resource):
    """
    Answers every GET with the 1 KiB body.
    """

    isLeaf = True

    def __init__(self, counters: Counters) -> None:
        Resource.__init__(self)
        self.counters = counters

    def render_GET(self, request: Request) -> bytes:
        """
        @param request: The request.
        @return: The body.
        """
        self.counters.requests += 1
        request.setHeader(b"content-type", b"application/octet-stream")
        return BODY


class Status(Resource):
    """
    Imitates nginx's C{stub_status} page.
    """

    isLeaf = True

    def __init__(self, counters: Counters, factories: list[CountingFactory]) -> None:
        Resource.__init__(self)
        self.counters = counters
        self.factories = factories

    def render_GET(self, request: Request) -> bytes:
        """
        @param request: The request.
        @return: The counters in C{stub_status} format.
        """
        self.counters.requests += 1
        active = sum(f.open for f in self.factories)
        accepts = sum(f.total for f in self.factories)
        return (
            f"Active connections: {active} \n"
            f"server accepts handled requests\n"
            f" {accepts} {accepts} {self.counters.requests} \n"
            f"Reading: 0 Writing: 1 Waiting: {max(0, active - 1)} \n"
        ).encode("ascii")


class StopOnEOF(Protocol):
    """
    Stops the reactor when the runner closes our standard input.
    """

    def connectionLost(self, reason: object = None) -> None:
        """
        @param reason: Why stdin closed.
        """
        from twisted.internet import reactor as installedReactor

        reactor: Any = installedReactor

        reactor.stop()


def main() -> None:
    """
    Listen, report the ports, serve until stdin closes.
    """
    from twisted.internet import reactor as installedReactor

    reactor: Any = installedReactor

    raiseFileLimit()
    count = int(sys.argv[1])
    with open(sys.argv[2], "rb") as f:
        certPem = f.read()
    with open(sys.argv[3], "rb") as f:
        keyPem = f.read()
    counters = Counters()
    factories: list[CountingFactory] = []
    bodySite = Site(Body(counters))
    bodySite.timeOut = None
    bodySite.displayTracebacks = False
    statusSite = Site(Status(counters, factories))

    def factory(site: Site) -> CountingFactory:
        wrapped = CountingFactory(site)
        factories.append(wrapped)
        return wrapped

    ports = [
        reactor.listenTCP(0, factory(bodySite), backlog=1024, interface="127.0.0.1")
        for _ in range(count)
    ]
    privateCertificate = ssl.PrivateCertificate.loadPEM(certPem + keyPem)
    options = ssl.CertificateOptions(
        privateKey=privateCertificate.privateKey.original,
        certificate=privateCertificate.original,
        # Clients offering ALPN (httpx) need the server to choose one.
        acceptableProtocols=[b"http/1.1"],
    )
    tlsPort = reactor.listenSSL(
        0, factory(bodySite), options, backlog=1024, interface="127.0.0.1"
    )
    statusPort = reactor.listenTCP(0, factory(statusSite), interface="127.0.0.1")
    info = {
        "ports": [p.getHost().port for p in ports],
        "tlsPort": tlsPort.getHost().port,
        "statusPort": statusPort.getHost().port,
    }
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    stdio.StandardIO(StopOnEOF())
    reactor.run()


if __name__ == "__main__":
    main()
