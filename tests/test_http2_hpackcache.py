"""
L{pooled_http._hpackcache}: the memo-fronted HPACK coders give, byte for
byte and header for header, what C{hpack}'s own coders give for the same
sequence of blocks, whatever the dynamic table does in between.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

try:
    from hpack import HeaderTuple, NeverIndexedHeaderTuple
    from hpack.exceptions import HPACKDecodingError
    from hpack.hpack import Decoder, Encoder

    from pooled_http import _hpackcache
    from pooled_http._hpackcache import CachingDecoder, CachingEncoder
except ImportError:  # pragma: no cover - h2 missing
    SKIP = "h2 is not installed"
else:
    SKIP = ""


def request(path: bytes = b"/", **extra: bytes) -> list[Any]:
    """
    A request header list as L{pooled_http._http2stream.requestHeaders}
    makes them.
    """
    headers: list[Any] = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"127.0.0.1:8443"),
        (b":path", path),
        (b"user-agent", b"pooled_http"),
    ]
    headers.extend((name.encode("ascii"), value) for name, value in extra.items())
    return headers


class EncoderTests(SynchronousTestCase):
    """
    L{CachingEncoder} against L{Encoder}.
    """

    def setUp(self) -> None:
        if SKIP:
            raise self.skipTest(SKIP)

    def assertSameBlocks(self, steps: list[Any]) -> None:
        """
        Feed both encoders the same steps (a header list to encode, or an
        C{int}: a new table size) and compare every block.
        """
        plain, caching = Encoder(), CachingEncoder()
        for step in steps:
            if isinstance(step, int):
                plain.header_table_size = step
                caching.header_table_size = step
                continue
            self.assertEqual(caching.encode(list(step)), plain.encode(list(step)))
        self.assertEqual(
            list(caching.header_table.dynamic_entries),
            list(plain.header_table.dynamic_entries),
        )

    def test_repeats(self) -> None:
        """
        A repeated list is encoded once (the second time it only indexes
        the table) and then reused.
        """
        self.assertSameBlocks([request()] * 5)
        encoder = CachingEncoder()
        first = encoder.encode(request())
        second = encoder.encode(request())
        self.assertNotEqual(first, second)
        self.assertIs(encoder.encode(request()), second)

    def test_tableChanges(self) -> None:
        """
        A block is not reused after the table changed: new entries
        (evicting older ones), a size change, a table of size 0.
        """
        big = b"x" * 3000
        self.assertSameBlocks(
            [
                request(),
                request(),
                request(b"/a", cookie=big),
                request(),
                request(b"/b", cookie=big),
                request(),
                request(),
                100,
                request(),
                request(),
                0,
                request(),
                request(),
                4096,
                request(),
                request(),
            ]
        )

    def test_neverIndexed(self) -> None:
        """
        Header tuples (which compare equal to plain tuples but may be never
        indexed) are encoded as given, not from the memo.
        """
        plain, caching = Encoder(), CachingEncoder()
        for headers in (
            request(),
            request(),
            request()[:4] + [NeverIndexedHeaderTuple(b"user-agent", b"pooled_http")],
            request()[:4] + [HeaderTuple(b"user-agent", b"pooled_http")],
            request(),
        ):
            self.assertEqual(caching.encode(headers), plain.encode(headers))

    def test_memoBounded(self) -> None:
        """
        The memo holds at most L{_hpackcache.MEMO_SIZE} blocks.
        """
        encoder = CachingEncoder()
        paths = [b"/%d" % (i,) for i in range(_hpackcache.MEMO_SIZE * 3)]
        for path in paths:
            headers = request()[:3] + [(b":path", path, True)]
            encoder.encode(headers)
        self.assertLessEqual(len(encoder._memo), _hpackcache.MEMO_SIZE)


def nginxLike(date: bytes) -> bytes:
    """
    A response block as nginx sends it: nothing indexed.
    """
    encoder = Encoder()
    return encoder.encode(
        [
            NeverIndexedHeaderTuple(b":status", b"200"),
            NeverIndexedHeaderTuple(b"server", b"nginx"),
            NeverIndexedHeaderTuple(b"date", date),
            NeverIndexedHeaderTuple(b"content-length", b"2"),
        ]
    )


class DecoderTests(SynchronousTestCase):
    """
    L{CachingDecoder} against L{Decoder}.
    """

    def setUp(self) -> None:
        if SKIP:
            raise self.skipTest(SKIP)

    def assertSameHeaders(self, blocks: list[bytes]) -> None:
        """
        Decode the same blocks with both decoders and compare.
        """
        plain, caching = Decoder(), CachingDecoder()
        for block in blocks:
            expected = plain.decode(block, raw=True)
            got = caching.decode(block, raw=True)
            self.assertEqual(got, expected)
            self.assertEqual([type(h) for h in got], [type(h) for h in expected])
        self.assertEqual(
            list(caching.header_table.dynamic_entries),
            list(plain.header_table.dynamic_entries),
        )
        self.assertEqual(caching.header_table.maxsize, plain.header_table.maxsize)

    def test_unindexedRepeats(self) -> None:
        """
        Blocks that leave the table empty are reused; the list handed out
        is a fresh one each time.
        """
        block = nginxLike(b"Wed, 02 Dec 2026 02:00:00 GMT")
        self.assertSameHeaders(
            [block] * 3 + [nginxLike(b"Wed, 02 Dec 2026 02:00:01 GMT")]
        )
        decoder = CachingDecoder()
        first = decoder.decode(block, raw=True)
        first.append(("x", "y"))
        self.assertEqual(len(decoder.decode(block, raw=True)), 4)

    def test_indexingPeer(self) -> None:
        """
        A peer that indexes: blocks that add to the table, or read from
        it, are decoded by the plain decoder every time.
        """
        encoder = Encoder()
        blocks = [encoder.encode(request()) for _ in range(3)]
        block = nginxLike(b"Wed, 02 Dec 2026 02:00:00 GMT")
        self.assertSameHeaders([block, blocks[0], block, blocks[1], blocks[2], block])

    def test_sizeUpdate(self) -> None:
        """
        A block that changes the table size is not reused.
        """
        encoder = Encoder()
        encoder.header_table_size = 0
        shrinking = encoder.encode([NeverIndexedHeaderTuple(b":status", b"200")])
        plain, caching = Decoder(), CachingDecoder()
        for decoder in (plain, caching):
            decoder.decode(shrinking, raw=True)
            decoder.header_table_size = 4096
            decoder.decode(shrinking, raw=True)
        self.assertEqual(caching.header_table.maxsize, plain.header_table.maxsize)
        self.assertEqual(caching.header_table.maxsize, 0)

    def test_limitsPartOfTheKey(self) -> None:
        """
        A block decoded under a larger header list limit is not reused
        once the limit is smaller: the limit is checked again.
        """
        block = nginxLike(b"Wed, 02 Dec 2026 02:00:00 GMT")
        decoder = CachingDecoder()
        decoder.decode(block, raw=True)
        decoder.max_header_list_size = 10
        self.assertRaises(HPACKDecodingError, decoder.decode, block, raw=True)

    def test_notRaw(self) -> None:
        """
        Text headers (C{raw=False}) are decoded as the plain decoder does.
        """
        block = nginxLike(b"Wed, 02 Dec 2026 02:00:00 GMT")
        decoder = CachingDecoder()
        self.assertEqual(decoder.decode(block), Decoder().decode(block))
        self.assertEqual(decoder.decode(block)[0], (":status", "200"))
