"""The scalar steps of the implicit-shift QL iteration on a symmetric tridiagonal matrix, shared by the
eigensolver drivers of :mod:`dprec.kernels.psd` and the generated interleaved drivers of :mod:`dprec.kernels._ql_quad`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_FM = {"nsz", "arcp", "contract", "reassoc"}  # fast-math without nnan/ninf: the zero and convergence tests stay exact
_EPS = float(np.finfo(np.float64).eps)
_QL_MAX_SWEEPS = 60  # per eigenvalue; implicit QL with Wilkinson's shift needs ≈ 2–3 (cubic convergence)


@njit(cache=True, fastmath=_FM, inline="always")
def _ql_next(d, e, l, tol):
    """Start of the next implicit QL sweep at or after ``l``: skips converged leading eigenvalues and returns
    ``(l, m, g)``: the unreduced block ``[l, m]`` and the shifted pivot ``g = d_m − σ`` of its first rotation
    (``σ`` = the eigenvalue of the block's leading 2×2 nearer to ``d_l``, Wilkinson's shift). ``l = k``: done.
    """
    k = d.shape[0]
    while l < k:
        m = l
        while m < k - 1 and abs(e[m]) > tol:
            m += 1
        if m > l:
            g = (d[l + 1] - d[l]) / (2.0 * e[l])
            r = np.sqrt(g * g + 1.0) if abs(g) < 1e150 else abs(g)
            return l, m, d[m] - d[l] + e[l] / (g + math.copysign(r, g))
        l += 1
    return k, k, 0.0


@njit(cache=True, fastmath=_FM, inline="always")
def _ql_plane(d, e, i, s, c, p, g):
    """The scalar part of one plane rotation of an implicit QL sweep (coordinates ``i`` and ``i+1``): updates
    ``(d, e)`` and returns ``(s, c, p, g, split)``, the rotation being ``(c, s)``; ``split``: ``e`` vanished
    exactly inside the block (nothing rotated; the caller restarts the sweep)."""
    f = s * e[i]
    bb = c * e[i]
    # no hypot: T is scaled to norm ~1 (see _sym_eig_prepare), so f² + g² cannot overflow, and both fall
    # below 1e-154 only where the block has split to working precision anyway
    r = np.sqrt(f * f + g * g)
    e[i + 1] = r
    if r == 0.0:
        return s, c, p, g, True
    inv = 1.0 / r
    s = f * inv
    c = g * inv
    g = d[i + 1] - p
    r = (d[i] - g) * s + 2.0 * c * bb
    p = s * r
    d[i + 1] = g + p
    g = c * r - bb
    return s, c, p, g, False


@njit(cache=True, fastmath=_FM, inline="always")
def _ql_tol(d, e):
    # norm-wise deflation |e_m| ≤ ε·max_i(|d_i| + |e_i|): absolute accuracy O(ε‖T‖), as in LAPACK
    k = d.shape[0]
    t = 0.0
    for i in range(k):
        t = max(t, abs(d[i]) + abs(e[i]))
    return t * _EPS


@njit(cache=True, fastmath=_FM, inline="always")
def _ql_rotation(d, e, Zt, i, s, c, p, g):
    """One plane rotation of an implicit QL sweep (bulge chasing upwards, coordinates ``i`` and ``i+1``),
    applied to ``(d, e)`` and to rows ``i``, ``i+1`` of ``Zt``. Returns ``(s, c, p, g, split)``;
    ``split``: ``e`` vanished exactly inside the block (nothing rotated; the caller restarts the sweep).
    """
    k = d.shape[0]
    s, c, p, g, split = _ql_plane(d, e, i, s, c, p, g)
    if split:
        return s, c, p, g, True
    z0 = Zt[i]
    z1 = Zt[i + 1]
    for a in range(k):  # contiguous rows: vectorises, and overlaps with the scalar recurrence above
        zi = z0[a]
        zn = z1[a]
        z1[a] = s * zi + c * zn
        z0[a] = c * zi - s * zn
    return s, c, p, g, False
