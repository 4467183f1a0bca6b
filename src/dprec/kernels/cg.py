"""Matrix-free conjugate gradient for per-row ridge systems (explicit ALS's fast path).

For every CSR row ``r`` with stored columns ``j`` and per-entry targets ``t_rj``, :func:`cg_ridge_rows` runs
``cg_steps`` conjugate-gradient steps, warm-started from the current ``z_r = [x_r; xb_r]`` (row ``r`` of ``X``
and entry ``r`` of ``XB``, in place), on::

    (Σ_j ỹ_j ỹ_jᵀ + diag(reg_r)) z_r = Σ_j t_rj ỹ_j,      ỹ_j = [y_j; 1]

using only the products ``A p = Σ_j ỹ_j (ỹ_jᵀ p) + reg_r ∘ p`` — the Gram ``Σ_j ỹ_j ỹ_jᵀ`` is never formed, and
the constant regressor 1 (the bias) is never stored. A step costs ``4·n_r·(k+1) + O(k)`` flops for a row with
``n_r`` entries (k columns of ``Y``), against ``2·n_r·(k+1)² + (k+1)³/3`` for the Gram and Cholesky of the exact
solve.

Explicit biased ALS uses it on both sides (see :mod:`dprec.models._biased_als`): the user step with ``Y = V``,
``t = r − μ − c_j``, ``reg = [λ_u (n_u + 1), …, λ_b]`` and unknowns ``[u_u; b_u]``; the item step with ``Y = U``,
``t = r − μ − b_u − c_j``, ``reg = [λ n_j + 10⁻⁶, …, λ n_j + 10⁻⁶ + λ_c]`` and unknowns ``[v_j; Δc_j]`` (warm start
``[v_j; 0]``).

Arithmetic is float32 (as implicit ALS's CG, :func:`dprec.kernels.als.cg_rows`); each row is computed by
one thread in a fixed order, so results do not depend on the thread count or scheduling (bit-identical run
to run). A row's iteration stops early when its squared residual norm falls below ``1e-20`` or the
curvature ``pᵀAp`` is not positive.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .als import _ro, balanced_bounds, run_chunks

__all__ = ["cg_ridge_rows", "ridge_residual_norms"]


#: Floats between any two of the kernel's scratch vectors (and after the gathered rows): LLVM's vectorised loops
#: check at run time that their arrays are at least (vector width × interleave) apart, at most 16 × 8 floats here.
_GAP = 128


@njit(nogil=True, cache=True, fastmath=True)
def _cg_ridge_rows_nb(c0, c1, bounds, indptr, indices, target, Y, reg_rows, X, XB, cg_steps):
    """In place on ``X`` (n_rows, k) and ``XB`` (n_rows,) float32: ``cg_steps`` warm-started CG steps per row on
    the system of ``[x; x_b]`` with regressors ``[y_j; 1]`` (module docstring). The constant column is implicit:
    the k-vectors stay 64-byte multiples for k = 64 and ``Y`` needs no augmented copy. A serial kernel over the
    row ranges ``bounds[c]..bounds[c+1]`` of the chunks ``c0 ≤ c < c1`` (:func:`~dprec.kernels.als.run_chunks`)."""
    k = Y.shape[1]
    for c in range(c0, c1):
        lo, hi = bounds[c], bounds[c + 1]
        mx = 1
        for u in range(lo, hi):
            mx = max(mx, indptr[u + 1] - indptr[u])
        # One allocation with a fixed layout, rows padded to 16 floats (64 bytes): the gathered vectors ``Yb`` (one
        # random pass, reused by every step), then x, r, p, Ap, lam, each ``_GAP`` floats from the last. LLVM's
        # vectorised loops over two of these arrays check at run time that they are far enough apart and otherwise
        # take a scalar loop that sums in another order. With separate allocations the outcome depended on where
        # the heap put them; with the vectors in adjacent rows (64 bytes apart at k = 16) it failed for every row,
        # and between the longest row's last gathered vectors and x, so the result followed which row was the
        # longest of its chunk, and so the thread count. With the gaps every check passes: the vector path for
        # every row, bit-identical results for any chunking (tests/models/test_als.py).
        kp = (k + 15) // 16 * 16
        g = (_GAP + kp - 1) // kp  # rows per gap
        work = np.empty((mx + 6 * g, kp), dtype=np.float32)
        Yb = work[:mx, :k]
        x = work[mx + g, :k]
        r = work[mx + 2 * g, :k]
        p = work[mx + 3 * g, :k]
        Ap = work[mx + 4 * g, :k]
        lam = work[mx + 5 * g, :k]
        for u in range(lo, hi):
            s, e = indptr[u], indptr[u + 1]
            n = e - s
            for a in range(k):
                x[a] = X[u, a]
                lam[a] = np.float32(reg_rows[u, a])
                r[a] = -lam[a] * x[a]
            xb = XB[u]
            lamb = np.float32(reg_rows[u, k])
            rb = -lamb * xb
            # r = b − A x = Σ_j (t_j − y_j·x − x_b) [y_j; 1] − reg ∘ [x; x_b]
            for t in range(n):
                j = indices[s + t]
                d = xb
                for a in range(k):
                    v = np.float32(Y[j, a])
                    Yb[t, a] = v
                    d += v * x[a]
                w = np.float32(target[s + t]) - d
                rb += w
                for a in range(k):
                    r[a] += w * Yb[t, a]
            rsold = rb * rb
            for a in range(k):
                p[a] = r[a]
                rsold += r[a] * r[a]
            pb = rb
            if rsold < 1e-20:
                continue
            for _ in range(cg_steps):
                for a in range(k):
                    Ap[a] = lam[a] * p[a]
                Apb = lamb * pb
                for t in range(n):
                    d = pb
                    for a in range(k):
                        d += Yb[t, a] * p[a]
                    Apb += d
                    for a in range(k):
                        Ap[a] += d * Yb[t, a]
                pAp = pb * Apb
                for a in range(k):
                    pAp += p[a] * Ap[a]
                if not pAp > 0:
                    break
                alpha = rsold / pAp
                xb += alpha * pb
                rb -= alpha * Apb
                rsnew = rb * rb
                for a in range(k):
                    x[a] += alpha * p[a]
                    r[a] -= alpha * Ap[a]
                    rsnew += r[a] * r[a]
                if rsnew < 1e-20:
                    break
                beta = rsnew / rsold
                for a in range(k):
                    p[a] = r[a] + beta * p[a]
                pb = rb + beta * pb
                rsold = rsnew
            for a in range(k):
                X[u, a] = x[a]
            XB[u] = xb


@njit(cache=True, parallel=True)
def _residual_norms_nb(indptr, indices, target, Y, reg_rows, X, XB, out):
    """``out_r = ‖Σ_j (t_rj − y_j·x_r − x_b) [y_j; 1] − reg_r ∘ [x_r; x_b]‖₂`` per row, in float64."""
    n_rows = indptr.shape[0] - 1
    k = Y.shape[1]
    for u in prange(n_rows):
        r = np.empty(k + 1)
        xb = np.float64(XB[u])
        for a in range(k):
            r[a] = -reg_rows[u, a] * np.float64(X[u, a])
        r[k] = -reg_rows[u, k] * xb
        for t in range(indptr[u], indptr[u + 1]):
            j = indices[t]
            d = xb
            for a in range(k):
                d += np.float64(Y[j, a]) * np.float64(X[u, a])
            w = np.float64(target[t]) - d
            for a in range(k):
                r[a] += w * np.float64(Y[j, a])
            r[k] += w
        acc = 0.0
        for a in range(k + 1):
            acc += r[a] * r[a]
        out[u] = np.sqrt(acc)
    return out


def _check(indptr, indices, target, Y, reg_rows, X, XB):
    n_rows = indptr.shape[0] - 1
    k = Y.shape[1]
    if X.shape != (n_rows, k) or X.dtype != np.float32 or not X.flags.c_contiguous:
        raise ValueError(f"X must be a contiguous float32 array of shape {(n_rows, k)}, got {X.dtype} {X.shape}")
    if XB.shape != (n_rows,) or XB.dtype != np.float32:
        raise ValueError(f"XB must be a float32 array of shape {(n_rows,)}, got {XB.dtype} {XB.shape}")
    if target.shape != indices.shape:
        raise ValueError(f"target must align with indices (shape {indices.shape}), got {target.shape}")
    return np.ascontiguousarray(np.broadcast_to(np.asarray(reg_rows, dtype=np.float64), (n_rows, k + 1)))


def cg_ridge_rows(indptr, indices, target, Y, reg_rows, X, XB, cg_steps=3):
    """Warm-started CG steps on every row's ``(Σ_j ỹ_j ỹ_jᵀ + diag(reg_r)) [x_r; xb_r] = Σ_j t_rj ỹ_j``,
    ``ỹ_j = [y_j; 1]``, in place on ``X`` and ``XB``.

    Parameters
    ----------
    indptr, indices : the CSR structure of the rows (row ``r`` reads the rows ``indices[indptr[r]:indptr[r+1]]``
        of ``Y``).
    target : (nnz,) float32 or float64 per-entry targets ``t_rj`` aligned with ``indices``.
    Y : (n_cols, k) factors (read as float32); the constant last regressor 1 is implicit.
    reg_rows : the ridge on ``[x; xb]``: a scalar, a (k+1,) vector or an (n_rows, k+1) array (diagonal per row).
    X : (n_rows, k) contiguous float32 and ``XB`` : (n_rows,) float32, the warm start of ``[x; xb]``;
        overwritten by the iterate after ``cg_steps`` steps.
    cg_steps : int ≥ 1.

    Returns ``(X, XB)``.
    """
    reg = _check(indptr, indices, target, Y, reg_rows, X, XB)
    if int(cg_steps) < 1:
        raise ValueError(f"cg_steps must be ≥ 1, got {cg_steps}")
    Y32 = np.ascontiguousarray(Y, dtype=np.float32)
    nchunks = 16 * max(1, int(numba.get_num_threads()))  # handed out as threads free up
    bounds = balanced_bounds(_ro(indptr), nchunks, float(Y32.shape[1]) / 4.0 + 4.0)
    run_chunks(_cg_ridge_rows_nb, nchunks, bounds, _ro(indptr), _ro(indices), target, Y32, reg, X, XB, int(cg_steps))
    return X, XB


def ridge_residual_norms(indptr, indices, target, Y, reg_rows, X, XB) -> np.ndarray:
    """Per-row float64 norm of the residual ``Σ_j (t_rj − ỹ_jᵀ[x_r; xb_r]) ỹ_j − reg_r ∘ [x_r; xb_r]`` of the
    systems that :func:`cg_ridge_rows` solves (0 at the exact solution); a diagnostic for tests."""
    reg = _check(indptr, indices, target, Y, reg_rows, X, XB)
    out = np.empty(indptr.shape[0] - 1)
    return _residual_norms_nb(indptr, indices, target, np.ascontiguousarray(Y), reg, X, XB, out)
