"""Numba kernels specific to DP-ALS: the noisy item solve after the reduction.

Like every dprec kernel these take pre-drawn noise and draw none themselves.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .als import _chol_solve

__all__ = ["noisy_psd_solve", "clipped_weighted_residuals"]


@njit(cache=True, parallel=True, fastmath=True)
def _residuals_nb(data, rows, cols, mu, row_bias, col_bias, w, bound, out):
    for t in prange(data.shape[0]):
        e = data[t] - mu - row_bias[rows[t]] - col_bias[cols[t]]
        if e > bound:
            e = bound
        elif e < -bound:
            e = -bound
        out[t] = w[t] * e


def clipped_weighted_residuals(data, rows, cols, mu, row_bias, col_bias, w, bound=np.inf):
    """``w_t · clip(r_t − μ − row_bias[rows_t] − col_bias[cols_t], −bound, bound)`` for every stored entry t.

    One fused parallel pass (the DP-ALS residual statistic's per-entry term); ``bound=inf`` does not clip.
    """
    out = np.empty(data.shape[0])
    # numba specialises on the input dtypes: no conversion copies of the (nnz,) arrays
    _residuals_nb(data, rows, cols, float(mu), np.asarray(row_bias, np.float64), np.asarray(col_bias, np.float64),
                  w, float(bound), out)
    return out


@njit(cache=True, parallel=True)
def _noisy_psd_solve_nb(A, b, noise_tri, noise_b, reg, floor, out, nchunks):
    n, k = b.shape
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        M = np.empty((k, k))
        C = np.empty((k, k))
        rhs = np.empty(k)
        x = np.empty(k)
        for j in range(c * step, min(n, (c + 1) * step)):
            t = 0
            for a in range(k):
                rhs[a] = b[j, a] + noise_b[j, a]
                for q in range(a, k):
                    # symmetrise the statistic and add the mirrored upper-triangle noise
                    v = 0.5 * (A[j, a, q] + A[j, q, a]) + noise_tri[j, t]
                    M[a, q] = v
                    M[q, a] = v
                    t += 1
            # Fast exact path: if M is positive definite (its Cholesky succeeds) then P(M) = M (floor = 0)
            # and no eigendecomposition is needed.
            projected = False
            if floor == 0.0:
                for a in range(k):
                    for q in range(k):
                        C[a, q] = M[a, q]
                projected = _chol_solve(C, rhs, x)
            if projected:
                for a in range(k):
                    for q in range(k):
                        C[a, q] = M[a, q]
            else:
                # C = P(M) = Q diag(max(w, floor)) Qᵀ, written in place (no temporaries per item)
                w, Q = np.linalg.eigh(M)
                for a in range(k):
                    w[a] = max(w[a], floor)
                for a in range(k):
                    for q in range(a, k):
                        acc = 0.0
                        for m in range(k):
                            acc += Q[a, m] * w[m] * Q[q, m]
                        C[a, q] = acc
                        C[q, a] = acc
            for a in range(k):
                C[a, a] += reg[j, a]
            _chol_solve(C, rhs, x)
            for a in range(k):
                out[j, a] = x[a]


def noisy_psd_solve(A, b, noise_tri, noise_b, reg, floor=0.0):
    """``x_j = (P(sym(A_j) + N_j) + diag(λ_j))⁻¹ (b_j + n_j)`` for every item ``j``, in parallel.

    ``A`` (n, k, k) and ``b`` (n, k) are the reduced (exact) statistics; ``noise_tri`` (n, k(k+1)/2) holds the
    i.i.d. noise of each upper triangle (diagonal included, row-major ``a ≤ q``), mirrored into ``N_j``;
    ``noise_b`` (n, k) the noise of ``b``; ``reg`` the ridge, (n,) per item or (n, k) per item and coordinate;
    ``P`` clips eigenvalues below ``floor``
    (projection onto the PSD cone for ``floor = 0``). The projection is post-processing of the noisy
    release. An item whose noisy matrix is already positive definite (a Cholesky test) needs no projection;
    the others are projected through one eigendecomposition. Then one Cholesky solve.
    """
    A = np.ascontiguousarray(A, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    n, k = b.shape
    if A.shape != (n, k, k) or noise_tri.shape != (n, k * (k + 1) // 2) or noise_b.shape != (n, k):
        raise ValueError(f"shape mismatch: A {A.shape}, b {b.shape}, noise_tri {noise_tri.shape}, noise_b {noise_b.shape}")
    reg = np.asarray(reg, dtype=np.float64)
    reg = np.ascontiguousarray(np.broadcast_to(reg[:, None] if reg.ndim == 1 else reg, (n, k)))
    out = np.empty((n, k))
    _noisy_psd_solve_nb(A, b, np.ascontiguousarray(noise_tri, dtype=np.float64), np.ascontiguousarray(noise_b, dtype=np.float64),
                        reg, float(floor), out, max(1, int(numba.get_num_threads())))
    return out
