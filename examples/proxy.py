"""
Fetch pages through an HTTP proxy with L{PooledAgent}'s C{proxy=}.

Starts two twisted.web sites and Twisted's own forwarding proxy
(L{twisted.web.proxy.Proxy}) on 127.0.0.1 (free ports), then fetches
pages from both sites through the proxy: the requests go to the proxy in
absolute form, and the pool keys them by the proxy alone, so both sites
share the proxy connections.  A C{proxyFor} callable then sends some
requests through the proxy and others directly.  Prints what the pool did,
closes it and exits.

Run it with::

    python examples/proxy.py
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.web import http
from twisted.web.client import readBody
from twisted.web.proxy import Proxy
from twisted.web.resource import Resource
from twisted.web.server import Site

from pooled_http import HTTPConnectionPool, PooledAgent

# Give up (and fail) if the whole run takes longer than this.
DEADLINE = 20.0


class Named(Resource):
    """
    Answers every GET with the site's name and the path.
    """

    isLeaf = True

    def __init__(self, name: bytes) -> None:
        Resource.__init__(self)
        self.name = name

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return self.name + b" " + request.path


@defer.inlineCallbacks
def fetchAll(agent: PooledAgent, urls: list[bytes]) -> Any:
    """
    GET each URL in turn and print the answers.

    @param agent: The agent.
    @param urls: The URLs.
    """
    for url in urls:
        response = yield agent.request(b"GET", url)
        body = yield readBody(response)
        print(response.code, body.decode())


@defer.inlineCallbacks
def main(reactor: Any) -> Any:
    """
    Start the sites and the proxy, fetch through it, clean up.

    @param reactor: The reactor.
    """
    sites = [
        reactor.listenTCP(0, Site(Named(name)), interface="127.0.0.1")
        for name in (b"first", b"second")
    ]
    first, second = (b"http://127.0.0.1:%d" % (s.getHost().port,) for s in sites)
    proxyFactory = http.HTTPFactory()
    proxyFactory.protocol = Proxy  # type: ignore[assignment]
    proxyPort = reactor.listenTCP(0, proxyFactory, interface="127.0.0.1")
    proxyURL = f"http://127.0.0.1:{proxyPort.getHost().port}"

    pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=2, connectTimeout=5)
    try:
        # Every request through the proxy.
        agent = PooledAgent(reactor, pool=pool, proxy=proxyURL)
        urls = [first + b"/a", second + b"/b", first + b"/c", second + b"/d"]
        yield fetchAll(agent, urls).addTimeout(DEADLINE, reactor)
        print(f"pool keys: {sorted(map(repr, pool.stats().perKey))}")

        # Each request through the proxy or not, as proxyFor decides.
        def proxyFor(uri: bytes) -> str | None:
            return None if uri.startswith(second) else proxyURL

        chooser = PooledAgent(reactor, pool=pool, proxy=proxyFor)
        yield fetchAll(chooser, [first + b"/e", second + b"/f"]).addTimeout(
            DEADLINE, reactor
        )
        stats = pool.stats()
        print(f"keys now: {len(stats.perKey)}, connections opened: {stats.opened}")
    finally:
        yield pool.close(timeout=5)
        for port in (*sites, proxyPort):
            yield port.stopListening()
    print("done")


if __name__ == "__main__":
    task.react(main)
