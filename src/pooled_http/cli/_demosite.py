"""
The synthetic site of C{pooled-http demo} (and of the command's tests),
served on 127.0.0.1.

L{DemoResource} serves:

    - C{/page/N}: a small page (1 to 8 KiB);
    - C{/slow/MS}: a page sent after MS milliseconds;
    - C{/close/N}: a page after which the server closes the connection
      (C{Connection: close});
    - C{/status/CODE}: an empty response with that status;
    - C{/hang}: a response that never comes;
    - C{/echo}: a JSON description of the request (method, headers, body
      length).

L{CountingFactory} counts the connections the server accepts, so that pools
are measured from the server's side.
"""

from __future__ import annotations

import json
import random
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.protocols.policies import WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from .._timers import cancelCall

__all__ = [
    "DemoResource",
    "CountingFactory",
    "QuietSite",
    "listenDemoSite",
    "demoURLs",
]


class DemoResource(Resource):
    """
    The synthetic site of the demo (and of the command's tests).
    """

    isLeaf = True

    def __init__(self, reactor: Any) -> None:
        """
        @param reactor: Schedules the slow pages.
        """
        Resource.__init__(self)
        self._reactor = reactor

    def render(self, request: Request) -> bytes | int:
        """
        Serve any method the same way.

        @param request: The request.
        @return: The body, or C{NOT_DONE_YET}.
        """
        segments = [s.decode("ascii", "replace") for s in request.postpath or () if s]
        kind = segments[0] if segments else "page"
        arg = segments[1] if len(segments) > 1 else "0"
        number = int(arg) if arg.isdigit() else 0
        request.setHeader(b"content-type", b"text/plain")
        if kind == "status":
            request.setResponseCode(number if 100 <= number < 600 else 500)
            return b""
        if kind == "hang":
            return NOT_DONE_YET
        if kind == "echo":
            request.setHeader(b"content-type", b"application/json")
            return _describe(request)
        body = b"pooled-http demo\n" + b"x" * (1024 + (number * 997) % 7168)
        if kind == "close":
            request.setHeader(b"connection", b"close")
            channel: Any = request.channel
            channel.persistent = False
            return body
        if kind == "slow":
            call = self._reactor.callLater(number / 1000.0, self._finish, request, body)
            request.notifyFinish().addErrback(lambda _: cancelCall(call))
            return NOT_DONE_YET
        if kind == "page":
            return body
        request.setResponseCode(404)
        return b"not found\n"

    def _finish(self, request: Request, body: bytes) -> None:
        request.write(body)
        request.finish()


def _describe(request: Request) -> bytes:
    """
    Describe a request as JSON.
    """
    body = request.content.read() if request.content is not None else b""
    headers = {
        name.decode("latin-1").lower(): [v.decode("latin-1") for v in values]
        for name, values in request.requestHeaders.getAllRawHeaders()
    }
    description = {
        "method": (request.method or b"").decode("ascii", "replace"),
        "headers": headers,
        "bodyLength": len(body),
    }
    return json.dumps(description).encode("utf-8")


class QuietSite(Site):
    """
    A L{Site} that keeps no access log.
    """

    noisy = False

    def log(self, request: Any) -> None:
        """
        Log nothing.
        """


class CountingFactory(WrappingFactory):
    """
    Wraps a server factory and counts the connections it accepts.

    @ivar opened: Connections accepted since the last L{reset}.
    @ivar current: Connections open now.
    @ivar peak: Most connections open at once since the last L{reset}.
    """

    noisy = False

    def __init__(self, wrappedFactory: Any) -> None:
        """
        @param wrappedFactory: The factory serving the connections.
        """
        WrappingFactory.__init__(self, wrappedFactory)  # type: ignore[arg-type]
        self.opened = 0
        self.current = 0
        self.peak = 0

    def registerProtocol(self, p: Protocol) -> None:
        """
        Count a new connection.
        """
        WrappingFactory.registerProtocol(self, p)  # type: ignore[arg-type]
        self.opened += 1
        self.current += 1
        self.peak = max(self.peak, self.current)

    def unregisterProtocol(self, p: Protocol) -> None:
        """
        Count a closed connection.
        """
        WrappingFactory.unregisterProtocol(self, p)  # type: ignore[arg-type]
        self.current -= 1

    def reset(self) -> None:
        """
        Start counting again (open connections stay counted in L{current}).
        """
        self.opened = 0
        self.peak = self.current


def listenDemoSite(reactor: Any, ports: int = 4) -> tuple[CountingFactory, list[Any]]:
    """
    Serve L{DemoResource} on C{ports} random ports of 127.0.0.1.

    @param reactor: The reactor to listen with.
    @param ports: How many ports.
    @return: The connection counter and the listening ports.
    """
    factory = CountingFactory(QuietSite(DemoResource(reactor)))
    listening = [
        reactor.listenTCP(0, factory, backlog=1024, interface="127.0.0.1")
        for _ in range(ports)
    ]
    return factory, listening


def demoURLs(ports: list[int], requests: int, seed: int = 5) -> list[str]:
    """
    The URL list of the demo: pages spread over the ports, one in ten slow
    (20 to 200 ms), one in ten closing its connection.

    @param ports: The ports of the site.
    @param requests: How many URLs.
    @param seed: Seed of the mix, so that both pools get the same list.
    @return: The URLs.
    """
    rng = random.Random(seed)
    urls = []
    for i in range(requests):
        port = ports[i % len(ports)]
        r = rng.random()
        if r < 0.1:
            path = f"slow/{rng.randint(20, 200)}"
        elif r < 0.2:
            path = f"close/{i}"
        else:
            path = f"page/{i}"
        urls.append(f"http://127.0.0.1:{port}/{path}")
    return urls
