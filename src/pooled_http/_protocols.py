"""
Which wire protocol a pool's connections speak: the C{protocol} setting
turned into a connection factory.

    - C{"httptools"}: L{pooled_http._http11.HTTP11Connection}, our own
      HTTP/1.1 connection on llhttp (through httptools);
    - C{"twisted"}: L{pooled_http._twistedproto.TwistedHTTP11Connection},
      on Twisted's own C{HTTP11ClientProtocol};
    - C{"auto"} (the default): httptools where it imports, Twisted's
      protocol otherwise (e.g. on an interpreter httptools has no build
      for), saying so once in the log.
"""

from __future__ import annotations

from twisted.logger import Logger

from ._contract import ConnectionFactory

__all__ = ["PROTOCOLS", "connectionFactoryFor"]

#: The values the C{protocol} setting takes.
PROTOCOLS = ("auto", "httptools", "twisted")

_log = Logger(namespace="pooled_http")
_saidFallback: list[bool] = []


def connectionFactoryFor(protocol: str) -> tuple[str, ConnectionFactory]:
    """
    The connection factory for a C{protocol} setting.

    @param protocol: One of L{PROTOCOLS}.
    @return: The protocol actually used (C{"httptools"} or C{"twisted"})
        and its connection factory.
    @raise ValueError: For a value not in L{PROTOCOLS}, naming the setting.
    @raise ImportError: For C{"httptools"} where httptools does not import.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"protocol must be one of {', '.join(map(repr, PROTOCOLS))}, "
            f"not {protocol!r}"
        )
    if protocol != "twisted":
        try:
            from ._http11 import HTTP11Connection
        except ImportError as e:
            if protocol == "httptools":
                raise ImportError(
                    f"protocol='httptools' needs httptools, which does not import "
                    f"here ({e}); use protocol='twisted' or 'auto'"
                ) from e
            if not _saidFallback:
                _saidFallback.append(True)
                _log.info(
                    "pooled_http: httptools does not import ({error}); "
                    "connections use Twisted's HTTP/1.1 protocol",
                    error=str(e),
                )
        else:
            return "httptools", HTTP11Connection
    from ._twistedproto import TwistedHTTP11Connection

    return "twisted", TwistedHTTP11Connection
