"""
The head of a response on an L{pooled_http._http11.HTTP11Connection}, as
plain functions of bytes: its L{Headers} built in one go, the tokens of a
C{Connection} header, the version tuple, and the lenient cleaning of a head
with lines that have no colon.
"""

from __future__ import annotations

from typing import Any

from twisted.web.http_headers import Headers

__all__: list[str] = []

# Response headers Twisted keeps out of C{Response.headers}: they frame the
# message and are the connection's business.
_CONNECTION_CONTROL = frozenset(
    {
        b"content-length",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    }
)

_NO_BODY_CODES = (204, 304)

# CR and LF as byte values: C{_CR in value} is C{b"\r" in value}, but for a
# bytes argument CPython's C{bytes.__contains__} first tries it as an
# integer, raising and clearing a formatted TypeError each time (several
# times dearer, on every header of every request and response).
_CR = ord("\r")
_LF = ord("\n")

# llhttp's version string -> Twisted's version tuple.
_VERSIONS: dict[str, tuple[bytes, int, int]] = {}

# What a connection holds between heads: never appended to (each head
# starts with lists of its own).
_NO_HEADERS: list[tuple[bytes, bytes]] = []
_NO_CONTROL: dict[bytes, list[bytes]] = {}

# The key Twisted's L{Headers} files a header name under (its spelling of
# the name, which differs between Twisted versions), per name seen; capped
# so that a server inventing names cannot grow it without bound.
_HEADER_KEYS: dict[bytes, bytes] = {}
_HEADER_KEYS_MAX = 10_000


# Whether L{Headers} keeps its values in C{_rawHeaders} and nothing else,
# so that a whole head can be handed over in one dictionary (to an
# instance made without running its constructor).
def _onlyRawHeaders() -> bool:
    probe = Headers()
    if hasattr(probe, "__dict__"):
        return vars(probe) == {"_rawHeaders": {}}
    slots = {
        name
        for cls in type(probe).__mro__
        for name in getattr(cls, "__slots__", ())
        if name != "__weakref__"
    }
    return slots == {"_rawHeaders"} and getattr(probe, "_rawHeaders", None) == {}


_RAW_HEADERS = _onlyRawHeaders()

# A Connection header's values -> its tokens, for the few values servers
# send; capped like the header names.
_CONNECTION_TOKENS: dict[tuple[bytes, ...], frozenset[bytes]] = {}
_CONNECTION_TOKENS_MAX = 1000


_newHeaders = object.__new__


def _headerKey(name: bytes) -> bytes:
    """
    The key L{Headers} files C{name} under, learnt from L{Headers} itself.
    """
    probe: Any = Headers()
    probe.addRawHeader(name, b"")
    key: bytes = next(iter(probe._rawHeaders))
    if len(_HEADER_KEYS) < _HEADER_KEYS_MAX:
        _HEADER_KEYS[name] = key
    return key


def _buildHeaders(pending: list[tuple[bytes, bytes]]) -> Headers:
    """
    The L{Headers} of a response's header lines, as C{addRawHeader} for
    each would build them (line breaks in a value neutralised), in one
    dictionary handed over whole.
    """
    if not _RAW_HEADERS:  # pragma: no cover - a Headers of another shape
        made = Headers()
        for name, value in pending:
            made.addRawHeader(name, value)
        return made
    headers: Any = _newHeaders(Headers)
    raw: dict[bytes, list[bytes]] = {}
    keys = _HEADER_KEYS
    for name, value in pending:
        key = keys.get(name)
        if key is None:
            key = _headerKey(name)
        if _CR in value or _LF in value:
            value = b" ".join(value.splitlines())
        values = raw.get(key)
        if values is None:
            raw[key] = [value]
        else:
            values.append(value)
    headers._rawHeaders = raw
    return headers


def _oneHeader(name: bytes, value: bytes) -> Headers:
    """
    The L{Headers} of one header line whose value holds no line break (the
    I{Host} of a request), as C{addRawHeader} would build them.
    """
    if not _RAW_HEADERS:  # pragma: no cover - a Headers of another shape
        return _buildHeaders([(name, value)])
    key = _HEADER_KEYS.get(name)
    if key is None:
        key = _headerKey(name)
    headers: Any = _newHeaders(Headers)
    headers._rawHeaders = {key: [value]}
    return headers


def _tokens(values: list[bytes]) -> frozenset[bytes]:
    """
    The lowercased tokens of a comma-separated header's values.
    """
    key = tuple(values)
    tokens = _CONNECTION_TOKENS.get(key)
    if tokens is None:
        tokens = frozenset(t.strip().lower() for v in values for t in v.split(b","))
        if len(_CONNECTION_TOKENS) < _CONNECTION_TOKENS_MAX:
            _CONNECTION_TOKENS[key] = tokens
    return tokens


def _version(text: str) -> tuple[bytes, int, int]:
    """
    Twisted's version tuple for llhttp's C{"1.1"}.
    """
    version = _VERSIONS.get(text)
    if version is None:
        major, _, minor = text.partition(".")
        version = _VERSIONS[text] = (b"HTTP", int(major), int(minor))
    return version


def _lenientHead(data: bytes) -> tuple[bytes, bytes] | None:
    """
    Find the end of a response head in C{data} and return it with header
    lines that have no colon dropped, folded lines (obs-fold: a line that
    starts with a space or tab) joined to the header they continue with
    one space, and bare LFs made CRLF, and the bytes after it; or L{None}
    if the head is not complete yet.  A continuation of a dropped line is
    dropped with it.
    """
    ends = [i for i in (data.find(b"\n\r\n"), data.find(b"\n\n")) if i >= 0]
    if not ends:
        return None
    end = min(ends)
    size = 3 if data[end + 1 : end + 2] == b"\r" else 2
    lines = data[: end + 1].split(b"\n")[:-1]
    kept = [lines[0].rstrip(b"\r")]
    continuing = False
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if continuing:
                kept[-1] = kept[-1].rstrip(b" \t") + b" " + line.strip(b" \t")
            continue
        continuing = b":" in line
        if continuing:
            kept.append(line)
    return b"\r\n".join(kept) + b"\r\n\r\n", data[end + size :]
