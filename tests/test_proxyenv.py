"""
The environment's proxy variables, by curl's rules: one table per rule.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pooled_http._proxyenv import (
    environmentValue,
    noProxyMatches,
    proxyFromEnvironment,
)

P = "http://proxy.test:3128"
S = "http://secure.test:3128"
A = "socks5h://all.test:1080"

# (environment, scheme, host, port, expected URL or None)
SELECTION = [
    ({}, "http", "example.com", 80, None),
    ({"http_proxy": P}, "http", "example.com", 80, P),
    ({"http_proxy": P}, "https", "example.com", 443, None),
    ({"https_proxy": S}, "https", "example.com", 443, S),
    ({"https_proxy": S}, "http", "example.com", 80, None),
    ({"http_proxy": P}, "ws", "example.com", 80, P),
    ({"https_proxy": S}, "wss", "example.com", 443, S),
    ({"all_proxy": A}, "http", "example.com", 80, A),
    ({"all_proxy": A}, "https", "example.com", 443, A),
    ({"all_proxy": A, "https_proxy": S}, "https", "example.com", 443, S),
    ({"ALL_PROXY": A}, "https", "example.com", 443, A),
    ({"HTTPS_PROXY": S}, "https", "example.com", 443, S),
    ({"HTTP_PROXY": P}, "http", "example.com", 80, P),
    # lower case wins over upper case
    ({"https_proxy": S, "HTTPS_PROXY": P}, "https", "example.com", 443, S),
    ({"http_proxy": P, "HTTP_PROXY": S}, "http", "example.com", 80, P),
    # a set but empty lower-case variable hides the upper-case one
    ({"https_proxy": "", "HTTPS_PROXY": P}, "https", "example.com", 443, None),
    # httpoxy: HTTP_PROXY means nothing inside a CGI request
    ({"HTTP_PROXY": P, "REQUEST_METHOD": "GET"}, "http", "example.com", 80, None),
    ({"http_proxy": P, "REQUEST_METHOD": "GET"}, "http", "example.com", 80, P),
    ({"HTTPS_PROXY": S, "REQUEST_METHOD": "GET"}, "https", "example.com", 443, S),
    # no_proxy applies to every variable
    ({"all_proxy": A, "no_proxy": "example.com"}, "https", "example.com", 443, None),
    ({"https_proxy": S, "NO_PROXY": "*"}, "https", "example.com", 443, None),
    ({"https_proxy": S, "no_proxy": "other.com"}, "https", "example.com", 443, S),
    ({"https_proxy": S, "no_proxy": "", "NO_PROXY": "*"}, "https", "a.b", 443, S),
    ({"https_proxy": "  " + S + " "}, "https", "example.com", 443, S),
]


# (no_proxy, host, port, excluded)
NO_PROXY = [
    ("*", "anything.example", 443, True),
    (" * ", "anything.example", 443, True),
    ("example.com", "example.com", 443, True),
    ("example.com", "www.example.com", 443, True),
    ("example.com", "a.b.example.com", 80, True),
    (".example.com", "www.example.com", 443, True),
    (".example.com", "example.com", 443, True),
    ("example.com", "badexample.com", 443, False),
    ("example.com", "example.com.evil", 443, False),
    ("EXAMPLE.com", "www.Example.COM", 443, True),
    ("example.com.", "www.example.com", 443, True),
    ("example.com", "www.example.com.", 443, True),
    ("a.test, b.test ,c.test", "x.b.test", 80, True),
    ("a.test,,c.test", "b.test", 80, False),
    ("example.com:8080", "example.com", 8080, True),
    ("example.com:8080", "example.com", 443, False),
    ("127.0.0.1", "127.0.0.1", 80, True),
    ("127.0.0.1", "127.0.0.2", 80, False),
    ("127.0.0.0/8", "127.9.8.7", 80, True),
    ("127.128.0.0/9", "127.0.0.1", 80, False),
    ("127.0.0.1:8080", "127.0.0.1", 8080, True),
    ("127.0.0.1:8080", "127.0.0.1", 80, False),
    ("::1", "::1", 443, True),
    ("::1", "[::1]", 443, True),
    ("[::1]:443", "::1", 443, True),
    ("[::1]:443", "::1", 80, False),
    ("::/127", "::1", 443, True),
    ("::1/128", "::2", 443, False),
    # a name never matches an address and the other way round
    ("localhost", "127.0.0.1", 80, False),
    ("127.0.0.1", "localhost", 80, False),
    ("", "example.com", 443, False),
    ("*.example.com", "www.example.com", 443, False),
]


# (environment, name, expected value)
VALUES = [
    ({"no_proxy": "a", "NO_PROXY": "b"}, "no_proxy", "a"),
    ({"NO_PROXY": "b"}, "no_proxy", "b"),
    ({"no_proxy": "  "}, "no_proxy", None),
    ({}, "all_proxy", None),
]


class EnvironmentTests(SynchronousTestCase):
    """
    Each table, row by row; a failing row is named in the message.
    """

    def test_selection(self) -> None:
        for environ, scheme, host, port, expected in SELECTION:
            found = proxyFromEnvironment(environ, scheme, host, port)
            self.assertEqual(
                found[1] if found else None,
                expected,
                f"{environ!r} {scheme}://{host}:{port}",
            )

    def test_variableNamed(self) -> None:
        """
        The variable a URL came from is named as it is set, for error
        messages.
        """
        self.assertEqual(
            proxyFromEnvironment({"ALL_PROXY": A}, "http", "h", 80), ("ALL_PROXY", A)
        )
        self.assertEqual(
            proxyFromEnvironment({"HTTPS_PROXY": S}, "https", "h", 443),
            ("HTTPS_PROXY", S),
        )
        self.assertEqual(
            proxyFromEnvironment({"https_proxy": S, "HTTPS_PROXY": A}, "https", "h", 443),
            ("https_proxy", S),
        )

    def test_noProxy(self) -> None:
        for noProxy, host, port, excluded in NO_PROXY:
            self.assertIs(
                noProxyMatches(noProxy, host, port),
                excluded,
                f"no_proxy={noProxy!r} for {host}:{port}",
            )

    def test_environmentValue(self) -> None:
        for environ, name, expected in VALUES:
            self.assertEqual(environmentValue(environ, name), expected, repr(environ))
