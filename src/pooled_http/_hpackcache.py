"""
HPACK coders for L{pooled_http._http2} that remember the header blocks
they have just encoded or decoded, so a burst of like requests (and their
like responses) does not pay for HPACK's per-field Python work each time.

Both are C{hpack}'s own coders with a memo in front, used only where the
memo gives exactly the answer (and leaves exactly the state) the coder
would: HPACK is stateful (each side keeps a dynamic table), so a block is
remembered only when coding it did not change that state, and reused only
while the state is still the one it was coded from.

  - L{CachingEncoder}: a request's header list (plain 2-tuples of bytes, as
    L{pooled_http._http2stream.requestHeaders} makes them) encodes to the
    same bytes while the encoder's dynamic table has not changed since; the
    table carries a version, bumped by every change.
  - L{CachingDecoder}: a response header block decodes to the same header
    list from an empty dynamic table, if decoding it left the table empty
    (servers that never index, nginx among them, send blocks like that;
    they differ only when I{Date} ticks).
"""

from __future__ import annotations

from typing import Any

from hpack.hpack import Decoder, Encoder
from hpack.table import HeaderTable

__all__ = ["CachingDecoder", "CachingEncoder"]

#: How many distinct blocks each coder remembers (then it starts afresh).
MEMO_SIZE = 64


class _VersionedTable(HeaderTable):
    """
    An HPACK dynamic table that counts its changes.

    @ivar version: Bumped by every entry added and every size change.
    """

    def __init__(self) -> None:
        HeaderTable.__init__(self)
        self.version = 0

    def add(self, name: bytes, value: bytes) -> None:
        """
        Add an entry (see C{HeaderTable.add}).
        """
        self.version += 1
        HeaderTable.add(self, name, value)

    @property
    def maxsize(self) -> int:
        """
        The table's size limit (see C{HeaderTable.maxsize}).
        """
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.version += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingEncoder(Encoder):
    """
    An HPACK encoder that reuses the block it encoded for the same header
    list, while its dynamic table is unchanged.
    """

    def __init__(self) -> None:
        Encoder.__init__(self)
        self.header_table = _VersionedTable()
        self._memo: dict[tuple[Any, ...], tuple[int, bytes]] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        """
        Encode C{headers} (see C{Encoder.encode}).
        """
        table: Any = self.header_table
        if not huffman or table.resized or type(headers) is not list:
            return Encoder.encode(self, headers, huffman)
        for header in headers:
            if type(header) is not tuple:
                # HeaderTuple and its never-indexed kind compare equal to
                # plain tuples but encode differently: not remembered.
                return Encoder.encode(self, headers, huffman)
        key = tuple(headers)
        version = table.version
        memo = self._memo
        hit = memo.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        encoded = Encoder.encode(self, headers, huffman)
        if table.version == version:
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[key] = (version, encoded)
        return encoded


class CachingDecoder(Decoder):
    """
    An HPACK decoder that reuses the header list it decoded from the same
    block, when decoding it from an empty dynamic table left that table
    empty and the limits are the same.
    """

    def __init__(self) -> None:
        Decoder.__init__(self)
        self._memo: dict[tuple[bytes, int, int, int], list[Any]] = {}

    def decode(self, data: bytes, raw: bool = False) -> Any:
        """
        Decode the header block C{data} (see C{Decoder.decode}).
        """
        table = self.header_table
        if not raw or type(data) is not bytes or table.dynamic_entries:
            return Decoder.decode(self, data, raw)
        key = (
            data,
            table.maxsize,
            self.max_allowed_table_size,
            self.max_header_list_size,
        )
        memo = self._memo
        hit = memo.get(key)
        if hit is not None:
            return list(hit)
        headers = Decoder.decode(self, data, raw)
        if not table.dynamic_entries and table.maxsize == key[1]:
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[key] = list(headers)
        return headers
