"""Matrix-free conjugate gradient for per-row ridge systems (explicit ALS's fast path).

For every CSR row ``r`` with stored columns ``j`` and per-entry targets ``t_rj``, :func:`cg_ridge_rows` runs
``cg_steps`` conjugate-gradient steps, warm-started from the current row ``x_r`` of ``X`` (in place), on::

    (Σ_j y_j y_jᵀ + diag(reg_r)) x_r = Σ_j t_rj y_j

using only the products ``A p = Σ_j y_j (y_jᵀ p) + reg_r ∘ p`` — the Gram ``Σ_j y_j y_jᵀ`` is never formed.
A step costs ``4·n_r·k + O(k)`` flops for a row with ``n_r`` entries (k columns of ``Y``), against
``2·n_r·k² + k³/3`` for the Gram and Cholesky of the exact solve.

Explicit biased ALS uses it on both sides with the bias folded in as a constant column (see
:mod:`dprec.models._biased_als`): the user step with ``Y = [V, 1]``, ``t = r − μ − c_j`` and
``reg = [λ_u (n_u + 1), …, λ_b]``; the item step with ``Y = [U, 1]``, ``t = r − μ − b_u − c_j`` and
``reg = [λ n_j + 10⁻⁶, …, λ n_j + 10⁻⁶ + λ_c]`` (unknowns ``[v_j; Δc_j]``, warm start ``[v_j; 0]``).

Arithmetic is float32 (as implicit ALS's CG, :func:`dprec.kernels.als.cg_rows`); each row is computed by
one thread in a fixed order, so results do not depend on the thread count or scheduling (bit-identical run
to run). A row's iteration stops early when its squared residual norm falls below ``1e-20`` or the
curvature ``pᵀAp`` is not positive.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .als import balanced_bounds

__all__ = ["cg_ridge_rows", "ridge_residual_norms"]

_PJIT = dict(cache=True, fastmath=True, parallel=True)


@njit(**_PJIT)
def _cg_ridge_rows_nb(indptr, indices, target, Y, reg_rows, X, cg_steps, nchunks):
    """In place on ``X`` (n_rows, k) float32: ``cg_steps`` warm-started CG steps per row (module docstring)."""
    k = Y.shape[1]
    bounds = balanced_bounds(indptr, nchunks, float(k) / 4.0 + 4.0)
    for c in prange(nchunks):
        lo, hi = bounds[c], bounds[c + 1]
        mx = 1
        for u in range(lo, hi):
            mx = max(mx, indptr[u + 1] - indptr[u])
        Yb = np.empty((mx, k), dtype=np.float32)  # the row's gathered vectors: one random pass, reused by every step
        x = np.empty(k, dtype=np.float32)
        r = np.empty(k, dtype=np.float32)
        p = np.empty(k, dtype=np.float32)
        Ap = np.empty(k, dtype=np.float32)
        lam = np.empty(k, dtype=np.float32)
        for u in range(lo, hi):
            s, e = indptr[u], indptr[u + 1]
            n = e - s
            for a in range(k):
                x[a] = X[u, a]
                lam[a] = np.float32(reg_rows[u, a])
                r[a] = -lam[a] * x[a]
            # r = b − A x = Σ_j (t_j − y_j·x) y_j − reg ∘ x
            for t in range(n):
                j = indices[s + t]
                d = np.float32(0.0)
                for a in range(k):
                    v = np.float32(Y[j, a])
                    Yb[t, a] = v
                    d += v * x[a]
                w = np.float32(target[s + t]) - d
                for a in range(k):
                    r[a] += w * Yb[t, a]
            rsold = np.float32(0.0)
            for a in range(k):
                p[a] = r[a]
                rsold += r[a] * r[a]
            if rsold < 1e-20:
                continue
            for _ in range(cg_steps):
                for a in range(k):
                    Ap[a] = lam[a] * p[a]
                for t in range(n):
                    d = np.float32(0.0)
                    for a in range(k):
                        d += Yb[t, a] * p[a]
                    for a in range(k):
                        Ap[a] += d * Yb[t, a]
                pAp = np.float32(0.0)
                for a in range(k):
                    pAp += p[a] * Ap[a]
                if not pAp > 0:
                    break
                alpha = rsold / pAp
                rsnew = np.float32(0.0)
                for a in range(k):
                    x[a] += alpha * p[a]
                    r[a] -= alpha * Ap[a]
                    rsnew += r[a] * r[a]
                if rsnew < 1e-20:
                    break
                beta = rsnew / rsold
                for a in range(k):
                    p[a] = r[a] + beta * p[a]
                rsold = rsnew
            for a in range(k):
                X[u, a] = x[a]


@njit(cache=True, parallel=True)
def _residual_norms_nb(indptr, indices, target, Y, reg_rows, X, out):
    """``out_r = ‖Σ_j (t_rj − y_j·x_r) y_j − reg_r ∘ x_r‖₂`` per row, in float64."""
    n_rows = indptr.shape[0] - 1
    k = Y.shape[1]
    for u in prange(n_rows):
        r = np.empty(k)
        for a in range(k):
            r[a] = -reg_rows[u, a] * np.float64(X[u, a])
        for t in range(indptr[u], indptr[u + 1]):
            j = indices[t]
            d = 0.0
            for a in range(k):
                d += np.float64(Y[j, a]) * np.float64(X[u, a])
            w = np.float64(target[t]) - d
            for a in range(k):
                r[a] += w * np.float64(Y[j, a])
        acc = 0.0
        for a in range(k):
            acc += r[a] * r[a]
        out[u] = np.sqrt(acc)
    return out


def _check(indptr, indices, target, Y, reg_rows, X):
    n_rows = indptr.shape[0] - 1
    k = Y.shape[1]
    if X.shape != (n_rows, k) or X.dtype != np.float32 or not X.flags.c_contiguous:
        raise ValueError(f"X must be a contiguous float32 array of shape {(n_rows, k)}, got {X.dtype} {X.shape}")
    if target.shape != indices.shape:
        raise ValueError(f"target must align with indices (shape {indices.shape}), got {target.shape}")
    return np.ascontiguousarray(np.broadcast_to(np.asarray(reg_rows, dtype=np.float64), (n_rows, k)))


def cg_ridge_rows(indptr, indices, target, Y, reg_rows, X, cg_steps=3):
    """Warm-started CG steps on every row's ``(Σ_j y_j y_jᵀ + diag(reg_r)) x = Σ_j t_rj y_j``, in place on ``X``.

    Parameters
    ----------
    indptr, indices : the CSR structure of the rows (row ``r`` reads the rows ``indices[indptr[r]:indptr[r+1]]``
        of ``Y``).
    target : (nnz,) float32 or float64 per-entry targets ``t_rj`` aligned with ``indices``.
    Y : (n_cols, k) factors (read as float32).
    reg_rows : the ridge: a scalar, a (k,) vector or an (n_rows, k) array (diagonal per row).
    X : (n_rows, k) contiguous float32, the warm start; overwritten by the iterate after ``cg_steps`` steps.
    cg_steps : int ≥ 1.

    Returns ``X``.
    """
    reg = _check(indptr, indices, target, Y, reg_rows, X)
    if int(cg_steps) < 1:
        raise ValueError(f"cg_steps must be ≥ 1, got {cg_steps}")
    Y32 = np.ascontiguousarray(Y, dtype=np.float32)
    _cg_ridge_rows_nb(indptr, indices, target, Y32, reg, X, int(cg_steps), max(1, int(numba.get_num_threads())))
    return X


def ridge_residual_norms(indptr, indices, target, Y, reg_rows, X) -> np.ndarray:
    """Per-row float64 norm of the residual ``Σ_j (t_rj − y_jᵀx_r) y_j − reg_r ∘ x_r`` of the systems that
    :func:`cg_ridge_rows` solves (0 at the exact solution); a diagnostic for tests and benchmarks."""
    reg = _check(indptr, indices, target, Y, reg_rows, X)
    out = np.empty(indptr.shape[0] - 1)
    return _residual_norms_nb(indptr, indices, target, np.ascontiguousarray(Y), reg, X, out)
