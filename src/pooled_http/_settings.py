"""
Validated settings: the limits and timeouts of a pool, checked at
construction and on every assignment.
"""

from __future__ import annotations

import math
from typing import Any


class Setting:
    """
    The rule for one pool setting.

    A value that is zero, negative, not a number (C{bool} included), or not
    finite raises L{ValueError} naming the setting; L{None} is allowed only
    for settings that can be disabled.

    @ivar name: The attribute name.
    @ivar integer: Whether only whole numbers are allowed.
    @ivar optional: Whether L{None} (disabled) is allowed.
    """

    __slots__ = ("name", "integer", "optional")

    def __init__(self, name: str, *, integer: bool = False, optional: bool = False) -> None:
        self.name = name
        self.integer = integer
        self.optional = optional

    def validate(self, value: Any) -> Any:
        """
        Return C{value} if it is acceptable for this setting.

        @raise ValueError: Naming the setting, if it is not.
        """
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{self.name} must be a positive number, not None")
        kind = "a positive whole number" if self.integer else "a positive number"
        if self.optional:
            kind += " or None"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{self.name} must be {kind}, not {value!r}")
        if self.integer and not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                raise ValueError(f"{self.name} must be {kind}, not {value!r}")
            value = int(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{self.name} must be {kind}, not {value!r}")
        if value <= 0:
            raise ValueError(f"{self.name} must be {kind}, not {value!r}")
        return value


def settings(*rules: Setting) -> dict[str, Setting]:
    """
    Index setting rules by name.
    """
    return {rule.name: rule for rule in rules}
