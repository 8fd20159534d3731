"""
What the C{pooled-http} command accepts as a URL, and how it names what went
wrong with one: the checks done before a request and the words written after
a failed one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from twisted.python.failure import Failure
from twisted.web.client import URI

from .._redact import hostOf, withoutPassword
from ..errors import MAX_WRAPPER_DEPTH, wrappedReasons

__all__ = ["InvalidURL", "parseURL", "describeFailure"]


class InvalidURL(ValueError):
    """
    A URL the command cannot fetch (not http/https, no host, bad port,
    characters not allowed in a URL).
    """


def parseURL(text: str) -> tuple[bytes, str]:
    """
    Check a URL and return what the agent needs.

    @param text: The URL as given; non-ASCII characters (an IRI) are encoded.
    @return: The URL as ASCII bytes and its C{scheme://host:port} label.
    @raise InvalidURL: If the URL cannot be fetched.
    """
    if not text:
        raise InvalidURL("empty URL")
    # What the messages show: never the password of the user info.
    shown = repr(withoutPassword(text))
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        try:
            import hyperlink

            raw = hyperlink.URL.from_text(text).to_uri().to_text().encode("ascii")
        except Exception as e:
            raise InvalidURL(
                f"cannot encode {shown} as a URI: {withoutPassword(str(e))}"
            ) from None
    if any(c <= 0x20 or c == 0x7F for c in raw):
        raise InvalidURL(f"{shown} contains whitespace or control characters")
    scheme, sep, _ = raw.partition(b"://")
    if not sep:
        raise InvalidURL(f"{shown} is not an absolute http:// or https:// URL")
    if scheme.lower() not in (b"http", b"https"):
        raise InvalidURL(f"unsupported scheme {scheme.decode('ascii')!r} in {shown}")
    try:
        split = urlsplit(raw.decode("ascii"))
        port = split.port
        uri = URI.fromBytes(raw)
    except ValueError as e:
        raise InvalidURL(f"cannot parse {shown}: {withoutPassword(str(e))}") from None
    if not split.hostname or not uri.host:
        raise InvalidURL(f"no host in {shown}")
    if port is not None and not 0 < port < 65536:
        raise InvalidURL(f"port {port} out of range in {shown}")
    host = hostOf(uri.host)
    if ":" in host:
        host = f"[{host}]"
    return raw, f"{uri.scheme.decode('ascii')}://{host}:{uri.port}"


def _rootCause(exc: BaseException) -> BaseException:
    """
    The reason that matters behind Twisted's wrapper exceptions: the first
    wrapped reason, followed down through nested wrappers.
    """
    for _ in range(MAX_WRAPPER_DEPTH):
        reasons = wrappedReasons(exc)
        if not reasons:
            break
        exc = reasons[0]
    return exc


def describeFailure(reason: Failure | BaseException) -> tuple[str, str]:
    """
    Name an error for a JSON line and the summary.

    @param reason: Why a request failed.
    @return: The type name of the underlying error and a one-line message.
    """
    exc: Any = reason.value if isinstance(reason, Failure) else reason
    cause = _rootCause(exc)
    message = str(cause).strip() or cause.__class__.__name__
    if cause is not exc:
        message = f"{message} ({exc.__class__.__name__})"
    return _errorName(cause), " ".join(message.split())


def _errorName(exc: BaseException) -> str:
    """
    The name of an error type for a JSON line: the class name, qualified by
    its module when the name alone says nothing (C{OpenSSL.SSL.Error} is
    called C{SSLError}).
    """
    cls = type(exc)
    name = cls.__name__
    if name in ("Error", "Exception", "Failure"):
        module = cls.__module__.rsplit(".", 1)[-1]
        return f"{module}{name}" if module.isupper() else f"{module}.{name}"
    return name
