"""
What a request's URL looks like where it may be shown (L{fullURL}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI

from pooled_http._redact import fullURL, withoutPassword


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


class WithoutPasswordTests(SynchronousTestCase):
    """
    L{withoutPassword} hides the password of a URL's user info, however it
    is written, and keeps the rest.
    """

    def test_requestURL(self) -> None:
        """
        A request URL's user info ends at the last C{@} of its authority: an
        C{@} in the path or query is not user info.
        """
        cases = [
            ("http://127.0.0.1/", "http://127.0.0.1/"),
            ("http://u:pw@127.0.0.1:81/a", "http://u:***@127.0.0.1:81/a"),
            ("http://u@127.0.0.1/", "http://u@127.0.0.1/"),
            ("http://u:p@w@127.0.0.1/", "http://u:***@127.0.0.1/"),
            ("http://127.0.0.1/a?mail=x@y", "http://127.0.0.1/a?mail=x@y"),
            ("u:pw@127.0.0.1", "u:***@127.0.0.1"),
        ]
        for given, shown in cases:
            self.assertEqual(withoutPassword(given), shown, given)

    def test_proxyURL(self) -> None:
        """
        A proxy URL has no path: its user info ends at the last C{@}, so a
        password holding C{/}, C{?}, C{#} or C{@} is hidden whole.
        """
        for password in ("se/cret", "se?cret", "se#cret", "se@cret"):
            shown = withoutPassword(f"http://u:{password}@127.0.0.1:3128", False)
            self.assertEqual(shown, "http://u:***@127.0.0.1:3128")
