"""Errors caused by the user's input, reported by the entry points as one line.

Anything raised as a `UserInputError` means "the run cannot start as configured": the
command-line entry points print its message alone (no traceback) and exit with status 2.
"""

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class UserInputError(Exception):
    """Base class: a problem the user can fix by changing a flag, a config or a path."""


class ConfigError(UserInputError, ValueError):
    """An unknown name or an out-of-range value in the configuration."""


class DataError(UserInputError):
    """Missing, incomplete or unreadable data."""


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """Return `registry[name]`, or fail with one line listing the accepted names."""
    key = name.lower() if isinstance(name, str) else name
    if key not in registry:
        known = ", ".join(sorted(registry))
        raise ConfigError(f"unknown {what} {name!r}; choose one of: {known}")
    return registry[key]


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, high_inclusive: bool = True) -> None:
    """Fail with one line when `value` lies outside [low, high] (ends as requested)."""
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        low_text = "-inf" if low is None else low
        high_text = "inf" if high is None else high
        interval = f"{left}{low_text}, {high_text}{right}"
        raise ConfigError(f"{name}={value!r} is out of range; it must lie in {interval}")
