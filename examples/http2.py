"""
HTTP/2 with L{PooledAgent}: fifty requests at once on one connection.

Starts its own twisted.web server on 127.0.0.1 over TLS (a certificate
from a throwaway CA; twisted.web speaks HTTP/2 when h2 is installed),
sends fifty GETs at once with C{http2=True}, prints the protocol of the
responses and what the pool did (one connection opened), closes the pool
and exits.  Needs the C{http2} extra and trustme::

    pip install 'pooled_http[http2]' trustme
    python examples/http2.py
"""

from __future__ import annotations

from typing import Any

import trustme
from twisted.internet import defer, ssl, task
from twisted.web.client import BrowserLikePolicyForHTTPS, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from pooled_http import HTTPConnectionPool, PooledAgent

# Give up (and fail) if the whole run takes longer than this.
DEADLINE = 20.0


class Hello(Resource):
    """
    Answers every GET with the path and the protocol it came over.
    """

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return request.path + b" over " + request.clientproto


def serve(reactor: Any) -> tuple[Any, Any]:
    """
    Listen on a free port of 127.0.0.1 over TLS offering h2 and
    http/1.1; return the port and a client policy trusting it.
    """
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    key = ssl.PrivateCertificate.loadPEM(issued.private_key_and_cert_chain_pem.bytes())
    options = ssl.CertificateOptions(
        privateKey=key.privateKey.original,
        certificate=key.original,
        acceptableProtocols=[b"h2", b"http/1.1"],
    )
    port = reactor.listenSSL(0, Site(Hello()), options, interface="127.0.0.1")
    root = ssl.Certificate.loadPEM(ca.cert_pem.bytes())
    return port, BrowserLikePolicyForHTTPS(trustRoot=root)


async def main(reactor: Any) -> None:
    port, policy = serve(reactor)
    base = f"https://127.0.0.1:{port.getHost().port}"
    pool = HTTPConnectionPool(reactor, maxConcurrentStreams=100)
    agent = PooledAgent(reactor, pool=pool, contextFactory=policy, http2=True)

    async def get(n: int) -> tuple[Any, bytes]:
        response = await agent.request(b"GET", f"{base}/page/{n}".encode())
        return response.version, await readBody(response)

    try:
        results = await defer.gatherResults(
            [defer.ensureDeferred(get(n)) for n in range(50)]
        )
        versions = {version for version, _ in results}
        print("versions:", versions)
        print("first body:", results[0][1].decode())
        stats = pool.stats()
        print(f"connections opened: {stats.opened}")
        assert versions == {(b"HTTP", 2, 0)}, versions
        assert stats.opened == 1, stats
    finally:
        await pool.close()
        await port.stopListening()


def run(reactor: Any) -> defer.Deferred[None]:
    d = defer.ensureDeferred(main(reactor))
    d.addTimeout(DEADLINE, reactor)
    return d


if __name__ == "__main__":
    task.react(run)
