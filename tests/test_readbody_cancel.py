"""
Over a real loopback socket: cancelling C{readBody} on a body that never
ends aborts the connection and frees its slot, so the next request to the
host is served even with one connection per host.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import CancelledError, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from pooled_http import HTTPConnectionPool, PooledAgent

reactor: Any = _reactor


class _Endless(Resource):
    """
    C{/endless} sends 3 of 1,000 promised bytes and stalls; C{/} answers.
    """

    isLeaf = True

    def __init__(self) -> None:
        Resource.__init__(self)
        self.stalled: list[Any] = []

    def render_GET(self, request: Any) -> Any:
        if request.path == b"/endless":
            request.setHeader(b"content-length", b"1000")
            request.write(b"abc")
            self.stalled.append(request)
            return NOT_DONE_YET
        return b"ok"


class ReadBodyCancelTests(TestCase):
    def setUp(self) -> None:
        self.resource = _Endless()
        self.port = reactor.listenTCP(0, Site(self.resource), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = b"http://127.0.0.1:%d" % (self.port.getHost().port,)

    @inlineCallbacks
    def check(self, agentClass: Any) -> Any:
        pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=1)
        self.addCleanup(pool.close)
        agent = agentClass(reactor, pool=pool)
        response = yield agent.request(b"GET", self.base + b"/endless")
        body = readBody(response)
        body.cancel()
        yield self.assertFailure(body, CancelledError)
        response = yield agent.request(b"GET", self.base + b"/")
        self.assertEqual((yield readBody(response)), b"ok")
        self.assertEqual(pool.stats().inUse, 0)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_stockAgent(self) -> None:
        return self.check(Agent)

    def test_pooledAgent(self) -> None:
        return self.check(PooledAgent)
