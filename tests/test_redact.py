"""
What a request's URL looks like where it may be shown (L{fullURL}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI

from pooled_http._redact import fullURL


class FullURLTests(SynchronousTestCase):
    """
    L{fullURL} drops user info and the fragment, redacts signature query
    values, and keeps the rest of the URL as sent.
    """

    def show(self, uri: bytes) -> str:
        return fullURL(URI.fromBytes(uri))

    def test_plain(self) -> None:
        """
        The default port is left out, another one kept; an empty path is
        C{/}.
        """
        self.assertEqual(self.show(b"http://127.0.0.1"), "http://127.0.0.1/")
        self.assertEqual(self.show(b"https://127.0.0.1:8443/a"), "https://127.0.0.1:8443/a")

    def test_params(self) -> None:
        """
        The path's C{;params} are part of the URL shown.
        """
        self.assertEqual(
            self.show(b"http://127.0.0.1/a;type=i?x=1"), "http://127.0.0.1/a;type=i?x=1"
        )

    def test_secretsAndFragment(self) -> None:
        """
        No fragment, and a signature's value is redacted.
        """
        self.assertEqual(
            self.show(b"http://127.0.0.1/p?sig=abc&x=1#frag"),
            "http://127.0.0.1/p?sig=REDACTED&x=1",
        )
