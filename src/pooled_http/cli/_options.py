"""
The command line of C{pooled-http}: its parser, and the checks of the
C{fetch} options that the parser cannot do (URLs, headers, method, body,
certificates, where bodies go), turned into the settings a run needs.

Nothing here imports the reactor or rich.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = [
    "UsageError",
    "FetchOptions",
    "buildParser",
    "parseTimeout",
    "checkFetchOptions",
]

#: Exit status: every URL fetched (a response of any status arrived in full).
EXIT_OK = 0
#: Exit status: some URLs failed (invalid, unreachable, timed out...).
EXIT_FAILED = 1
#: Exit status: bad command line.
EXIT_USAGE = 2
#: Exit status: interrupted by SIGINT or SIGTERM (128 + SIGINT).
EXIT_INTERRUPTED = 130

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PHASES = ("connect", "response", "read")

#: Seconds each phase of a request may take unless C{--timeout} says
#: otherwise.
DEFAULT_TIMEOUT = 30.0


class UsageError(Exception):
    """
    A bad command line option; reported in one line, exit status 2.
    """


class _Parser(argparse.ArgumentParser):
    """
    An argument parser whose errors are one line on standard error.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _wholeNumber(minimum: int) -> Callable[[str], int]:
    """
    An argparse type: a whole number of at least C{minimum}.
    """
    bound = "at least 1" if minimum == 1 else f"{minimum} or more"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, not {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {bound}, not {value}")
        return value

    return parse


_positiveInt = _wholeNumber(1)
_nonNegativeInt = _wholeNumber(0)


def _seconds(text: str) -> float | None:
    if text.lower() in ("none", "off"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds or 'none', not {text}"
        )
    return value


def parseTimeout(text: str) -> dict[str, float | None]:
    """
    Parse C{--timeout}: seconds for every phase (C{"10"}), or some phases by
    name (C{"connect=5,response=30,read=10"}); C{none} (or C{off}) means no
    timeout.

    @param text: The option value.
    @return: Seconds (or L{None}) by phase name (C{connect}, C{response},
        C{read}); the phases not named are left out.
    @raise argparse.ArgumentTypeError: If the value is malformed.
    """
    if "=" not in text:
        return dict.fromkeys(_PHASES, _seconds(text))
    result: dict[str, float | None] = {}
    for part in text.split(","):
        name, sep, seconds = part.partition("=")
        name = name.strip()
        if not sep or name not in _PHASES:
            raise argparse.ArgumentTypeError(
                f"expected SECONDS or connect=S,response=S,read=S, not {text!r}"
            )
        result[name] = _seconds(seconds.strip())
    return result


def buildParser() -> argparse.ArgumentParser:
    """
    The command line parser of C{pooled-http}.

    @return: The parser.
    """
    parser = _Parser(
        prog="pooled-http",
        description="Fetch many URLs concurrently through pooled_http's "
        "connection pool, or see it at work on a local demo site.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{fetch,demo}")

    fetch = sub.add_parser(
        "fetch",
        help="fetch URLs, one JSON line per URL",
        description="Fetch URLs concurrently and write one JSON line per URL "
        "(in the order they finish) to standard output.  A response of any "
        "status counts as fetched; exit status 0 when every URL was fetched, "
        "1 when some failed, 2 for a bad command line, 130 when interrupted.",
    )
    fetch.add_argument("urls", nargs="*", metavar="URL", help="URLs to fetch")
    fetch.add_argument(
        "-i",
        "--input",
        metavar="FILE",
        help="read URLs from FILE, one per line ('-' for standard input); "
        "streamed, blank lines and '#' comments skipped",
    )
    fetch.add_argument(
        "-c",
        "--concurrency",
        type=_positiveInt,
        default=64,
        help="requests in flight at most (default: %(default)s)",
    )
    fetch.add_argument(
        "--per-host",
        type=_positiveInt,
        metavar="N",
        help="connections per scheme/host/port at most (the pool's "
        "maxConnectionsPerHost; default: the pool's, 8)",
    )
    fetch.add_argument(
        "--max-connections",
        type=_positiveInt,
        metavar="N",
        help="connections over all hosts at most (the pool's maxConnections; "
        "default: the pool's, 256)",
    )
    fetch.add_argument(
        "-X",
        "--method",
        default=None,
        help="request method (default: GET, or POST with --data)",
    )
    fetch.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    body = fetch.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", help="request body (UTF-8 text)")
    body.add_argument("--data-file", metavar="FILE", help="request body read from FILE")
    fetch.add_argument(
        "--timeout",
        type=parseTimeout,
        default={},
        metavar="SECONDS|connect=S,response=S,read=S",
        help="timeout of each phase: connecting, waiting for the response "
        "headers, waiting for body bytes; 'none' for no timeout (default: "
        f"{DEFAULT_TIMEOUT:g} s each)",
    )
    fetch.add_argument(
        "--retries",
        type=_nonNegativeInt,
        default=None,
        metavar="N",
        help="retry a safe request that failed on a reused connection up to "
        "N times (0 disables retries; default: the pool's, 1)",
    )
    fetch.add_argument(
        "--cafile", metavar="PEM", help="trust the CA certificates in PEM for https"
    )
    fetch.add_argument(
        "--http2",
        action="store_true",
        help="offer HTTP/2 by ALPN for https:// and use it when the server "
        "picks it, many requests at once on one connection (needs the "
        "pooled_http[http2] extra)",
    )
    fetch.add_argument(
        "-x",
        "--proxy",
        metavar="URL",
        help="send every request through this proxy (http://, https://, "
        "socks5://, socks5h://, with user:password@ if needed); without it "
        "the environment's http_proxy, https_proxy, all_proxy and no_proxy "
        "are honoured, as curl does",
    )
    fetch.add_argument(
        "--noproxy",
        metavar="LIST",
        help="comma-separated hosts, domains, addresses or CIDR ranges that "
        "go direct ('*' for all), in place of no_proxy",
    )
    fetch.add_argument(
        "-o", "--output", metavar="FILE", help="write the JSON lines to FILE instead of stdout"
    )
    fetch.add_argument(
        "--trace",
        metavar="FILE",
        help="write one JSON line per step of every request and connection "
        "(queued, connect, TLS, tunnel, headers sent, response, released, "
        "closed...) to FILE",
    )
    fetch.add_argument(
        "--bodies", metavar="DIR", help="save each response body as DIR/<index>.body"
    )
    fetch.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no summary"
    )

    demo = sub.add_parser(
        "demo",
        help="compare pooled_http with Twisted's stock pool on a local site",
        description="Start a synthetic site on 127.0.0.1 (several ports, some "
        "slow pages, some that close the connection), fetch the same URLs "
        "through pooled_http's pool and through Twisted's stock "
        "HTTPConnectionPool, both with their defaults and the same "
        "concurrency, and compare.",
    )
    demo.add_argument(
        "-n",
        "--requests",
        type=_positiveInt,
        default=2000,
        help="requests per pool (default: %(default)s)",
    )
    demo.add_argument(
        "-c",
        "--concurrency",
        type=_positiveInt,
        default=100,
        help="requests in flight (default: %(default)s)",
    )
    demo.add_argument(
        "--ports",
        type=_positiveInt,
        default=4,
        help="ports (hosts) of the demo site (default: %(default)s)",
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


@dataclass
class FetchOptions:
    """
    The checked options of C{pooled-http fetch}.

    @ivar poolArguments: Keyword arguments for the pool.
    @ivar method: The request method.
    @ivar headers: Request headers as (name, value) pairs.
    @ivar body: The request body, or L{None}.
    @ivar trustRoot: The C{--cafile} certificates, or L{None}.
    @ivar bodiesDir: Where to save bodies, or L{None}.
    @ivar proxyArguments: The proxy arguments of the agent.
    """

    poolArguments: dict[str, Any] = field(default_factory=dict)
    method: bytes = b"GET"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes | None = None
    trustRoot: Any = None
    bodiesDir: str | None = None
    proxyArguments: dict[str, Any] = field(default_factory=dict)


def _loadTrustRoot(path: str) -> Any:
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"--cafile: cannot read {path}: {e.strerror}") from None
    blocks = re.findall(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.DOTALL
    )
    if not blocks:
        raise UsageError(f"--cafile: no PEM certificate in {path}")
    try:
        return trustRootFromCertificates([Certificate.loadPEM(b) for b in blocks])
    except Exception as e:
        raise UsageError(f"--cafile: bad certificate in {path}: {e}") from None


def checkFetchOptions(args: argparse.Namespace) -> FetchOptions:
    """
    Check the options of C{pooled-http fetch} beyond what the parser checks.

    @param args: The parsed command line.
    @return: The options the run needs.
    @raise UsageError: If an option is bad.
    """
    from .._retry import RetryPolicy

    options = FetchOptions()
    if not args.urls and args.input is None:
        raise UsageError("no URLs: give URLs as arguments or -i FILE (-i - for stdin)")
    if args.urls and args.input is not None:
        raise UsageError("give URLs as arguments or with -i, not both")

    if args.data is not None:
        options.body = args.data.encode("utf-8")
    elif args.data_file is not None:
        try:
            with open(args.data_file, "rb") as f:
                options.body = f.read()
        except OSError as e:
            raise UsageError(
                f"--data-file: cannot read {args.data_file}: {e.strerror}"
            ) from None

    method = args.method or ("POST" if options.body is not None else "GET")
    if not _TOKEN.match(method):
        raise UsageError(f"--method: {method!r} is not a valid HTTP method")
    options.method = method.upper().encode("ascii")

    names = set()
    for header in args.header:
        name, sep, value = header.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _TOKEN.match(name):
            raise UsageError(f"--header: expected 'Name: value', not {header!r}")
        if "\r" in value or "\n" in value:
            raise UsageError(f"--header: line breaks are not allowed in {name!r}")
        options.headers.append((name.encode("ascii"), value.encode("utf-8")))
        names.add(name.lower())
    if "user-agent" not in names:
        from .. import __version__

        options.headers.append((b"User-Agent", f"pooled-http/{__version__}".encode()))

    pool = options.poolArguments
    if args.per_host is not None:
        pool["maxConnectionsPerHost"] = args.per_host
    if args.max_connections is not None:
        pool["maxConnections"] = args.max_connections
    timeouts = dict.fromkeys(_PHASES, DEFAULT_TIMEOUT)
    timeouts.update(args.timeout)
    pool["connectTimeout"] = timeouts["connect"]
    pool["responseTimeout"] = timeouts["response"]
    pool["readTimeout"] = timeouts["read"]
    if args.retries == 0:
        pool["retryAutomatically"] = False
    elif args.retries is not None:
        pool["retryPolicy"] = RetryPolicy(retries=args.retries)

    if args.cafile is not None:
        options.trustRoot = _loadTrustRoot(args.cafile)
    from ._proxies import proxyArguments

    options.proxyArguments = proxyArguments(args.proxy, args.noproxy)
    if args.bodies is not None:
        if os.path.exists(args.bodies) and not os.path.isdir(args.bodies):
            raise UsageError(f"--bodies: {args.bodies} exists and is not a directory")
        try:
            os.makedirs(args.bodies, exist_ok=True)
        except OSError as e:
            raise UsageError(
                f"--bodies: cannot create {args.bodies}: {e.strerror}"
            ) from None
        options.bodiesDir = args.bodies
    return options
