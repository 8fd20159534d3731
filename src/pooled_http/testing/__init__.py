"""
A test kit for code that makes HTTP requests through a pooled_http pool.

Three tools, usable from trial, pytest or any other framework:

  - L{MemoryNetwork}: an in-memory network that the pool's real connections
    talk to.  Each host is served by a L{MemoryServer} (a C{twisted.web}
    resource, or a plain callable) that keeps connections alive, numbers
    them and counts the requests on each, so a test can say "this request
    reused connection 3".  Everything runs on a
    L{twisted.internet.task.Clock}: no sockets, no real time, no global
    reactor.  Faults are scripted on the server: close idle connections,
    reset or stall a response, drip it a few bytes per tick, close after N
    requests, refuse or never answer connection attempts.
  - L{assertPoolAtRest}: fails with a readable message if a pool still has
    connections in use, connection attempts, waiting requests or timers.
  - L{startLocalServer}: a real C{twisted.web} server on 127.0.0.1 (HTTP, or
    HTTPS with a certificate made for the test by C{trustme}), for
    integration tests, whose C{stop()} fires once the port and every server
    connection are closed.

L{PoolTestMixin} puts these together for trial test cases; the pytest
fixtures live in L{pooled_http.pytest_plugin}.

A test on the in-memory network::

    network = MemoryNetwork()
    server = network.addServer("api.example", handler=lambda request: b"ok")
    pool = HTTPConnectionPool(network.clock)
    agent = network.pooledAgent(pool)

    d = agent.request(b"GET", b"http://api.example/")
    network.flush()
    ...
    assert network.requests[-1].connectionId == 1
    pool.close(); network.flush()
    assertPoolAtRest(pool)

Time moves only when the test moves it: L{MemoryNetwork.flush} delivers
everything that is due now, L{MemoryNetwork.advance} moves the clock on.
"""


from __future__ import annotations

from ._local import LocalServer, startLocalServer
from ._mixin import PoolTestMixin
from ._network import MemoryNetwork
from ._rest import assertPoolAtRest
from ._server import MemoryServer, RequestRecord, ServerConnection, Stall

__all__ = [
    "MemoryNetwork",
    "MemoryServer",
    "ServerConnection",
    "RequestRecord",
    "Stall",
    "assertPoolAtRest",
    "LocalServer",
    "startLocalServer",
    "PoolTestMixin",
]
