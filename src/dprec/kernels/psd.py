"""The small symmetric eigensolver and the noisy PSD solve (DP-ALS's item solve after the reduction).

Like every dprec kernel these take pre-drawn noise and draw none themselves. The noisy item solve projects
each noisy Gram matrix onto the PSD cone; the eigendecompositions that needs come from a small symmetric
eigensolver written here (Householder + implicit QL, see below) instead of LAPACK, whose per-call overhead
dominates at these sizes (k = d + 1 ≈ 9..65). :func:`small_eigh` and :func:`psd_project` expose it for tests.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._ql_quad import replay_quad, tridiagonal_ql, tridiagonal_ql_pair, tridiagonal_ql_quad
from ._ql_steps import _FM
from .als import _DPOTRF, _chol_back_solve, _ro, run_chunks

__all__ = ["noisy_psd_solve", "psd_project", "small_eigh"]


# ------------------------------------------------------------------------------ small symmetric eigensolver
# A k×k symmetric eigendecomposition for small k (the DP-ALS item solves have k = d + 1 ≈ 9..65), written for
# numba with caller-owned scratch so that the per-item cost is arithmetic only: no LAPACK call overhead, no
# allocations, and the O(k³) loops run over contiguous rows (they vectorise).
#
#   1. Householder reduction  M = Q T Qᵀ, T tridiagonal (diagonal ``d``, coupling ``e[i]`` of i and i+1);
#   2. Qᵀ formed explicitly from the reflectors (rows of ``Zt``);
#   3. implicit-shift QL sweeps on T, each Givens rotation also applied to two rows of ``Zt``,
#      so that at the end ``Zt[i]`` is the unit eigenvector of ``M`` with eigenvalue ``d[i]`` (unsorted).
#
# Backward stable: the computed decomposition is exact for ``M + E`` with ``‖E‖ = O(ε‖M‖)`` and Zt orthogonal
# to O(ε), so the PSD projection built from it is within O(ε‖M‖) of the exact projection (the projection onto a
# convex set is 1-Lipschitz), repeated or clustered eigenvalues included.


@njit(cache=True, fastmath=_FM)
def _tridiagonalize(S, d, e, V, beta, w):
    """Householder reduction of the symmetric ``S`` (k×k, both triangles; destroyed) to tridiagonal form.

    On return ``d`` (k) holds the diagonal, ``e`` (k) the off-diagonal (``e[i]`` couples ``i`` and ``i+1``,
    ``e[k-1] = 0``); reflector ``j`` (``j < k-2``) is ``I − beta[j] v vᵀ`` with ``v = V[j, j+1:]``, acting on
    coordinates ``j+1..k-1`` (``beta[j] = 0``: identity). ``w`` (k) is scratch.
    """
    k = S.shape[0]
    for j in range(k - 2):
        lo = j + 1
        d[j] = S[j, j]
        # column j below the diagonal = row j right of it (symmetry; the row is contiguous)
        tail = 0.0
        for q in range(lo + 1, k):
            tail = max(tail, abs(S[j, q]))
        if tail == 0.0:  # already tridiagonal in this column
            e[j] = S[j, lo]
            beta[j] = 0.0
            continue
        scale = max(tail, abs(S[j, lo]))
        inv = 1.0 / scale
        ss = 0.0
        for q in range(lo, k):
            t = S[j, q] * inv
            V[j, q] = t
            ss += t * t
        x0 = V[j, lo]
        norm = np.sqrt(ss)
        alpha = -norm if x0 >= 0.0 else norm  # reflect x onto alpha·e₁ (sign chosen against cancellation)
        V[j, lo] = x0 - alpha
        bt = 1.0 / (ss - x0 * alpha)  # = 2 / (vᵀv), positive
        beta[j] = bt
        e[j] = alpha * scale
        # two-sided update of the trailing block as a symmetric rank-2 update:
        #   p = bt·S v,  w = p − (bt/2)(pᵀv) v,  S ← S − v wᵀ − w vᵀ
        # (the hot loops run over 0-based 1-d slices: that is the form LLVM vectorises without gathers)
        L = k - lo
        v = V[j, lo:]
        wt = w[lo:]
        pv = 0.0
        for r in range(L):
            row = S[lo + r, lo:]
            acc = 0.0
            for q in range(L):
                acc += row[q] * v[q]
            acc *= bt
            wt[r] = acc
            pv += acc * v[r]
        half = 0.5 * bt * pv
        for r in range(L):
            wt[r] -= half * v[r]
        for r in range(L):
            row = S[lo + r, lo:]
            vr = v[r]
            wr = wt[r]
            for q in range(L):
                row[q] -= vr * wt[q] + wr * v[q]
    if k >= 2:
        d[k - 2] = S[k - 2, k - 2]
        e[k - 2] = S[k - 2, k - 1]
    d[k - 1] = S[k - 1, k - 1]
    e[k - 1] = 0.0


@njit(cache=True, fastmath=_FM)
def _reflectors_transposed(V, beta, Zt):
    """``Zt = Qᵀ = H_{k-3} ⋯ H_1 H_0`` from the reflectors of :func:`_tridiagonalize` (k×k, overwritten)."""
    k = Zt.shape[0]
    for r in range(k):
        for q in range(k):
            Zt[r, q] = 0.0
        Zt[r, r] = 1.0
    # right-multiply by H_j for j = k-3 … 0; before step j only the block [j+2:, j+2:] differs from I,
    # so rows ≤ j are untouched by H_j (their entries in columns ≥ j+1 are zero)
    for j in range(k - 3, -1, -1):
        bt = beta[j]
        if bt == 0.0:
            continue
        lo = j + 1
        L = k - lo
        v = V[j, lo:]
        for r in range(lo, k):
            z = Zt[r, lo:]
            t = 0.0
            for q in range(L):
                t += z[q] * v[q]
            t *= bt
            for q in range(L):
                z[q] -= t * v[q]


# Per-item workspace, allocated once per chunk of items (a group's slots: four for the interleaved eigensolvers,
# LANES for the lane-wise spectral solve, see "lane-wise front and back halves" below):
# W (5, k, k) = M (the symmetric matrix), C (its projection / Cholesky factor), Zt (eigenvectors as rows),
# S (scaled copy reduced in place), V (Householder vectors); Wv (7, k) = d (eigenvalues), e (off-diagonal),
# beta (reflector coefficients), w (scratch), rhs, x, y (solve); Y (k, 2) the spectral solve's two rotated
# vectors and R (cap, 3) its QL rotations (:func:`_rotation_record`); Wi (k,) int scratch.
_M, _C, _Z, _S, _V = 0, 1, 2, 3, 4
_D, _E, _B, _W, _R, _X, _Y = 0, 1, 2, 3, 4, 5, 6


@njit(cache=True, fastmath=_FM, inline="always")
def _pow2_scale(M):
    """The power of two that scales ``M``'s largest |entry| into [0.5, 1) (exact); 0.0 for ``M = 0``, −1.0 if an
    entry is not finite."""
    k = M.shape[0]
    amax = 0.0
    finite = True
    for a in range(k):
        for q in range(k):
            v = abs(M[a, q])
            finite = finite and v < np.inf  # False for inf and NaN
            amax = max(amax, v)
    if not finite:
        return -1.0
    if amax == 0.0:
        return 0.0
    return math.ldexp(1.0, -math.frexp(amax)[1])


@njit(cache=True, fastmath=_FM)
def _scale_tridiagonalize(W, Wv):
    """Scale ``M = W[_M]`` by a power of two to max |entry| in [0.5, 1) (exact) into ``W[_S]`` and reduce that
    to tridiagonal form (``Wv[_D]``, ``Wv[_E]``; reflectors in ``W[_V]``, ``Wv[_B]``). Returns the scale; 0.0 for
    ``M = 0`` (nothing reduced); −1.0 if ``M`` has a non-finite entry (callers check first)."""
    M = W[_M]
    S = W[_S]
    k = M.shape[0]
    sc = _pow2_scale(M)
    if sc <= 0.0:
        return sc
    for a in range(k):
        for q in range(k):
            S[a, q] = M[a, q] * sc
    _tridiagonalize(S, Wv[_D], Wv[_E], W[_V], Wv[_B], Wv[_W])
    return sc


@njit(cache=True, fastmath=_FM)
def _sym_eig_prepare(W, Wv):
    """:func:`_scale_tridiagonalize` and ``Qᵀ`` formed in ``W[_Z]``. Returns the scale; 0.0 for ``M = 0`` (then
    ``d = 0``, ``Zt = I``: done); −1.0 if ``M`` has a non-finite entry (callers check first; LAPACK would
    report it)."""
    sc = _scale_tridiagonalize(W, Wv)
    if sc == 0.0:
        d = Wv[_D]
        Zt = W[_Z]
        k = d.shape[0]
        for i in range(k):
            d[i] = 0.0
            for a in range(k):
                Zt[i, a] = 0.0
            Zt[i, i] = 1.0
    elif sc > 0.0:
        _reflectors_transposed(W[_V], Wv[_B], W[_Z])
    return sc


@njit(cache=True, fastmath=_FM)
def _sym_eig_finish(W, Wv, sc, converged):
    """Undo the scaling of the eigenvalues; on non-convergence (practically unreachable) use LAPACK instead."""
    d = Wv[_D]
    Zt = W[_Z]
    k = d.shape[0]
    if converged:
        inv = 1.0 / sc
        for i in range(k):
            d[i] *= inv
    else:
        ww, Q = np.linalg.eigh(W[_M])
        for i in range(k):
            d[i] = ww[i]
            for a in range(k):
                Zt[i, a] = Q[a, i]


@njit(cache=True, fastmath=_FM)
def _sym_eig(W, Wv):
    """``M = W[_M] = Σ_i d_i z_i z_iᵀ`` with ``d = Wv[_D]`` (unsorted) and unit ``z_i = W[_Z][i]``."""
    sc = _sym_eig_prepare(W, Wv)
    if sc != 0.0:
        _sym_eig_finish(W, Wv, sc, sc > 0.0 and tridiagonal_ql(Wv[_D], Wv[_E], W[_Z]))


@njit(cache=True, fastmath=_FM)
def _sym_eig_pair(W0, Wv0, W1, Wv1):
    """:func:`_sym_eig` of two matrices, with their QL iterations interleaved."""
    sc0 = _sym_eig_prepare(W0, Wv0)
    sc1 = _sym_eig_prepare(W1, Wv1)
    if sc0 > 0.0 and sc1 > 0.0:
        ok0, ok1 = tridiagonal_ql_pair(Wv0[_D], Wv0[_E], W0[_Z], Wv1[_D], Wv1[_E], W1[_Z])
        _sym_eig_finish(W0, Wv0, sc0, ok0)
        _sym_eig_finish(W1, Wv1, sc1, ok1)
        return
    if sc0 != 0.0:
        _sym_eig_finish(W0, Wv0, sc0, sc0 > 0.0 and tridiagonal_ql(Wv0[_D], Wv0[_E], W0[_Z]))
    if sc1 != 0.0:
        _sym_eig_finish(W1, Wv1, sc1, sc1 > 0.0 and tridiagonal_ql(Wv1[_D], Wv1[_E], W1[_Z]))


@njit(cache=True, fastmath=_FM)
def _clip_project(M, d, Zt, floor, C, cv, idx):
    """``C = P(M) = Σ_i max(d_i, floor) z_i z_iᵀ`` (full k×k) from ``M = Σ_i d_i z_i z_iᵀ``.

    Uses whichever of two exact identities needs fewer rank-1 terms: the sum over the eigenpairs with a
    non-zero clipped value, or ``M + Σ_{d_i < floor} (floor − d_i) z_i z_iᵀ``. ``cv`` (k, float) and ``idx``
    (k, int) are scratch.
    """
    k = M.shape[0]
    n_keep = 0
    n_fix = 0
    for i in range(k):
        if max(d[i], floor) != 0.0:
            n_keep += 1
        if d[i] < floor:
            n_fix += 1
    from_m = n_fix < n_keep
    n = 0
    for i in range(k):
        if from_m:
            if d[i] < floor:
                idx[n] = i
                cv[n] = floor - d[i]
                n += 1
        else:
            c = max(d[i], floor)
            if c != 0.0:
                idx[n] = i
                cv[n] = c
                n += 1
    # row a of C = (M[a] or 0) + Σ_t cv_t z_t[a] z_t: full contiguous rows (vectorise better than a triangle)
    for a in range(k):
        row = C[a]
        if from_m:
            ma = M[a]
            for q in range(k):
                row[q] = ma[q]
        else:
            for q in range(k):
                row[q] = 0.0
        for t in range(n):
            z = Zt[idx[t]]
            f = cv[t] * z[a]
            for q in range(k):
                row[q] += f * z[q]


# ------------------------------------------------------------------------------ spectral ridge solve
# The ridge solve of an item that needs the projection, x = (P(M) + R)⁻¹ rhs, needs the eigenvectors only
# applied to vectors when the ridge is one value on every coordinate but at most one,
# R = r·I + δ e_p e_pᵀ (DP-ALS's item ridge: λ·ñ_j + 2σ√(d+1) on the factors, λ_c more on the bias). With
# M = Z D Zᵀ, P(M) = Z max(D, floor) Zᵀ and H = (P(M) + r I)⁻¹ = Z diag(h) Zᵀ, h_i = 1 / (max(d_i, floor) + r),
# Sherman–Morrison gives
#
#     x = H rhs − δ (e_pᵀ H rhs) / (1 + δ e_pᵀ H e_p) · H e_p
#       = Z [h ∘ y − δ (Σ_i h_i y_i q_i) / (1 + δ Σ_i h_i q_i²) · h ∘ q],   y = Zᵀ rhs, q = Zᵀ e_p.
#
# Zᵀ = G Qᵀ (Qᵀ: the Householder reflectors, G = R_n ⋯ R_1: the product of the QL's plane rotations) is applied
# to the two vectors by the reflectors and then by each rotation as the QL makes it: the QL rotates the two
# vectors instead of k-long eigenvector rows and records its rotations. Z = Q Gᵀ is applied to the one result by
# the recorded rotations, transposed, in reverse order, then the reflectors. Neither Q, G, the projection nor
# its Cholesky factor is formed: O(1) work per rotation besides its scalar recurrence, instead of O(k), so the
# QL chains of four items are interleaved (:mod:`dprec.kernels._ql_quad`; the explicit path's two). The QL
# runs on the tridiagonal in reversed coordinate order (:func:`_reverse_slot`: 5–9% fewer rotations), and for
# small k the reduction and both reflections run lane-wise over a batch of items (below).
# It is the same matrix function of M from the same backward-stable decomposition as :func:`_clip_project`
# followed by the Cholesky solve (tests compare both with the dense reference). H is positive definite and
# δ ≥ 0 in DP-ALS, so the denominator is ≥ 1; a negative δ that makes it ≤ 0, a non-positive
# ``max(d_i, floor) + r``, a ridge of another form or a QL that does not converge send the item to the explicit
# projection instead.


@njit(cache=True, fastmath=_FM, inline="always")
def _reflect(V, beta, j, y):
    """``y ← H_j y`` with the reflector ``H_j = I − beta_j v vᵀ``, ``v = V[j, j+1:]`` of :func:`_tridiagonalize`."""
    bt = beta[j]
    if bt != 0.0:
        k = y.shape[0]
        t = 0.0
        for q in range(j + 1, k):
            t += V[j, q] * y[q]
        t *= bt
        for q in range(j + 1, k):
            y[q] -= t * V[j, q]


@njit(cache=True, inline="always")
def _ridge_split(reg, j):
    """``reg_j = r·1 + δ·e_p``: returns ``(r, δ, p)``; ``p = -1``: one value everywhere (δ = 0); ``p = -2``: the
    ridge has another form (more than one coordinate off the common value)."""
    k = reg.shape[1]
    r0 = reg[j, 0]
    n_off = 0
    p = -1
    for a in range(1, k):
        if reg[j, a] != r0:
            n_off += 1
            p = a
    if n_off == 0:
        return r0, 0.0, -1
    if n_off == 1:
        return r0, reg[j, p] - r0, p
    if n_off == k - 1:  # maybe coordinate 0 is the odd one out
        r = reg[j, 1]
        for a in range(2, k):
            if reg[j, a] != r:
                return 0.0, 0.0, -2
        return r, r0 - r, 0
    return 0.0, 0.0, -2


@njit(cache=True, fastmath=_FM)
def _spectral_prepare(W, Wv, Y, p):
    """Tridiagonalise the scaled ``M = W[_M]`` and set the columns of ``Y`` (k×2) to ``Qᵀ rhs`` (from
    ``Wv[_R]``) and ``Qᵀ e_p`` (0 when ``p < 0``), the two vectors the QL then rotates. Returns the scale
    (≤ 0: no spectral solve, see :func:`_scale_tridiagonalize`)."""
    sc = _scale_tridiagonalize(W, Wv)
    if sc <= 0.0:
        return sc
    k = W.shape[1]
    y = Wv[_X]
    q = Wv[_Y]
    rhs = Wv[_R]
    for a in range(k):
        y[a] = rhs[a]
        q[a] = 0.0
    if p >= 0:
        q[p] = 1.0
    V = W[_V]
    beta = Wv[_B]
    for j in range(k - 2):  # Qᵀ = H_{k-3} ⋯ H_0: H_0 first
        _reflect(V, beta, j, y)
        _reflect(V, beta, j, q)
    for a in range(k):
        Y[a, 0] = y[a]
        Y[a, 1] = q[a]
    return sc


@njit(cache=True, fastmath=_FM)
def _spectral_weights(Wv, Y, sc, r, delta, floor):
    """From the eigenvalues (scaled by ``sc``) and ``Y = [G Qᵀ rhs, G Qᵀ e_p]`` (rotated by the QL):
    ``w = h ∘ y − coef · h ∘ q`` of the Sherman–Morrison form above into ``Wv[_X]`` (then ``x = Q Gᵀ w``).
    Returns False (nothing usable) if the spectral solve does not apply (see above)."""
    d = Wv[_D]
    y = Wv[_W]
    q = Wv[_E]  # free: the QL is done with e
    k = d.shape[0]
    inv = 1.0 / sc
    num = 0.0
    hqq = 0.0
    for i in range(k):
        a0 = Y[i, 0]
        a1 = Y[i, 1]
        lam = max(d[i] * inv, floor) + r
        if not lam > 0.0:
            return False
        h = 1.0 / lam
        num += h * a0 * a1
        hqq += h * a1 * a1
        y[i] = h * a0
        q[i] = h * a1
    den = 1.0 + delta * hqq
    if not den > 0.0:
        return False
    coef = delta * num / den
    x = Wv[_X]
    for i in range(k):
        x[i] = y[i] - coef * q[i]
    return True


@njit(cache=True, fastmath=_FM)
def _reflect_back(W, Wv, x):
    """``x ← Q x`` with ``Q = H_0 ⋯ H_{k-3}`` the item's reflectors (``H_{k-3}`` first)."""
    V = W[_V]
    beta = Wv[_B]
    for j in range(x.shape[0] - 3, -1, -1):
        _reflect(V, beta, j, x)


@njit(cache=True, fastmath=_FM)
def _load_item(j, A, b, noise_tri, noise_b, base, shift, solve, W, Wv):
    """``W[_M] = sym(A_j) + B + diag(s_j) + N_j`` and ``Wv[_R] = b_j + n_j`` (``solve``), or ``W[_M] = sym(A_j)``.
    Returns False if ``M`` has a non-finite entry."""
    M = W[_M]
    k = M.shape[0]
    finite = True
    if solve:
        rhs = Wv[_R]
        t = 0
        for a in range(k):
            rhs[a] = b[j, a] + noise_b[j, a]
            for q in range(a, k):
                # symmetrise the statistic, add the public base matrix and the mirrored upper-triangle noise
                v = 0.5 * (A[j, a, q] + A[j, q, a]) + base[a, q]
                if q == a:
                    v += shift[j, a]
                v += noise_tri[j, t]
                finite = finite and abs(v) < np.inf  # False for inf and NaN
                M[a, q] = v
                M[q, a] = v
                t += 1
    else:
        for a in range(k):
            for q in range(a, k):
                v = 0.5 * (A[j, a, q] + A[j, q, a])
                finite = finite and abs(v) < np.inf
                M[a, q] = v
                M[q, a] = v
    return finite


@njit(cache=True, fastmath=_FM)
def _chol_upper(potrf, C, ia, ch):
    """In-place Cholesky ``C = RᵀR`` of the upper triangle (row-major) by LAPACK ``dpotrf`` (row-major upper =
    column-major lower, so ``uplo='L'``); False when ``C`` is not positive definite. ``ia`` (2, int32) and
    ``ch`` (1, uint8) are scratch for the by-reference Fortran arguments."""
    ia[0] = C.shape[0]
    ch[0] = 76  # 'L'
    potrf(ch.ctypes, ia[0:].ctypes, C.ctypes, ia[0:].ctypes, ia[1:].ctypes)
    return ia[1] == 0


@njit(cache=True, fastmath=_FM)
def _chol_solve_upper(potrf, C, rhs, x, y, ia, ch):
    """``x = C⁻¹ rhs`` for the SPD ``C`` (upper triangle read, overwritten by ``R``; ``y`` scratch), by
    :func:`_chol_upper` and two triangular solves; x = 0 when ``C`` is not positive definite."""
    k = C.shape[0]
    if not _chol_upper(potrf, C, ia, ch):
        for i in range(k):
            x[i] = 0.0
        return False
    _chol_back_solve(C, rhs, x, y)
    return True


@njit(cache=True, fastmath=_FM)
def _is_pd_above(W, floor, potrf, ia, ch):
    """Exact fast path: all eigenvalues of ``M`` exceed ``floor`` iff ``M − floor·I`` has a Cholesky factor;
    then ``P(M) = M`` and ``C = M`` (upper triangle) on return. A diagonal entry ``≤ floor`` rules that out
    first, without the factorisation (Cholesky's pivot there would be ``≤ M_aa − floor ≤ 0`` too, so the answer
    is the same); most noisy Grams of DP-ALS have one (70% of them at k = 9, 99% at k = 33)."""
    M = W[_M]
    C = W[_C]
    k = M.shape[0]
    for a in range(k):
        if not M[a, a] > floor:
            return False
    for a in range(k):
        for q in range(a, k):
            C[a, q] = M[a, q]
        C[a, a] -= floor
    if not _chol_upper(potrf, C, ia, ch):
        return False
    for a in range(k):
        for q in range(a, k):
            C[a, q] = M[a, q]
    return True


@njit(cache=True, fastmath=_FM)
def _finish_item(j, reg, solve, W, Wv, out_x, out_p, potrf, ia, ch):
    """From ``C = W[_C]`` (``P(M)``, upper triangle at least): ``out_x[j] = (C + diag(reg_j))⁻¹ rhs``
    (``solve``) or ``out_p[j] = C``."""
    C = W[_C]
    k = C.shape[0]
    if solve:
        x = Wv[_X]
        for a in range(k):
            C[a, a] += reg[j, a]
        _chol_solve_upper(potrf, C, Wv[_R], x, Wv[_Y], ia, ch)
        for a in range(k):
            out_x[j, a] = x[a]
    else:
        for a in range(k):
            for q in range(a, k):
                out_p[j, a, q] = C[a, q]
                out_p[j, q, a] = C[a, q]


@njit(cache=True, fastmath=_FM)
def _explicit_item(j, floor, reg, solve, W, Wv, Wi, out_x, out_p, potrf, ia, ch):
    """One item by the explicit projection: eigendecomposition, ``C = P(M)``, then :func:`_finish_item`."""
    _sym_eig(W, Wv)
    _project_finish(j, floor, reg, solve, W, Wv, Wi, out_x, out_p, potrf, ia, ch)


@njit(cache=True, fastmath=_FM)
def _project_finish(j, floor, reg, solve, W, Wv, Wi, out_x, out_p, potrf, ia, ch):
    """``C = P(M)`` from the eigenpairs in ``W``/``Wv``, then :func:`_finish_item`."""
    _clip_project(W[_M], Wv[_D], W[_Z], floor, W[_C], Wv[_W], Wi)
    _finish_item(j, reg, solve, W, Wv, out_x, out_p, potrf, ia, ch)


# ------------------------------------------------------------------------------ lane-wise front and back halves
# For small k the spectral solve's Householder reduction and its reflections (Qᵀ on the two vectors, Q on the
# result) run lane-wise over a batch of ``LANES`` items: scratch laid out (k, k, lanes) with the items in the
# last, contiguous axis, so every loop body is one vector operation across the batch, whatever k is. The
# per-item reduction's rows are only k − 1 long, too short for vector loops to pay off at small k: lane-wise the
# reduction is 2.4× faster at k = 9 (DP-ALS's default rank 8), and the whole noisy solve per item 22% faster at
# k = 9, 9% at k = 25, equal at k = 29 and 4% slower at k = 33 (the (k, k, lanes) scratch outgrows the caches),
# where the per-item path stays (2-core Intel Xeon, AVX-512; CHANGELOG). Each lane runs the same operations as
# :func:`_tridiagonalize` in the same order of the reflectors (its sums are sequential where the per-item loops'
# are vectorised: the last bits differ). ``error_model="numpy"``: a lane with nothing to reduce divides by zero
# harmlessly (its result is then selected away) instead of raising.
#: items per lane-wise batch (the lane count of :func:`_tridiagonalize_lanes`)
LANES = 32
#: the largest k that takes the lane-wise front and back halves
LANE_MAX_K = 25


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _tridiagonalize_lanes(S, d, e, V, beta, sc):
    """:func:`_tridiagonalize` of the ``n`` matrices ``S[:, :, u]`` (S (k, k, n), destroyed) at once: ``d``,
    ``e`` (k, n), reflectors ``V[j, j+1:, u]`` with ``beta[j, u]`` (0: identity); ``sc`` (6, n) scratch. A lane
    whose column is already reduced (zero below the subdiagonal) gets ``beta = 0`` and ``v = 0``."""
    k, n = S.shape[0], S.shape[2]
    tail, inv, ss, bt, pv, acc = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5]
    for j in range(k - 2):
        lo = j + 1
        for u in range(n):
            d[j, u] = S[j, j, u]
            tail[u] = 0.0
            ss[u] = 0.0
            pv[u] = 0.0
        for q in range(lo + 1, k):
            for u in range(n):
                tail[u] = max(tail[u], abs(S[j, q, u]))
        for u in range(n):
            inv[u] = 1.0 / max(tail[u], abs(S[j, lo, u])) if tail[u] != 0.0 else 0.0
        for q in range(lo, k):
            for u in range(n):
                t = S[j, q, u] * inv[u]
                V[j, q, u] = t
                ss[u] += t * t
        for u in range(n):
            x0 = V[j, lo, u]
            norm = np.sqrt(ss[u])
            alpha = -norm if x0 >= 0.0 else norm
            V[j, lo, u] = x0 - alpha
            ok = tail[u] != 0.0
            b = 1.0 / (ss[u] - x0 * alpha)
            bt[u] = b if ok else 0.0
            beta[j, u] = bt[u]
            e[j, u] = alpha * max(tail[u], abs(S[j, lo, u])) if ok else S[j, lo, u]
        # p = bt·S v into row j of S (dead from here on), then w = p − (bt/2)(pᵀv) v, S ← S − v wᵀ − w vᵀ
        for r in range(lo, k):
            for u in range(n):
                acc[u] = 0.0
            for q in range(lo, k):
                for u in range(n):
                    acc[u] += S[r, q, u] * V[j, q, u]
            for u in range(n):
                a = acc[u] * bt[u]
                S[j, r, u] = a
                pv[u] += a * V[j, r, u]
        for u in range(n):
            pv[u] *= 0.5 * bt[u]
        for r in range(lo, k):
            for u in range(n):
                S[j, r, u] -= pv[u] * V[j, r, u]
        for r in range(lo, k):
            for q in range(lo, k):
                for u in range(n):
                    S[r, q, u] -= V[j, r, u] * S[j, q, u] + S[j, r, u] * V[j, q, u]
    for u in range(n):
        if k >= 2:
            d[k - 2, u] = S[k - 2, k - 2, u]
            e[k - 2, u] = S[k - 2, k - 1, u]
        d[k - 1, u] = S[k - 1, k - 1, u]
        e[k - 1, u] = 0.0


@njit(cache=True, fastmath=_FM)
def _reflect_lanes(V, beta, y, t, forward):
    """``y[:, u] ← Qᵀ y[:, u]`` (``forward``: ``H_0`` first) or ``Q y[:, u]`` (``H_{k-3}`` first) for every lane,
    with the reflectors of :func:`_tridiagonalize_lanes`; ``t`` (n,) scratch."""
    k, n = y.shape
    for jj in range(k - 2):
        j = jj if forward else k - 3 - jj
        for u in range(n):
            t[u] = 0.0
        for q in range(j + 1, k):
            for u in range(n):
                t[u] += V[j, q, u] * y[q, u]
        for u in range(n):
            t[u] *= beta[j, u]
        for q in range(j + 1, k):
            for u in range(n):
                y[q, u] -= t[u] * V[j, q, u]


@njit(cache=True, fastmath=_FM)
def _prepare_lanes(W, Wv, Y, Wg, cnt, LS, LV, Lk, Ls):
    """:func:`_spectral_prepare` of slots ``0..cnt−1`` lane-wise: every slot whose ridge allows the spectral solve
    (``Wg[u, 4]`` = its ``p`` > −2) is scaled as :func:`_scale_tridiagonalize` scales it into lane ``u`` of
    ``LS`` (k, k, n); all lanes are reduced at once (reflectors in ``LV``) and ``Qᵀ`` is applied to both vectors;
    ``d``, ``e`` and ``Y`` go back into each slot and the scale into ``Wg[u, 2]`` (≤ 0: no spectral solve; that
    lane is zero, so it reduces to nothing). ``Lk`` (5, k, n) holds d, e, beta and the two vectors; ``Ls``
    (6, n) is scratch."""
    k, n = LS.shape[0], LS.shape[2]
    for u in range(n):
        sc = _pow2_scale(W[u, _M]) if u < cnt and Wg[u, 4] > -2.0 else -1.0
        if sc > 0.0:
            M = W[u, _M]
            for a in range(k):
                for q in range(k):
                    LS[a, q, u] = M[a, q] * sc
        else:
            for a in range(k):
                for q in range(k):
                    LS[a, q, u] = 0.0
        if u < cnt:
            Wg[u, 2] = sc
    _tridiagonalize_lanes(LS, Lk[0], Lk[1], LV, Lk[2], Ls)
    y, qv = Lk[3], Lk[4]
    for u in range(n):
        ok = u < cnt and Wg[u, 2] > 0.0
        p = int(Wg[u, 4]) if ok else -1
        for a in range(k):
            y[a, u] = Wv[u, _R, a] if ok else 0.0
            qv[a, u] = 1.0 if a == p else 0.0
    _reflect_lanes(LV, Lk[2], y, Ls[0], True)
    _reflect_lanes(LV, Lk[2], qv, Ls[0], True)
    for u in range(cnt):  # into the slots in reversed order (see _reverse_slot)
        for a in range(k):
            Wv[u, _D, a] = Lk[0, k - 1 - a, u]
            Wv[u, _E, a] = Lk[1, k - 2 - a, u] if a < k - 1 else 0.0
            Y[u, a, 0] = y[k - 1 - a, u]
            Y[u, a, 1] = qv[k - 1 - a, u]


@njit(cache=True, fastmath=_FM)
def _reverse_slot(Wv, Y):
    """Reverse the coordinate order of a slot's tridiagonal ``(d, e)`` and of its two vectors ``Y``: the QL then
    deflates from the end the Householder reduction finished last (a QR iteration on the original order). The
    eigenvalues and the rotated vectors are the same up to the order of the coordinates, which the solve undoes
    on ``x``; on DP-ALS's noisy Grams and on random symmetric matrices it takes 5–9% fewer rotations."""
    d = Wv[_D]
    e = Wv[_E]
    k = d.shape[0]
    for a in range(k // 2):
        b = k - 1 - a
        d[a], d[b] = d[b], d[a]
        Y[a, 0], Y[b, 0] = Y[b, 0], Y[a, 0]
        Y[a, 1], Y[b, 1] = Y[b, 1], Y[a, 1]
    for a in range((k - 1) // 2):
        b = k - 2 - a
        e[a], e[b] = e[b], e[a]
    e[k - 1] = 0.0


@njit(cache=True, fastmath=_FM)
def _quad_solve(q0, cnt, floor, Wv, Y, R, Wg):
    """QL of slots ``q0..q0+3`` interleaved (:func:`dprec.kernels._ql_quad.tridiagonal_ql_quad`), then the
    spectral weights and the replay of the rotations: ``x`` in ``Wv[u, _X]`` before ``Q`` (``Wg[u, 3]`` the
    rotation count, −1 if the spectral solve does not apply: solve that slot explicitly). A slot past ``cnt`` or
    with no spectral solve (``Wg[u, 2]`` ≤ 0) is an empty lane."""
    for u in range(q0, q0 + 4):
        if not (u < cnt and Wg[u, 2] > 0.0):
            Wv[u, _E, :] = 0.0  # a lane with nothing to do: done at once
    n0, n1, n2, n3 = tridiagonal_ql_quad(
        Wv[q0, _D], Wv[q0, _E], Y[q0], R[0], Wv[q0 + 1, _D], Wv[q0 + 1, _E], Y[q0 + 1], R[1],
        Wv[q0 + 2, _D], Wv[q0 + 2, _E], Y[q0 + 2], R[2], Wv[q0 + 3, _D], Wv[q0 + 3, _E], Y[q0 + 3], R[3],
    )  # fmt: skip
    Wg[q0, 3], Wg[q0 + 1, 3], Wg[q0 + 2, 3], Wg[q0 + 3, 3] = n0, n1, n2, n3
    for u in range(q0, q0 + 4):
        ok = u < cnt and Wg[u, 2] > 0.0 and 0 <= Wg[u, 3] <= R.shape[1]
        if not (ok and _spectral_weights(Wv[u], Y[u], Wg[u, 2], Wg[u, 0], Wg[u, 1], floor)):
            Wg[u, 3] = -1.0  # replays nothing; the item takes the explicit projection
    m0, m1 = max(int(Wg[q0, 3]), 0), max(int(Wg[q0 + 1, 3]), 0)
    m2, m3 = max(int(Wg[q0 + 2, 3]), 0), max(int(Wg[q0 + 3, 3]), 0)
    replay_quad(
        Wv[q0, _X], R[0], m0, Wv[q0 + 1, _X], R[1], m1, Wv[q0 + 2, _X], R[2], m2, Wv[q0 + 3, _X], R[3], m3
    )  # fmt: skip


@njit(cache=True, fastmath=_FM, inline="always")
def _eig_group(J, cnt, floor, reg, solve, W, Wv, Y, R, Wg, Wi, LS, LV, Lk, Ls, out_x, out_p, potrf, ia, ch):
    """Items ``J[:cnt]`` (in slots 0..cnt−1; at most the slot count), all needing an eigendecomposition.
    ``solve``: the spectral ridge solve, prepared per item (:func:`_spectral_prepare`) or, for k ≤
    :data:`LANE_MAX_K`, lane-wise (:func:`_prepare_lanes`), with the QL of four slots at a time interleaved
    (:func:`_quad_solve`), then ``x = Q w`` (lane-wise or per item); the explicit projection for an item the
    spectral solve does not apply to (:func:`_explicit_item`). Otherwise the explicit projection
    ``out_p[j] = P(M_j)``, two items' QL interleaved (:func:`_sym_eig_pair`). ``Wg`` (slots, 5) holds each slot's
    ``r``, ``δ``, scale (≤ 0: no spectral solve), rotation count (< 0: solve it explicitly) and ``p``."""
    if not solve:
        for u in range(0, cnt - 1, 2):
            _sym_eig_pair(W[u], Wv[u], W[u + 1], Wv[u + 1])
            _project_finish(J[u], floor, reg, solve, W[u], Wv[u], Wi, out_x, out_p, potrf, ia, ch)
            _project_finish(J[u + 1], floor, reg, solve, W[u + 1], Wv[u + 1], Wi, out_x, out_p, potrf, ia, ch)
        if cnt % 2:
            _explicit_item(J[cnt - 1], floor, reg, solve, W[cnt - 1], Wv[cnt - 1], Wi, out_x, out_p, potrf, ia, ch)
        return
    k = out_x.shape[1]
    lanes = k <= LANE_MAX_K
    for u in range(W.shape[0]):
        Wg[u, 2] = -1.0
        Wg[u, 3] = -1.0
        if u < cnt:
            r, dl, p = _ridge_split(reg, J[u])
            Wg[u, 0], Wg[u, 1], Wg[u, 4] = r, dl, p
            if p > -2 and not lanes:
                Wg[u, 2] = _spectral_prepare(W[u], Wv[u], Y[u], p)
                if Wg[u, 2] > 0.0:
                    _reverse_slot(Wv[u], Y[u])
    if lanes:
        _prepare_lanes(W, Wv, Y, Wg, cnt, LS, LV, Lk, Ls)
    for q0 in range(0, cnt, 4):
        _quad_solve(q0, cnt, floor, Wv, Y, R, Wg)
    if lanes:  # x ← Q x for all lanes at once
        x = Lk[3]
        for u in range(LS.shape[2]):
            ok = u < cnt and Wg[u, 3] >= 0
            for a in range(k):
                x[a, u] = Wv[u, _X, k - 1 - a] if ok else 0.0  # back from the reversed order
        _reflect_lanes(LV, Lk[2], x, Ls[0], False)
        for u in range(cnt):
            if Wg[u, 3] >= 0:
                for a in range(k):
                    out_x[J[u], a] = x[a, u]
    for u in range(cnt):
        j = J[u]
        if Wg[u, 3] < 0:
            _explicit_item(j, floor, reg, solve, W[u], Wv[u], Wi, out_x, out_p, potrf, ia, ch)
        elif not lanes:
            x = Wv[u, _X]
            for a in range(k // 2):  # back from the reversed order
                x[a], x[k - 1 - a] = x[k - 1 - a], x[a]
            _reflect_back(W[u], Wv[u], x)
            for a in range(k):
                out_x[j, a] = x[a]


@njit(cache=True, nogil=True, fastmath=_FM)
def _psd_chunks_nb(c0, c1, A, b, noise_tri, noise_b, base, shift, reg, floor, solve, out_x, out_p, nchunks, potrf, cnt):
    """Every item ``j`` of chunks ``c0 ≤ c < c1`` (of ``nchunks`` equal chunks of the ``n`` items; run by
    :func:`~dprec.kernels.als.run_chunks`): ``M_j = sym(A_j) (+ B + diag(s_j) + N_j)``, ``C_j = P(M_j)``, then
    the ridge solve (``solve``) or ``out_p[j] = C_j``. Items that need an eigendecomposition are processed in
    groups (:func:`_eig_group`) of four, or of :data:`LANES` for the lane-wise spectral solve (k ≤
    :data:`LANE_MAX_K`), formed within a chunk. ``cnt[c]`` receives chunk ``c``'s number of items that needed
    one and of items with a non-finite matrix (left unsolved)."""
    n, k = A.shape[0], A.shape[1]
    step = (n + nchunks - 1) // nchunks
    lanes = solve and k <= LANE_MAX_K
    nb = LANES if lanes else 4  # slots per group (a multiple of 4)
    nl = nb if lanes else 1  # lanes of the lane-wise scratch (1: unused)
    W = np.empty((nb, 5, k, k))
    Wv = np.empty((nb, 7, k))
    Y = np.empty((nb, k, 2))
    R = np.empty((4, _rotation_record(k), 3))
    Wi = np.empty(k, dtype=np.int64)
    J = np.empty(nb, dtype=np.int64)
    Wg = np.empty((nb, 5))
    LS = np.empty((k, k, nl))
    LV = np.empty((k, k, nl))
    Lk = np.empty((5, k, nl))
    Ls = np.empty((6, nl))
    ia = np.empty(2, dtype=np.int32)
    cc = np.empty(1, dtype=np.uint8)
    for ch in range(c0, c1):
        cnt[ch, 0] = cnt[ch, 1] = 0
        m = 0  # items in slots 0..m-1 waiting for the group's eigensolver
        lo, hi = ch * step, min(n, (ch + 1) * step)
        # j = hi flushes the pending items; one call site, so that numba compiles _eig_group once
        for j in range(lo, hi + 1):
            if j < hi:
                if not _load_item(j, A, b, noise_tri, noise_b, base, shift, solve, W[m], Wv[m]):
                    cnt[ch, 1] += 1
                    continue
                if _is_pd_above(W[m], floor, potrf, ia, cc):
                    _finish_item(j, reg, solve, W[m], Wv[m], out_x, out_p, potrf, ia, cc)
                    continue
                cnt[ch, 0] += 1
                J[m] = j
                m += 1
                if m < nb:
                    continue
            elif m == 0:
                break
            _eig_group(J, m, floor, reg, solve, W, Wv, Y, R, Wg, Wi, LS, LV, Lk, Ls, out_x, out_p, potrf, ia, cc)
            m = 0


def _psd_items(A, b, noise_tri, noise_b, base, shift, reg, floor, solve, out_x, out_p):
    """:func:`_psd_chunks_nb` over all items, in parallel: the number of items that needed an
    eigendecomposition and the number with a non-finite matrix."""
    nchunks = _nchunks(A.shape[0])
    cnt = np.zeros((nchunks, 2), dtype=np.int64)
    run_chunks(_psd_chunks_nb, nchunks, A, b, noise_tri, noise_b, base, shift, reg, floor, solve, out_x, out_p,
               nchunks, _DPOTRF, cnt)  # fmt: skip
    return int(cnt[:, 0].sum()), int(cnt[:, 1].sum())


@njit(cache=True)
def _rotation_record(k):
    """Rows of a slot's QL rotation record for k×k problems. The implicit QL needs about 1.5 sweeps of at most
    k rotations per eigenvalue (1.3–1.5 k² rotations in all on DP-ALS's noisy Grams at k = 9 and 33), so
    4k² + 64 leaves room for slow convergence; an item that needs more is solved by the explicit projection."""
    return 4 * k * k + 64


@njit(cache=True, nogil=True, fastmath=_FM)
def _eigh_pairs_nb(c0, c1, A, pair, w_out, Q_out):
    """Matrices ``2c`` and ``2c + 1`` of the stack for ``c0 ≤ c < c1`` (run by :func:`run_chunks`)."""
    n, k = A.shape[0], A.shape[1]
    W = np.empty((2, 5, k, k))
    Wv = np.empty((2, 7, k))
    for j2 in range(c0, c1):
        j = 2 * j2
        cnt = 2 if j + 1 < n else 1
        for s in range(cnt):
            M = W[s, _M]
            for a in range(k):
                for q in range(k):
                    M[a, q] = 0.5 * (A[j + s, a, q] + A[j + s, q, a])
        if cnt == 2 and pair:
            _sym_eig_pair(W[0], Wv[0], W[1], Wv[1])
        else:
            for s in range(cnt):
                _sym_eig(W[s], Wv[s])
        for s in range(cnt):
            d = Wv[s, _D]
            Zt = W[s, _Z]
            order = np.argsort(d)
            for i in range(k):
                w_out[j + s, i] = d[order[i]]
                for a in range(k):
                    Q_out[j + s, a, i] = Zt[order[i], a]


#: items per chunk of the per-item kernels. The chunks are fixed by ``n`` alone, never by the thread count:
#: items are paired for the interleaved QL within a chunk, and the paired QL may round differently from the
#: single one on some CPUs (fresh compiles on AMD EPYC differ in the last bits), so chunking by thread count
#: would make an item's result depend on the number of threads.
PSD_CHUNK = 64


def _nchunks(n):
    # many more chunks than threads (n/64), handed out as threads free up (see run_chunks): on a shared machine
    # a thread that is descheduled for a while does not hold up the whole solve
    return max(1, -(-n // PSD_CHUNK))


def _c64(x):
    """``x`` as a C-contiguous float64 array, read-only (:func:`dprec.kernels.als._ro`; a copy only when the
    dtype or layout differs): every read-only input of these kernels then has one compiled type."""
    return _ro(np.ascontiguousarray(x, dtype=np.float64))


def _as_stack(A):
    A = _c64(A)
    if A.ndim not in (2, 3) or A.shape[-1] != A.shape[-2] or A.shape[-1] == 0:
        raise ValueError(f"A must be a (k, k) matrix or an (n, k, k) stack, got shape {A.shape}")
    return (A[None], True) if A.ndim == 2 else (A, False)


def small_eigh(A, paired=True):
    """Eigenvalues (ascending) and unit eigenvectors (columns) of ``sym(A) = (A + Aᵀ)/2`` by the numba small
    symmetric eigensolver that :func:`noisy_psd_solve` uses; same conventions as ``numpy.linalg.eigh`` for one
    (k, k) matrix or an (n, k, k) stack. ``paired``: consecutive matrices go through the interleaved QL."""
    S, single = _as_stack(A)
    if not np.isfinite(S).all():
        raise ValueError("A contains NaN or infinite entries")
    n, k = S.shape[0], S.shape[1]
    w = np.empty((n, k))
    Q = np.empty((n, k, k))
    run_chunks(_eigh_pairs_nb, (n + 1) // 2, S, bool(paired), w, Q)
    return (w[0], Q[0]) if single else (w, Q)


def psd_project(A, floor=0.0, return_count=False):
    """``P(sym(A))``: the eigenvalues of ``(A + Aᵀ)/2`` clipped below at ``floor`` (the projection onto
    ``{X ⪰ floor·I}``) for one (k, k) matrix or an (n, k, k) stack, through exactly the code path of
    :func:`noisy_psd_solve` (Cholesky test, else the small eigensolver). ``return_count`` also returns how
    many matrices needed the eigendecomposition (the rest were already above ``floor``)."""
    S, single = _as_stack(A)
    out = np.empty_like(S)
    dummy = np.empty((1, 1))  # unused inputs (read-only, as the solve's) and the unused output
    unused = _c64(dummy)
    cnt, bad = _psd_items(S, unused, unused, unused, unused, unused, unused, float(floor), False, dummy, out)
    if bad:
        raise ValueError("A contains NaN or infinite entries")
    res = out[0] if single else out
    return (res, int(cnt)) if return_count else res


def noisy_psd_solve(A, b, noise_tri, noise_b, reg, floor=0.0, *, base=None, shift=None):
    """``x_j = (P(sym(A_j) + B + diag(s_j) + N_j) + diag(λ_j))⁻¹ (b_j + n_j)`` for every item ``j``, in parallel.

    ``A`` (n, k, k) and ``b`` (n, k) are the reduced (exact) statistics; ``noise_tri`` (n, k(k+1)/2) holds the
    i.i.d. noise of each upper triangle (diagonal included, row-major ``a ≤ q``), mirrored into ``N_j``;
    ``noise_b`` (n, k) the noise of ``b``; ``reg`` the ridge, (n,) per item or (n, k) per item and coordinate;
    ``P`` clips eigenvalues below ``floor`` (the exact projection onto ``{X ⪰ floor·I}``, the PSD cone for
    ``floor = 0``). The projection is post-processing of the noisy release. ``base`` (k, k), default 0, and
    ``shift`` (n,) or (n, k), default 0, are public terms added before the projection (e.g. a released Gramian
    and a ridge that is to be projected with the matrix): adding them here saves a pass over the (n, k, k) stack.

    An item whose noisy matrix has all eigenvalues above ``floor`` (a Cholesky test) needs no projection and
    takes one Cholesky solve. The others need the eigendecomposition ``M_j = Z D Zᵀ`` (a small numba eigensolver:
    Householder tridiagonalisation, lane-wise over a batch of items for small k, + implicit QL, several items
    interleaved; backward stable like LAPACK, without its per-call overhead). When the ridge ``λ_j`` is one value
    ``r`` on every coordinate but at most one (``r + δ`` at coordinate ``p``; DP-ALS's item ridge), ``x_j = Z
    diag(1/(max(d_i, floor) + r)) Zᵀ rhs_j`` corrected by Sherman–Morrison for ``δ e_p e_pᵀ`` (the spectral ridge
    solve, see the section above in the source); otherwise ``P(M_j)`` is formed and solved by Cholesky. Both are the
    same function of ``M_j``.
    """
    return _noisy_psd_solve(A, b, noise_tri, noise_b, reg, floor, base=base, shift=shift)[0]


def _per_item(v, n, k):
    """A scalar, (n,) per item or (n, k) per item and coordinate, as a read-only contiguous (n, k) float64 array."""
    v = np.asarray(v, dtype=np.float64)
    return _c64(np.broadcast_to(v[:, None] if v.ndim == 1 else v, (n, k)))


def _noisy_psd_solve(A, b, noise_tri, noise_b, reg, floor=0.0, *, base=None, shift=None):
    """:func:`noisy_psd_solve` and the number of items that needed an eigendecomposition."""
    A = _c64(A)
    b = _c64(b)
    n, k = b.shape
    if A.shape != (n, k, k) or noise_tri.shape != (n, k * (k + 1) // 2) or noise_b.shape != (n, k):
        raise ValueError(
            f"shape mismatch: A {A.shape}, b {b.shape}, noise_tri {noise_tri.shape}, noise_b {noise_b.shape}"
        )
    reg = _per_item(reg, n, k)
    base = _c64(np.zeros((k, k)) if base is None else base)
    if base.shape != (k, k):
        raise ValueError(f"base must have shape {(k, k)}, got {base.shape}")
    shift = _c64(np.zeros((n, k))) if shift is None else _per_item(shift, n, k)
    out = np.empty((n, k))
    cnt, bad = _psd_items(A, b, _c64(noise_tri), _c64(noise_b), base, shift, reg, float(floor), True, out,
                          np.empty((1, 1, 1)))  # fmt: skip
    if bad:
        raise ValueError(f"{bad} noisy item matrices have NaN or infinite entries")
    return out, int(cnt)
