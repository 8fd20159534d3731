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

    A value that is zero (unless allowed), negative, not a number (C{bool}
    included), or not finite raises L{ValueError} naming the setting;
    L{None} is allowed only for settings that can be disabled.

    @ivar name: The attribute name.
    @ivar integer: Whether only whole numbers are allowed.
    @ivar optional: Whether L{None} (disabled) is allowed.
    @ivar zero: Whether zero is allowed.
    """

    __slots__ = ("name", "integer", "optional", "zero")

    def __init__(
        self,
        name: str,
        *,
        integer: bool = False,
        optional: bool = False,
        zero: bool = False,
    ) -> None:
        self.name = name
        self.integer = integer
        self.optional = optional
        self.zero = zero

    def validate(self, value: Any) -> Any:
        """
        Return C{value} if it is acceptable for this setting.

        @raise ValueError: Naming the setting, if it is not.
        """
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{self.name} must be a positive number, not None")
        sign = "a non-negative" if self.zero else "a positive"
        kind = f"{sign} whole number" if self.integer else f"{sign} number"
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
        if value < 0 or (value == 0 and not self.zero):
            raise ValueError(f"{self.name} must be {kind}, not {value!r}")
        return value


def flag(name: str, value: Any) -> bool:
    """
    Return C{value} if it is C{True} or C{False}: a switch given as
    C{"no"} or C{0} would otherwise be read by its truth.

    @param name: The setting, for the message.
    @raise TypeError: Naming the setting, for anything else.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


def settings(*rules: Setting) -> dict[str, Setting]:
    """
    Index setting rules by name.
    """
    return {rule.name: rule for rule in rules}


class _Default:
    """
    The type of L{DEFAULT}.
    """

    _instance: _Default | None = None

    def __new__(cls) -> _Default:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"

    def __bool__(self) -> bool:
        return False


#: A keyword argument left at C{DEFAULT} takes the class attribute of the
#: same name: the class attributes are the one home of every default.
DEFAULT: Any = _Default()
