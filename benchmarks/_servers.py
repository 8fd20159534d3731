"""
The benchmark server: nginx when installed, else a twisted.web fallback.

Both listen only on 127.0.0.1, serve a 1 KiB body on C{portCount} plain
ports and one TLS port (certificate made for the run with trustme), and
expose C{stub_status}-style counters on a status port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from _common import BODY_SIZE, fetchStatus

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Server:
    """
    A running benchmark server.

    @ivar kind: C{"nginx"} or C{"twisted.web"}.
    @ivar version: Its version string.
    @ivar ports: The plain HTTP ports.
    @ivar tlsPort: The HTTPS port.
    @ivar statusPort: The port of the counters page.
    @ivar caPem: The PEM of the CA that signed the server certificate.
    @ivar note: What to tell the reader about this server.
    """

    kind: str
    version: str
    ports: list[int]
    tlsPort: int
    statusPort: int
    caPem: str
    note: str
    process: subprocess.Popen[bytes]
    directory: str
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """
        Stop the server process (the one this object started) and remove
        its temporary directory.
        """
        if self.process.poll() is None:
            if self.kind == "nginx":
                self.process.send_signal(signal.SIGQUIT)
            elif self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def nginxPath() -> str | None:
    """
    @return: The nginx binary, or L{None} if not installed.
    """
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)),
        None,
    )


def makeCertificate(directory: str) -> tuple[str, str, str]:
    """
    Make a CA and a server certificate for 127.0.0.1 / localhost.

    @param directory: Where to write the server's PEM files.
    @return: C{(caPem, certPath, keyPath)}.
    """
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    certPath = os.path.join(directory, "server.pem")
    keyPath = os.path.join(directory, "server.key")
    leaf.cert_chain_pems[0].write_to_path(certPath)
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(certPath, append=True)
    leaf.private_key_pem.write_to_path(keyPath)
    return ca.cert_pem.bytes().decode("ascii"), certPath, keyPath


def freePorts(count: int) -> list[int]:
    """
    Ask the kernel for C{count} distinct free loopback ports.

    @return: The port numbers (the sockets are closed again).
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def waitForStatus(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """
    Wait until the counters page answers.

    @return: Whether it did before C{timeout} seconds or the process died.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            fetchStatus(port)
            return True
        except OSError:
            time.sleep(0.05)
    return False


def startNginx(binary: str, portCount: int, connections: int) -> Server:
    """
    Start nginx in the foreground with the config from C{nginx.conf.in}.

    @param binary: The nginx executable.
    @param portCount: How many plain HTTP ports.
    @param connections: How many connections it must hold at once.
    @return: The running server.
    @raise RuntimeError: If it does not come up.
    """
    with open(os.path.join(HERE, "nginx.conf.in")) as f:
        template = f.read()
    version = (
        subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
        .stderr.strip()
        .split("/")[-1]
    )
    lastError = ""
    for _attempt in range(3):
        directory = tempfile.mkdtemp(prefix="pooled-http-bench-")
        os.chmod(directory, 0o755)
        caPem, _, _ = makeCertificate(directory)
        ports = freePorts(portCount + 2)
        plain, tlsPort, statusPort = ports[:portCount], ports[-2], ports[-1]
        workerConnections = max(4096, connections + 2048)
        listen = "\n".join(
            [f"        listen 127.0.0.1:{p} backlog=4096;" for p in plain]
            # HTTP/2 by ALPN on the TLS port (burst-h2); clients that do
            # not offer it get HTTP/1.1 as before.
            + [f"        listen 127.0.0.1:{tlsPort} ssl http2 backlog=4096;"]
        )
        config = (
            template.replace("@PREFIX@", directory)
            .replace("@NOFILE@", str(workerConnections * 2 + 64))
            .replace("@WORKER_CONNECTIONS@", str(workerConnections))
            .replace("@LISTEN@", listen)
            .replace("@STATUS_PORT@", str(statusPort))
            .replace("@BODY@", "x" * BODY_SIZE)
        )
        configPath = os.path.join(directory, "nginx.conf")
        with open(configPath, "w") as f:
            f.write(config)
        process = subprocess.Popen(
            [
                binary,
                "-p",
                directory,
                "-c",
                configPath,
                "-e",
                os.path.join(directory, "error.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if waitForStatus(statusPort, process, 10):
            return Server(
                kind="nginx",
                version=version,
                ports=plain,
                tlsPort=tlsPort,
                statusPort=statusPort,
                caPem=caPem,
                note=f"nginx {version}, worker_processes 1, config benchmarks/nginx.conf.in",
                process=process,
                directory=directory,
            )
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        try:
            with open(os.path.join(directory, "error.log")) as f:
                lastError = f.read()[-2000:]
        except OSError:
            lastError = (
                process.stderr.read().decode(errors="replace") if process.stderr else ""
            )
        shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError(f"nginx did not start: {lastError}")


def startTwisted(portCount: int) -> Server:
    """
    Start the twisted.web fallback server (benchmarks/twisted_server.py).

    @param portCount: How many plain HTTP ports.
    @return: The running server.
    @raise RuntimeError: If it does not come up.
    """
    import twisted

    directory = tempfile.mkdtemp(prefix="pooled-http-bench-")
    caPem, certPath, keyPath = makeCertificate(directory)
    process = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "twisted_server.py"),
            str(portCount),
            certPath,
            keyPath,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError("the twisted.web benchmark server did not start")
    info = json.loads(line)
    server = Server(
        kind="twisted.web",
        version=twisted.__version__,
        ports=info["ports"],
        tlsPort=info["tlsPort"],
        statusPort=info["statusPort"],
        caPem=caPem,
        note=(
            "nginx is not installed: fallback twisted.web server in one "
            "process. It is likely the bottleneck, so req/s understate the "
            "fast clients; install nginx-light for meaningful numbers."
        ),
        process=process,
        directory=directory,
    )
    if not waitForStatus(server.statusPort, process, 10):
        server.stop()
        raise RuntimeError("the twisted.web benchmark server does not answer")
    return server


def startServer(choice: str, portCount: int, connections: int) -> Server:
    """
    Start the benchmark server.

    @param choice: C{"auto"} (nginx if installed), C{"nginx"} or
        C{"twisted"}.
    @param portCount: How many plain HTTP ports.
    @param connections: How many connections it must hold at once.
    @return: The running server.
    """
    binary = nginxPath()
    if choice == "nginx" and binary is None:
        raise RuntimeError("--server nginx given but nginx is not installed")
    if choice in ("auto", "nginx") and binary is not None:
        return startNginx(binary, portCount, connections)
    return startTwisted(portCount)
