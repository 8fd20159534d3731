"""
The TLS layer's own cost, in memory, with no sockets: what one client
request and response of 1 KiB cost in pyOpenSSL calls, made as Twisted's
C{TLSMemoryBIOProtocol} makes them, and as pooled_http's layer
(C{pooled_http._tls}) makes them, against the standard library's
C{ssl.MemoryBIO} (what asyncio, and so aiohttp, uses); and a client
handshake's CPU time with each.

Usage (bounded: a fixed number of rounds)::

    python benchmarks/tls_layers.py                 # 20,000 rounds, 200 handshakes
    python benchmarks/tls_layers.py --rounds 2000 --handshakes 50
    python benchmarks/tls_layers.py --src /elsewhere/src   # another tree's layer

Needs C{trustme} (the C{bench} extra).  Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _common import addSourceOption  # noqa: E402

REQUEST = b"GET /?page=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n" + b"x" * 1024
BUFFER = 2**15


def _credentials(folder: str) -> tuple[str, str]:
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("localhost")
    keyAndChain = os.path.join(folder, "server.pem")
    server.private_key_and_cert_chain_pem.write_to_path(keyAndChain)
    caPath = os.path.join(folder, "ca.pem")
    ca.cert_pem.write_to_path(caPath)
    return keyAndChain, caPath


def _handshake(
    client: Any, server: Any, wantRead: type[Exception], exchange: Callable[[], None]
) -> float:
    """
    Drive a client and a server through their handshake, C{exchange()}
    carrying what each wrote to the other after every step.

    @param wantRead: What C{do_handshake} raises while it waits for bytes.
    @return: The client's CPU seconds in its C{do_handshake} calls.
    """
    spent = 0.0
    for _ in range(10):
        for conn in (client, server):
            started = time.process_time()
            try:
                conn.do_handshake()
            except wantRead:
                pass
            if conn is client:
                spent += time.process_time() - started
        exchange()
    return spent


class PyOpenSSLPair:
    """
    A pyOpenSSL client and server joined in memory.
    """

    def __init__(self, keyAndChain: str, caPath: str) -> None:
        server = SSL.Context(SSL.TLS_METHOD)
        server.use_privatekey_file(keyAndChain)
        server.use_certificate_chain_file(keyAndChain)
        client = SSL.Context(SSL.TLS_METHOD)
        client.load_verify_locations(caPath)
        client.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
        self.serverContext, self.clientContext = server, client

    def handshake(self) -> tuple[Any, Any, float]:
        """
        @return: The client, the server, and the client's CPU seconds.
        """
        server = SSL.Connection(self.serverContext, None)
        server.set_accept_state()
        client = SSL.Connection(self.clientContext, None)
        client.set_connect_state()
        client.set_tlsext_host_name(b"localhost")

        def exchange() -> None:
            for source, sink in ((client, server), (server, client)):
                try:
                    sink.bio_write(source.bio_read(65536))
                except SSL.WantReadError:
                    pass

        return client, server, _handshake(client, server, SSL.WantReadError, exchange)

    def rounds(self, count: int) -> float:
        """
        @return: Client seconds per round: write the request and take its
            record out (then find nothing more to send), put a response
            record in and read it (then find nothing more to read), each
            call as Twisted's TLS layer makes it.
        """
        client, server, _ = self.handshake()
        records = []
        for _ in range(count):
            server.send(RESPONSE)
            records.append(server.bio_read(65536))
        started = time.process_time()
        for record in records:
            client.send(REQUEST)
            client.bio_read(BUFFER)
            try:
                client.bio_read(BUFFER)
            except SSL.WantReadError:
                pass
            client.bio_write(record)
            client.recv(BUFFER)
            try:
                client.recv(BUFFER)
            except SSL.WantReadError:
                pass
        return (time.process_time() - started) / count


class PooledPair(PyOpenSSLPair):
    """
    The same pyOpenSSL client and server, with the client's calls made as
    pooled_http's TLS layer makes them.
    """

    def rounds(self, count: int) -> float:
        """
        @return: Client seconds per round: the same work as
            L{PyOpenSSLPair.rounds}, each buffer asked how much it holds
            before it is read.
        """
        from pooled_http import _tls

        lib = _tls._LIB
        if lib is None:
            raise SystemExit("this pyOpenSSL lacks what pooled_http._tls needs")
        memData, null = lib.memData, lib.null
        client, server, _ = self.handshake()
        records = []
        for _ in range(count):
            server.send(RESPONSE)
            records.append(server.bio_read(65536))
        response = b""
        started = time.process_time()
        for record in records:
            _tls._send(client, REQUEST)
            _tls._bioRead(client, int(memData(client._from_ssl, null)))
            memData(client._from_ssl, null)
            _tls._bioWrite(client, record)
            memData(client._into_ssl, null)
            response = _tls._recv(client)
            memData(client._into_ssl, null)
        spent = time.process_time() - started
        if response != RESPONSE:
            raise AssertionError("the response did not come through")
        return spent / count


class StdlibPair:
    """
    A standard library C{ssl} client and server joined by memory BIOs.
    """

    def __init__(self, keyAndChain: str, caPath: str) -> None:
        self.serverContext = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.serverContext.load_cert_chain(keyAndChain)
        self.clientContext = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.clientContext.load_verify_locations(caPath)

    def handshake(self) -> tuple[Any, float]:
        """
        @return: The parts, and the client's CPU seconds.
        """
        serverIn, serverOut = ssl.MemoryBIO(), ssl.MemoryBIO()
        clientIn, clientOut = ssl.MemoryBIO(), ssl.MemoryBIO()
        server = self.serverContext.wrap_bio(serverIn, serverOut, server_side=True)
        client = self.clientContext.wrap_bio(
            clientIn, clientOut, server_hostname="localhost"
        )

        def exchange() -> None:
            if clientOut.pending:
                serverIn.write(clientOut.read())
            if serverOut.pending:
                clientIn.write(serverOut.read())

        spent = _handshake(client, server, ssl.SSLWantReadError, exchange)
        return (client, server, clientIn, clientOut, serverOut), spent

    def rounds(self, count: int) -> float:
        """
        @return: Client seconds per round, as asyncio's SSL protocol makes
            the calls.
        """
        (client, server, clientIn, clientOut, serverOut), _ = self.handshake()
        records = []
        for _ in range(count):
            server.write(RESPONSE)
            records.append(serverOut.read())
        started = time.process_time()
        for record in records:
            client.write(REQUEST)
            clientOut.read()
            clientIn.write(record)
            client.read(BUFFER)
            try:
                client.read(BUFFER)
            except ssl.SSLWantReadError:
                pass
        return (time.process_time() - started) / count


def main(argv: list[str] | None = None) -> int:
    """
    Measure the three layers; print the figures as JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--handshakes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    addSourceOption(parser)
    options = parser.parse_args(argv)
    if options.rounds <= 0 or options.handshakes <= 0 or options.repeats <= 0:
        parser.error("--rounds, --handshakes and --repeats must be positive")
    sys.path.insert(0, os.path.abspath(options.src))
    with tempfile.TemporaryDirectory() as folder:
        keyAndChain, caPath = _credentials(folder)
        layers = {
            "pyOpenSSL": PyOpenSSLPair(keyAndChain, caPath),
            "pooled_http": PooledPair(keyAndChain, caPath),
            "ssl": StdlibPair(keyAndChain, caPath),
        }
        figures: dict[str, Any] = {}
        for name, layer in layers.items():
            perRound = statistics.median(
                layer.rounds(options.rounds) for _ in range(options.repeats)
            )
            handshake = statistics.median(
                layer.handshake()[-1] for _ in range(options.handshakes)
            )
            figures[name] = {
                "usPerRequest": round(perRound * 1e6, 2),
                "msPerClientHandshake": round(handshake * 1e3, 3),
            }
    print(json.dumps({"rounds": options.rounds, "layers": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
