"""One validator per kind of value. Every public entry point checks its numbers through these, so a bad value
gets the same clear message (argument name, allowed range, the value) wherever it enters.

ε, δ and the privacy unit have their own validators in :mod:`dprec.privacy.units` (their messages say what the
privacy settings mean).
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_number", "check_int", "check_fraction", "check_bool", "check_choice"]


def check_number(x, name: str, *, low: float = 0.0, low_inclusive: bool = False, allow_inf: bool = False) -> float:
    """A real number ``> low`` (``≥ low`` when ``low_inclusive``), finite unless ``allow_inf``; returns float."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name} must be a number, got {x!r}")
    v = float(x)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    if v < low or (v == low and not low_inclusive):
        raise ValueError(f"{name} must be {'≥' if low_inclusive else '>'} {low:g}, got {x!r}")
    return v


def check_int(x, name: str, *, minimum: int = 0) -> int:
    """An integer ``≥ minimum`` (bools refused); returns int."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {x!r}")
    if x < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {x!r}")
    return int(x)


def check_fraction(x, name: str, *, zero: bool = False, one: bool = False) -> float:
    """A number in ``(0, 1)``; ``zero``/``one`` make the ends inclusive. Returns float."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or math.isnan(float(x)):
        raise ValueError(f"{name} must be a number in {'[' if zero else '('}0, 1{']' if one else ')'}, got {x!r}")
    v = float(x)
    if v < 0 or v > 1 or (v == 0 and not zero) or (v == 1 and not one):
        raise ValueError(f"{name} must lie in {'[' if zero else '('}0, 1{']' if one else ')'}, got {x!r}")
    return v


def check_bool(x, name: str) -> bool:
    """``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(x, bool):
        raise ValueError(f"{name} must be True or False, got {x!r}")
    return x


def check_choice(x, name: str, choices) -> str:
    """One of ``choices``, with a did-you-mean hint."""
    from .errors import did_you_mean

    if x not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; {did_you_mean(x, choices)}got {x!r}")
    return x
