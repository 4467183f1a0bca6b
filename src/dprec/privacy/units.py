"""Privacy units and the ε/δ checks every public entry point shares.

A *privacy unit* says what neighbouring datasets differ by:

``"user"`` (default)
    add or remove one user together with **all** of that user's ratings.
``"rating"``
    add or remove a single (user, item, rating) triple.

A privacy budget is a target ``(epsilon, delta)`` for approximate differential privacy, checked by
:func:`check_epsilon` and :func:`check_delta`. ``epsilon = math.inf`` is a first-class value meaning *no
privacy*: the same code path runs with no noise and no clipping, and every report then says the artifact
is not DP.

:data:`PRIVACY_UNITS` is defined here and only here.
"""

from __future__ import annotations

import math
import numbers
import warnings

from .._validation import check_number

__all__ = [
    "PRIVACY_UNITS",
    "PrivacyWarning",
    "check_privacy_unit",
    "check_epsilon",
    "check_target_epsilon",
    "check_delta",
    "EPSILON_RANGE",
]

PRIVACY_UNITS = ("user", "rating")

#: the finite target ε a caller may ask for, ``[lo, hi]``. Below ``lo`` the Gaussian noise on a count is
#: ~1/ε ≥ 1000 units (every statistic drowns); above ``hi`` the bound e^ε ≥ e^1000 promises nothing. Values
#: outside are surely a mistake (1e-300 for 1e-3, 1e308 for ``math.inf``); ``math.inf`` stays the
#: non-private reference. Internal budget shares (after splitting a target) are checked by
#: :func:`check_epsilon` only, since they may be smaller than ``lo``.
EPSILON_RANGE = (1e-3, 1e3)


class PrivacyWarning(UserWarning):
    """A privacy setting that is legal but weak (e.g. ``delta >= 1/n``)."""


def check_privacy_unit(privacy_unit) -> str:
    """Validate and return the privacy unit (``"user"`` or ``"rating"``).

    Raises
    ------
    ValueError
        naming ``privacy_unit`` and the allowed values.
    """
    if not isinstance(privacy_unit, str) or privacy_unit not in PRIVACY_UNITS:
        raise ValueError(
            f"privacy_unit must be 'user' (one user and all their ratings; the default) or 'rating' "
            f"(one rating); got {privacy_unit!r}"
        )
    return privacy_unit


def _as_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    out = float(value)
    if math.isnan(out):
        raise ValueError(f"{name} must not be NaN")
    return out


def check_epsilon(epsilon) -> float:
    """Validate ``epsilon``: a real number > 0 (``math.inf`` allowed: no privacy).

    Raises
    ------
    ValueError
        if ``epsilon`` is not a number, is NaN, or is ``<= 0``.
    """
    eps = _as_real(epsilon, "epsilon")
    if eps <= 0:
        raise ValueError(f"epsilon must be > 0 (use epsilon=math.inf for the non-private reference); got {epsilon!r}")
    return eps


def check_target_epsilon(epsilon) -> float:
    """:func:`check_epsilon` for a caller's target ε: also refuses finite values outside :data:`EPSILON_RANGE`.

    Raises
    ------
    ValueError
        naming ``epsilon``, the accepted range and ``math.inf`` (the non-private reference).
    """
    eps = check_epsilon(epsilon)
    lo, hi = EPSILON_RANGE
    if math.isfinite(eps) and not (lo <= eps <= hi):
        raise ValueError(
            f"epsilon={epsilon!r} is {'too small' if eps < lo else 'too large'} to be meant: dprec accepts a finite "
            f"epsilon in [{lo:g}, {hi:g}] (typical: 0.1 to 20), or epsilon=math.inf for the non-private reference"
        )
    return eps


def check_delta(delta, n=None, *, allow_zero: bool = False) -> float:
    """Validate ``delta`` in (0, 1) and warn when it is weak for a dataset of ``n`` units.

    Parameters
    ----------
    delta : float
        Failure probability of approximate DP; must satisfy ``0 < delta < 1``
        (``0 <= delta < 1`` with ``allow_zero=True``, used for ``epsilon=inf``).
    n : int, optional
        Number of privacy units (users under user-level DP). This must be a *public* figure (a
        declared upper bound or a DP estimate), never the exact private count. When
        ``delta >= 1/n``, a mechanism that publishes one random unit's data outright would satisfy
        the guarantee, so a :class:`PrivacyWarning` is issued.

    Returns
    -------
    float
        ``delta`` as a float.
    """
    d = _as_real(delta, "delta")
    lo_ok = d >= 0 if allow_zero else d > 0
    if not (lo_ok and d < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"delta must be in {interval}; got {delta!r}")
    if n is not None:
        n = check_number(n, "n (the public number of privacy units)", allow_inf=True)
        if d > 0 and d >= 1.0 / float(n):
            warnings.warn(
                f"delta={d:g} >= 1/n = {1.0 / float(n):g}: such a guarantee allows publishing one unit's data "
                f"outright; choose delta much smaller than 1/n (e.g. 1/n^1.1 or 1e-6)",
                PrivacyWarning,
                stacklevel=2,
            )
    return d
