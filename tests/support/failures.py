"""
Looking inside the failures Twisted wraps: C{ResponseFailed},
C{ResponseNeverReceived} and friends keep their causes in C{reasons}, and
the tests assert on the causes.
"""

from __future__ import annotations

from twisted.python.failure import Failure

__all__ = ["reasonsOf", "innermost"]


def reasonsOf(exc: BaseException) -> list[BaseException]:
    """
    The exceptions Twisted wrapped in C{exc} (C{ResponseFailed} and friends
    keep them in C{reasons}), or C{[exc]} for any other exception.

    @param exc: An exception.
    """
    reasons = getattr(exc, "reasons", None)
    if not reasons:
        return [exc]
    inner: list[BaseException] = []
    for reason in reasons:
        value = reason.value if isinstance(reason, Failure) else reason
        if isinstance(value, BaseException):
            inner.append(value)
    return inner


def innermost(exc: BaseException | None) -> list[BaseException]:
    """
    Every non-wrapper exception inside C{exc}, however deeply wrapped.

    @param exc: An exception.
    """
    found: list[BaseException] = []
    if exc is None:
        return found
    stack = [exc]
    for _ in range(100):
        if not stack:
            break
        current = stack.pop()
        inner = reasonsOf(current)
        if inner == [current]:
            found.append(current)
        else:
            stack.extend(inner)
    return found
