"""
Loopback servers for the proxy tests: a twisted.web target that echoes what
it received, a scripted proxy that tunnels, forwards or misbehaves on
purpose, one behaviour per test, and a real squid started on a loopback
port (L{SquidProxy}).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol, task
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

LOOPBACK = "127.0.0.1"

__all__ = [
    "EchoResource",
    "startTarget",
    "ScriptedProxy",
    "LOOPBACK",
    "SQUID",
    "NCSA_AUTH",
    "squidConfig",
    "launchSquid",
    "stopProcess",
    "accepts",
    "waitListening",
    "readText",
    "SquidProxy",
]

SQUID = shutil.which("squid") or (
    "/usr/sbin/squid" if os.path.exists("/usr/sbin/squid") else None
)
NCSA_AUTH = "/usr/lib/squid/basic_ncsa_auth"


def squidConfig(directory: str, openPort: int, authPort: int | None = None) -> str:
    """
    A squid configuration for loopback tests and benchmarks: a port open to
    any client and, if C{authPort} is given, one that wants basic
    authentication against C{directory/htpasswd}; proxying to loopback
    only, no cache, logs in C{directory}, quick start and stop.

    @param directory: Where the logs, pid file and htpasswd file are.
    @param openPort: The port without authentication.
    @param authPort: The port with authentication, or L{None}.
    """
    lines = [
        f"http_port 127.0.0.1:{openPort} name=open",
        f"pid_filename {directory}/squid.pid",
        f"cache_log {directory}/cache.log",
        f"access_log stdio:{directory}/access.log squid",
        "buffered_logs off",
        "cache deny all",
        "cache_mem 8 MB",
        f"coredump_dir {directory}",
        "netdb_filename none",
        "pinger_enable off",
        "shutdown_lifetime 0 seconds",
        "max_filedescriptors 4096",
        "dns_nameservers 127.0.0.1",
        "via off",
        "acl loopback dst 127.0.0.0/8",
        "acl openPort myportname open",
        "http_access deny !loopback",
        "http_access allow openPort",
    ]
    if authPort is not None:
        lines[1:1] = [f"http_port 127.0.0.1:{authPort} name=auth"]
        lines += [
            f"auth_param basic program {NCSA_AUTH} {directory}/htpasswd",
            "auth_param basic children 2 startup=1 idle=1",
            "auth_param basic realm pooled_http",
            "acl authPort myportname auth",
            "acl authenticated proxy_auth REQUIRED",
            "http_access allow authPort authenticated",
        ]
    lines.append("http_access deny all")
    return "\n".join(lines) + "\n"


def launchSquid(
    directory: str, openPort: int, authPort: int | None = None
) -> subprocess.Popen[bytes]:
    """
    Write the configuration to C{directory} and start squid in the
    foreground (C{-N}); the caller waits for it to listen and stops it.

    @param directory: A directory squid's unprivileged user can write to.
    @param openPort: See L{squidConfig}.
    @param authPort: See L{squidConfig}.
    @return: The squid process (output in C{directory/squid.out}).
    """
    assert SQUID is not None
    config = os.path.join(directory, "squid.conf")
    with open(config, "w") as f:
        f.write(squidConfig(directory, openPort, authPort))
    with open(os.path.join(directory, "squid.out"), "wb") as output:
        return subprocess.Popen(
            [SQUID, "-N", "-f", config],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


class EchoResource(Resource):
    """
    Answers every request with JSON: the request target it got, its
    method and its headers (lower-case names).
    """

    isLeaf = True

    def render(self, request: Request) -> bytes:
        headers = {
            name.decode("latin-1").lower(): [v.decode("latin-1") for v in values]
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(
            {
                "uri": request.uri.decode("latin-1"),
                "method": request.method.decode("ascii"),
                "headers": headers,
            }
        ).encode()


class _TrackingSite(Site):
    """
    A Site that remembers its open connections so a test can close them.
    """

    def __init__(self, resource: Resource) -> None:
        Site.__init__(self, resource)
        self.open: dict[Any, defer.Deferred[None]] = {}
        self.connectionCount = 0

    def buildProtocol(self, addr: Any) -> Any:
        proto = Site.buildProtocol(self, addr)
        assert proto is not None
        self.connectionCount += 1
        lost: defer.Deferred[None] = defer.Deferred()
        self.open[proto] = lost
        original = proto.connectionLost

        def connectionLost(reason: Any) -> None:
            original(reason)
            self.open.pop(proto, None)
            lost.callback(None)

        proto.connectionLost = connectionLost  # type: ignore[method-assign]
        return proto


class Listening:
    """
    A listening port with the connections it accepted.

    @ivar port: The port number.
    @ivar factory: The server factory.
    """

    def __init__(self, listening: Any, factory: Any) -> None:
        self._listening = listening
        self.factory = factory
        self.port: int = listening.getHost().port

    def stop(self) -> defer.Deferred[None]:
        """
        Stop listening and abort every open connection.
        """
        waits = [defer.maybeDeferred(self._listening.stopListening)]
        for proto, lost in list(self.factory.open.items()):
            waits.append(lost)
            # Site's protocols keep their transport on the channel they wrap.
            channel = getattr(proto, "_channel", proto)
            channel.transport.abortConnection()
        return defer.gatherResults(waits).addCallback(lambda _: None)


def startTarget(reactor: Any, tls: Any = None) -> Listening:
    """
    Start an L{EchoResource} site on C{127.0.0.1}, with TLS if C{tls}
    (server context options) is given.
    """
    site = _TrackingSite(EchoResource())
    if tls is not None:
        listening = reactor.listenSSL(0, site, tls, interface=LOOPBACK)
    else:
        listening = reactor.listenTCP(0, site, interface=LOOPBACK)
    return Listening(listening, site)


class _Relay(protocol.Protocol):
    """
    The proxy's connection to the target of one tunnel.
    """

    def __init__(self, client: ProxyConnection) -> None:
        self.client = client

    def connectionMade(self) -> None:
        self.client.server.relays[self] = defer.Deferred()
        self.client.tunnelUp(self)

    def dataReceived(self, data: bytes) -> None:
        self.client.fromTarget(data)

    def connectionLost(self, reason: Any = None) -> None:
        lost = self.client.server.relays.pop(self, None)
        if lost is not None:
            lost.callback(None)
        if self.client.transport is not None:
            self.client.transport.loseConnection()


class ProxyConnection(protocol.Protocol):
    """
    One client connection to the L{ScriptedProxy}.

    @ivar heads: The request heads received (before any tunnel).
    """

    def __init__(self, server: ScriptedProxy) -> None:
        self.server = server
        self.heads: list[bytes] = []
        self._buffer = b""
        self._relay: _Relay | None = None
        self._pending = b""
        self.relayed = 0

    def connectionMade(self) -> None:
        self.server.open[self] = defer.Deferred()
        self.server.connectionCount += 1

    def dataReceived(self, data: bytes) -> None:
        if self._relay is not None:
            self._relay.transport.write(data)  # type: ignore[union-attr]
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        self.heads.append(head)
        self.server.heads.append(head)
        self.server.script(self, head)

    def tunnel(self) -> None:
        """
        Open the tunnel to the target named in the CONNECT line.
        """
        line = self.heads[-1].split(b"\r\n", 1)[0]
        authority = line.split(b" ")[1].decode("ascii")
        host, _, port = authority.rpartition(":")
        creator = protocol.ClientCreator(self.server.reactor, _Relay, self)
        creator.connectTCP(host.strip("[]"), int(port))

    def tunnelUp(self, relay: _Relay) -> None:
        if self.transport is None or not self.transport.connected:  # type: ignore[attr-defined]
            relay.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._relay = relay
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if self._buffer:
            relay.transport.write(self._buffer)  # type: ignore[union-attr]
            self._buffer = b""

    def fromTarget(self, data: bytes) -> None:
        cut = self.server.cutAfter
        if cut is not None and self.relayed + len(data) >= cut:
            self.transport.write(data[: max(0, cut - self.relayed)])  # type: ignore[union-attr]
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        self.relayed += len(data)
        self.transport.write(data)  # type: ignore[union-attr]

    def answer(self, status: bytes, extra: bytes = b"") -> None:
        """
        Answer with a status line and no body.
        """
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 " + status + b"\r\n" + extra + b"Content-Length: 0\r\n\r\n"
        )

    def connectionLost(self, reason: Any = None) -> None:
        if self._relay is not None and self._relay.transport is not None:
            self._relay.transport.loseConnection()
        lost = self.server.open.pop(self, None)
        if lost is not None:
            lost.callback(None)


def tunnelScript(connection: ProxyConnection, head: bytes) -> None:
    """
    Tunnel every CONNECT; answer anything else with 405.
    """
    if head.startswith(b"CONNECT "):
        connection.tunnel()
    else:
        connection.answer(b"405 Method Not Allowed")


class ScriptedProxy:
    """
    A loopback proxy that runs C{script(connection, head)} for every request
    head it receives before a tunnel is up.

    @ivar heads: Every request head received, in order.
    @ivar connectionCount: Connections accepted.
    @ivar cutAfter: If set, each tunnel is aborted once this many bytes have
        come back from the target.
    """

    def __init__(
        self,
        reactor: Any,
        script: Callable[[ProxyConnection, bytes], None] = tunnelScript,
        tls: Any = None,
    ) -> None:
        self.reactor = reactor
        self.script = script
        self.heads: list[bytes] = []
        self.connectionCount = 0
        self.cutAfter: int | None = None
        self.open: dict[ProxyConnection, defer.Deferred[None]] = {}
        self.relays: dict[_Relay, defer.Deferred[None]] = {}
        factory = protocol.Factory()
        factory.buildProtocol = lambda addr: ProxyConnection(self)  # type: ignore[method-assign]
        if tls is not None:
            self._listening = reactor.listenSSL(0, factory, tls, interface=LOOPBACK)
        else:
            self._listening = reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.port: int = self._listening.getHost().port

    def connects(self) -> list[bytes]:
        """
        The CONNECT heads received.
        """
        return [h for h in self.heads if h.startswith(b"CONNECT ")]

    def stop(self) -> defer.Deferred[None]:
        """
        Stop listening and abort every connection, the tunnels' too.
        """
        waits = [defer.maybeDeferred(self._listening.stopListening)]
        for connection, lost in list(self.open.items()):
            waits.append(lost)
            connection.transport.abortConnection()  # type: ignore[union-attr]
        for relay, lost in list(self.relays.items()):
            waits.append(lost)
            relay.transport.abortConnection()  # type: ignore[union-attr]
        return defer.gatherResults(waits).addCallback(lambda _: None)


def stopProcess(process: subprocess.Popen[bytes]) -> None:
    """
    Stop a proxy: SIGTERM, then SIGKILL if it is still there after a while.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def accepts(port: int) -> bool:
    """
    Whether something accepts TCP connections on C{127.0.0.1:port} now.
    """
    probe = socket.socket()
    try:
        probe.connect((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def readText(path: str) -> str:
    """
    The text of a log file, or C{""} if it cannot be read.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


async def waitListening(
    reactor: Any,
    port: int,
    process: subprocess.Popen[bytes],
    log: str,
    timeout: float = 20.0,
) -> None:
    """
    Wait until something accepts connections on C{127.0.0.1:port}.

    @param reactor: The running reactor.
    @param port: The port.
    @param process: The process that should listen there.
    @param log: Its log, quoted if it fails.
    @param timeout: Seconds to wait.
    @raise AssertionError: If C{process} exits or C{timeout} passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the proxy exited; its log:\n{readText(log)}")
        if accepts(port):
            return
        await task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"the proxy did not listen on {port}; log:\n{readText(log)}")


class SquidProxy:
    """
    A squid on a loopback port without authentication, in a temporary
    directory of its own (L{squidConfig}); its access log counts the
    CONNECTs.

    @ivar port: The port it listens on (once started).
    @ivar url: Its URL, C{http://127.0.0.1:port} (once started).
    """

    def __init__(self, reactor: Any, port: int) -> None:
        """
        @param reactor: The running reactor.
        @param port: A free loopback port to listen on.
        """
        self.reactor = reactor
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.directory = tempfile.mkdtemp(prefix="pooled-http-squid-")
        # squid started as root runs as an unprivileged user that must
        # write its logs here.
        os.chmod(self.directory, 0o777)
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> SquidProxy:
        """
        Start squid and wait until it listens.

        @return: C{self}.
        """
        self._process = launchSquid(self.directory, self.port)
        log = os.path.join(self.directory, "cache.log")
        try:
            await waitListening(self.reactor, self.port, self._process, log)
        except BaseException:
            self.stop()
            raise
        return self

    def connects(self) -> list[str]:
        """
        The CONNECT lines of the access log (squid writes one when a
        tunnel closes).
        """
        log = readText(os.path.join(self.directory, "access.log"))
        return [line for line in log.splitlines() if " CONNECT " in line]

    def stop(self) -> None:
        """
        Stop squid and remove its directory.
        """
        if self._process is not None:
            stopProcess(self._process)
            self._process = None
        shutil.rmtree(self.directory, ignore_errors=True)
