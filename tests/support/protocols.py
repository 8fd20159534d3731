"""
Running a test case on each HTTP/1.1 wire protocol a pool can speak.

A test case that builds its pools with C{protocol=self.protocol} and is
decorated with L{onEachProtocol} runs once per protocol, as
C{<Name>_httptools} and C{<Name>_twisted}, so either protocol is known to
pass the same tests.
"""

from __future__ import annotations

import sys
from typing import TypeVar

__all__ = ["WIRE_PROTOCOLS", "onEachProtocol"]

#: The wire protocols every decorated test case runs on: our own connection
#: on llhttp, and Twisted's C{HTTP11ClientProtocol}.
WIRE_PROTOCOLS = ("httptools", "twisted")

_T = TypeVar("_T", bound=type)


def onEachProtocol(cls: _T) -> _T:
    """
    Add to C{cls}'s module one subclass of C{cls} per wire protocol, named
    C{<cls>_<protocol>}, whose C{protocol} attribute is that protocol; keep
    C{cls} itself out of pytest's collection (C{__test__ = False}), so each
    test runs once on each protocol and under its own id.

    @param cls: A test case whose pools take C{protocol=self.protocol}.
    @return: C{cls}, unchanged but for C{__test__}.
    """
    module = sys.modules[cls.__module__]
    for protocol in WIRE_PROTOCOLS:
        name = f"{cls.__name__}_{protocol}"
        variant = type(cls)(
            name,
            (cls,),
            {
                "protocol": protocol,
                "__test__": True,
                "__module__": cls.__module__,
                "__qualname__": name,
                "__doc__": cls.__doc__,
            },
        )
        setattr(module, name, variant)
    cls.__test__ = False  # type: ignore[attr-defined]
    return cls
