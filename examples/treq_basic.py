"""
Use pooled_http from treq, three ways.

1. L{treqClient}: one call gives a ready C{treq.HTTPClient} over a
   L{PooledAgent} and a new pool; C{client.close()} closes the pool.
2. treq's module-level functions with C{pool=}: treq builds a stock
   C{Agent} over our pool.
3. treq's module-level functions with C{agent=}: a L{PooledAgent} of your
   own.

Starts its own twisted.web server on 127.0.0.1 (a free port), runs, closes
everything and exits.

Run it with::

    python examples/treq_basic.py
"""

from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet import defer, task
from twisted.web.resource import Resource
from twisted.web.server import Site

from pooled_http import HTTPConnectionPool, PooledAgent, treqClient

# Give up (and fail) if the whole run takes longer than this.
DEADLINE = 20.0


class Echo(Resource):
    """
    Answers with a JSON document describing the request.
    """

    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        body = request.content.read()
        return json.dumps(
            {
                "method": request.method.decode(),
                "path": request.path.decode(),
                "body": json.loads(body) if body else None,
            }
        ).encode()


@defer.inlineCallbacks
def main(reactor: Any) -> Any:
    """
    Start the server, make the requests with treq, clean up.

    @param reactor: The reactor.
    """
    port = reactor.listenTCP(0, Site(Echo()), interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}"
    try:
        yield useTreq(reactor, url).addTimeout(DEADLINE, reactor)
    finally:
        yield port.stopListening()
    print("done")


@defer.inlineCallbacks
def useTreq(reactor: Any, url: str) -> Any:
    """
    Make the requests.

    @param reactor: The reactor.
    @param url: The server's URL.
    """

    # 1. A ready client; pool options pass through.
    client = treqClient(reactor, maxConnectionsPerHost=2, responseTimeout=10)
    try:
        response = yield client.get(url + "/client")
        print("treqClient GET:", (yield response.json()))
        response = yield client.post(url + "/client", json={"answer": 42})
        print("treqClient POST:", (yield response.json()))
    finally:
        yield client.close()

    # 2. and 3. Module-level treq functions with a pool you own.
    pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=2)
    agent = PooledAgent(reactor, pool=pool)
    try:
        response = yield treq.get(url + "/module-pool", pool=pool)
        print("treq.get(pool=):", (yield response.json()))
        response = yield treq.get(url + "/module-agent", agent=agent)
        print("treq.get(agent=):", (yield response.json()))
        print(repr(pool))
    finally:
        yield pool.close()


if __name__ == "__main__":
    task.react(main)
