"""
Headers between HTTP/1.1 form and HTTP/2 for L{pooled_http._http2stream}: a
request's headers as an HTTP/2 header list (pseudo-headers, I{Host} as
C{:authority}, connection-specific headers dropped, lower-case names,
secrets never indexed), and a response's header list checked once (a
malformed one is refused) and built into L{Headers}, with a memo of the
lists a connection has seen.
"""

from __future__ import annotations

from typing import Any

from hpack import NeverIndexedHeaderTuple
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from ._http11head import _CR, _LF, _RAW_HEADERS, _buildHeaders, _newHeaders

__all__ = ["CheckedHeaders", "requestHeaders", "responseHeaders"]

#: Header names that belong to one HTTP/1.1 connection and must not be sent
#: on HTTP/2 (RFC 9113, section 8.2.2); I{Host} becomes C{:authority}.
_CONNECTION_SPECIFIC = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)

#: Request headers that carry secrets: sent never-indexed.
_SENSITIVE = frozenset({b"authorization", b"proxy-authorization", b"cookie"})


def requestHeaders(request: Any, scheme: bytes) -> list[tuple[bytes, bytes]]:
    """
    The HTTP/2 header list of a Twisted request: the pseudo-headers first
    (C{:authority} from I{Host}), then the other headers with lower-case
    names, without the connection-specific ones (nor those the
    I{Connection} header names), I{TE} only as C{trailers}, and a
    I{Content-Length} when the body producer knows its length.

    @param request: A L{twisted.web._newclient.Request}.
    @param scheme: C{b"https"} or C{b"http"}.
    @return: The header list.
    """
    headers: Headers = request.headers
    authority = b""
    dropped = set(_CONNECTION_SPECIFIC)
    for value in headers.getRawHeaders(b"connection") or ():
        dropped.update(part.strip().lower() for part in value.split(b","))
    host = headers.getRawHeaders(b"host")
    if host:
        authority = host[0]
    result = [
        (b":method", request.method),
        (b":scheme", scheme),
        (b":authority", authority),
        (b":path", request.uri or b"/"),
    ]
    hasLength = False
    for name, values in headers.getAllRawHeaders():
        lower = name.lower()
        if lower in dropped:
            continue
        if lower == b"te":
            values = [v for v in values if v.strip().lower() == b"trailers"]
        elif lower == b"content-length":
            hasLength = True
        if lower in _SENSITIVE:
            # Never in HPACK's dynamic table (RFC 7541, 7.1.3), as h2's own
            # normalisation (off) would mark them.
            for value in values:
                result.append(NeverIndexedHeaderTuple(lower, value))
            continue
        for value in values:
            result.append((lower, value))
    producer = request.bodyProducer
    if producer is not None and not hasLength:
        length: Any = getattr(producer, "length", UNKNOWN_LENGTH)
        if length is not UNKNOWN_LENGTH:
            result.append((b"content-length", b"%d" % (length,)))
    return result


#: What L{responseHeaders} remembers (per connection): a header list (as
#: the HPACK decoder gives it) to its status, its fields (as L{Headers} to
#: copy) and its I{Content-Length}.
CheckedHeaders = dict[tuple[Any, ...], tuple[int, Headers, Any]]

#: How many header lists a L{CheckedHeaders} keeps (then it starts afresh).
_CHECKED_SIZE = 64

#: Header names a response must not carry on HTTP/2 (RFC 9113, 8.2.2).
_FORBIDDEN_IN_RESPONSE = _CONNECTION_SPECIFIC - {b"host"}


def _checkResponseHeaders(
    headers: list[tuple[bytes, bytes]],
) -> tuple[int, Headers, int | None]:
    code = 0
    seenStatus = False
    regular = False
    fields = []
    length: int | None = None
    for name, value in headers:
        if _LF in value or _CR in value or 0 in value or not name:
            # h2's inbound validation is off (it costs as much as the rest
            # of a response): these checks stand in for it.
            raise ValueError(f"invalid response header {name[:40]!r}")
        if name[0] == 58:  # a pseudo-header
            if name != b":status":
                raise ValueError(f"pseudo-header {name[:40]!r} in a response")
            if seenStatus:
                raise ValueError("more than one :status in response")
            if regular:
                raise ValueError(":status after a regular header in response")
            seenStatus = True
            try:
                code = int(value)
            except ValueError:
                code = 0
            continue
        regular = True
        if name in _FORBIDDEN_IN_RESPONSE:
            raise ValueError(f"connection-specific header {name!r} in response")
        if name != name.lower():
            raise ValueError(f"upper-case response header name {name[:40]!r}")
        if name == b"content-length":
            if not value.isdigit():
                raise ValueError(f"invalid content-length {value[:40]!r} in response")
            if length is None:
                length = int(value)
            elif length != int(value):
                raise ValueError("conflicting content-length values in response")
        fields.append((name, value))
    if not seenStatus:
        raise ValueError("no :status in response")
    if not 100 <= code < 600:
        raise ValueError(f"invalid :status {code} in response")
    return code, _buildHeaders(fields), length


def _copyHeaders(template: Headers) -> Headers:
    """
    A new L{Headers} with the same fields as C{template}.
    """
    if not _RAW_HEADERS:  # pragma: no cover - a Headers of another shape
        return template.copy()
    headers: Any = _newHeaders(Headers)
    raw: Any = template
    headers._rawHeaders = {name: values[:] for name, values in raw._rawHeaders.items()}
    copy: Headers = headers
    return copy


def responseHeaders(
    headers: list[tuple[bytes, bytes]], checked: CheckedHeaders
) -> tuple[int, Headers, int | None]:
    """
    Check a response's header list: no CR, LF or NUL in a value, no empty
    or upper-case name, exactly one C{:status} (from 100 to 599) and no
    other pseudo-header, before the regular headers, no connection-specific
    header, I{Content-Length} values all alike and all digits.  Responses
    from one server differ little (I{Date} ticks), so a burst checks each
    list once.

    @param headers: As h2 gives them (bytes, not validated by h2).
    @param checked: The lists already checked on this connection.
    @return: The status, the headers without the pseudo-headers (a new
        L{Headers}), the I{Content-Length} or L{None}.
    @raise ValueError: The list is invalid; the message names the header.
    """
    key = tuple(headers)
    known = checked.get(key)
    if known is None:
        known = _checkResponseHeaders(headers)
        if len(checked) >= _CHECKED_SIZE:
            checked.clear()
        checked[key] = known
    code, template, length = known
    return code, _copyHeaders(template), length
