"""
Fetch pages with a L{PooledAgent} over a capped L{HTTPConnectionPool}.

Starts its own twisted.web server on 127.0.0.1 (a free port), makes a few
requests one after another (one keep-alive connection serves them all),
then twenty at once (no more than four connections are opened), prints what
the pool did, closes the pool and exits.

Run it with::

    python examples/agent_basic.py
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.web.client import readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from pooled_http import HTTPConnectionPool, PooledAgent

# Give up (and fail) if the whole run takes longer than this.
DEADLINE = 20.0


class Hello(Resource):
    """
    Answers every GET with a short greeting.
    """

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"hello from " + request.path


@defer.inlineCallbacks
def fetch(agent: PooledAgent, base: bytes) -> Any:
    """
    Make the requests.

    @param agent: The agent.
    @param base: The server's URL.
    """
    # One after another: every request after the first reuses the same
    # keep-alive connection.
    for i in range(3):
        response = yield agent.request(b"GET", base + b"/page/%d" % (i,))
        body = yield readBody(response)
        print(response.code, body.decode())

    # Twenty at once: the pool opens at most four connections and queues
    # the rest fairly until a connection comes back.
    responses = yield defer.gatherResults(
        [agent.request(b"GET", base + b"/burst/%d" % (i,)) for i in range(20)]
    )
    bodies = yield defer.gatherResults([readBody(r) for r in responses])
    print(
        f"burst: {len(bodies)} responses, "
        f"all 200: {all(r.code == 200 for r in responses)}"
    )


@defer.inlineCallbacks
def main(reactor: Any) -> Any:
    """
    Start the server, make the requests, show the stats, clean up.

    @param reactor: The reactor.
    """
    port = reactor.listenTCP(0, Site(Hello()), interface="127.0.0.1")
    base = b"http://127.0.0.1:%d" % (port.getHost().port,)

    pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=4, connectTimeout=5)
    agent = PooledAgent(reactor, pool=pool)
    try:
        yield fetch(agent, base).addTimeout(DEADLINE, reactor)
        stats = pool.stats()
        print(f"connections opened: {stats.opened}, reused: {stats.reused}")
        print(repr(pool))
    finally:
        yield pool.close(timeout=5)
        yield port.stopListening()
    print("done")


if __name__ == "__main__":
    task.react(main)
