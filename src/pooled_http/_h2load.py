"""
How many streams an HTTP/2 server takes at once, learnt from its refusals.

A server may refuse a stream (C{REFUSED_STREAM}) below the
C{SETTINGS_MAX_CONCURRENT_STREAMS} it announced: nginx, for one, counts
streams it is still finishing, such as ones the client has reset.  Opening
as many as the settings allow would have it refuse stream after stream,
and each refused request spend its retries at once.  L{LearntLimit} takes
the streams still open that are older than the refused one as what it
takes now, and tries one more after each round of that many answers
(after which the settings rule again).
"""

from __future__ import annotations

__all__ = ["LearntLimit"]


class LearntLimit:
    """
    The streams one connection's server takes at once, as its refusals
    show; L{None} while they show nothing (its settings rule).

    @ivar value: The most streams to have open at once, or L{None}.
    """

    __slots__ = ("value", "_answers")

    def __init__(self) -> None:
        self.value: int | None = None
        self._answers = 0

    def refused(self, older: int) -> bool:
        """
        A stream was refused while C{older} streams opened before it were
        still open.

        @return: Whether the refusal says the server is busy (there were
            older streams); a refusal with nothing else open says nothing
            of load and changes nothing.
        """
        if not older:
            return False
        self.value = older if self.value is None else min(self.value, older)
        self._answers = 0
        return True

    def answered(self, advertised: int) -> bool:
        """
        A stream was answered; C{advertised} is the server's setting.

        @return: Whether L{value} changed.
        """
        if self.value is None:
            return False
        self._answers += 1
        if self._answers < self.value:
            return False
        # A round of answers: one stream more.
        self._answers = 0
        self.value += 1
        if self.value >= advertised:
            self.value = None
        return True

    def applied(self, advertised: int) -> int:
        """
        @return: The limit to keep to: C{advertised}, or less if learnt.
        """
        value = self.value
        return advertised if value is None or value >= advertised else value
