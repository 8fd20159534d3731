"""
Validated settings: the limits and timeouts of a pool, as attributes that
check every value at construction and on assignment.
"""

from __future__ import annotations

import math
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Setting(Generic[T]):
    """
    A data descriptor for one pool setting.

    A value that is zero, negative, not a number (C{bool} included), or not
    finite raises L{ValueError} naming the setting; L{None} is allowed only
    for settings that can be disabled.  Assigning a new value calls the
    owner's C{_settingChanged(name)} so limits take effect at once.

    @ivar name: The attribute name.
    @ivar default: The default value.
    @ivar integer: Whether only whole numbers are allowed.
    @ivar optional: Whether L{None} (disabled) is allowed.
    """

    def __init__(
        self, default: T, *, integer: bool = False, optional: bool = False
    ) -> None:
        self.default = default
        self.integer = integer
        self.optional = optional
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[T]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> T: ...

    def __get__(self, instance: object | None, owner: type) -> Any:
        if instance is None:
            return self
        return instance.__dict__.get(self.name, self.default)

    def __set__(self, instance: Any, value: T) -> None:
        instance.__dict__[self.name] = self.validate(value)
        changed = getattr(instance, "_settingChanged", None)
        if changed is not None:
            changed(self.name)

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
