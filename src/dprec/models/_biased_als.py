"""The biased explicit-ALS engine shared by ``ALS(feedback="explicit")`` and ``DPALS``.

This docstring is the one description of the fit algorithm of biased ALS and of DP-ALS's factor part; the
models' docstrings link here.

One algorithm, two item-side solves: non-private explicit ALS is DP-ALS with the exact solve, and DP-ALS is
this engine with a noisy item solve, contribution weights and clipping plugged in. ``DPALS(epsilon=math.inf)``
therefore *is* ``ALS(feedback="explicit")`` for corresponding hyperparameters (see :class:`dprec.models.ALS`).

Model ``r̂_ui = μ + b_u + c_j + u_uᵀ v_j`` (μ, c, V: the item side; b_u, u_u: per user). Given the global mean
μ, initial item biases c⁰ and initial item factors V⁰ (chosen by the caller), :func:`run` performs::

    [U, b] ← user_solve(V, c)                                   (exact, every user)
    repeat T times:
        e_uj ← w_uj · clip(r_uj − μ − b_u − c_j, −B, B)            (B = ∞, w = 1 when non-private)
        ũ_u  ← [u_u · min(1, Γ/‖u_u‖); 1]                          (clip_rows; no clipping when non-private)
        A_j = Σ_u w_uj ũ_u ũ_uᵀ,  β_j = Σ_u e_uj ũ_u               (kernels.als.item_stats)
        [v_j; Δc_j] ← solve(A, β)                                  (the item hook)
        c_j ← c_j + Δc_j ; rows outside ``mask`` → 0
        [U, b] ← user_solve(V, c)

User solve (exact, local to each user, ``n_u`` = the user's number of ratings)::

    [u_u; b_u] = argmin Σ_j (r_uj − μ − c_j − b_u − u_uᵀ v_j)² + λ_u (n_u + 1) ‖u_u‖² + λ_b b_u²

Exact item solve (:func:`exact_item_solver`; the non-private hook)::

    [v_j; Δc_j] = argmin Σ_u (r_uj − μ − b_u − c_j − Δc_j − u_uᵀ v_j)² + (λ n_j + 10⁻⁶) ‖v_j‖² + λ_c Δc_j²

The item step refines the item bias by a *correction* Δc_j with its own ridge λ_c, i.e. a proximal step
anchored at the previous c_j; no other penalty on c. Every half-step (exact user solve, exact proximal item
solve) therefore never increases the objective::

    F = Σ_(u,j)∈Ω (r_uj − r̂_uj)² + Σ_u [λ_u (n_u + 1) ‖u_u‖² + λ_b b_u²] + Σ_j (λ n_j + 10⁻⁶) ‖v_j‖²

The sequence is (user, item, user, …, item, user): DP-ALS's iteration (user step, statistics, noisy solve;
then a final user solve).

Conjugate-gradient mode (``run(..., cg=cg_solver(...))``; non-private explicit ALS's ``solver="cg"`` only —
DP-ALS's item solve stays exact, since the noisy Gram must be formed): the same sweeps, each half-step replaced
by ``s`` warm-started CG steps per row on the *same* systems, with the bias folded in as a constant column —
users ``(Σ_j ỹ_j ỹ_jᵀ + diag(λ_u (n_u + 1), …, λ_b)) [u_u; b_u] = Σ_j (r_uj − μ − c_j) ỹ_j`` with ``ỹ_j = [v_j; 1]``,
items ``(Σ_u ũ_u ũ_uᵀ + diag(λ n_j + 10⁻⁶, …, + λ_c)) [v_j; Δc_j] = Σ_u (r_uj − μ − b_u − c_j) ũ_u`` with
``ũ_u = [u_u; 1]`` — by the matrix-free products of :func:`dprec.kernels.cg.cg_ridge_rows` (no Gram is formed).
Warm starts: users from 0 before the first sweep, then from their previous ``[u_u; b_u]``; items from
``[v_j; 0]``. Each CG step lowers the half-step's quadratic from its warm start, which is the current state, so
``F`` still never increases (up to float32 rounding); the fixed point is the exact one.

Numerics (``dtype`` is float32 by default; float64 is accepted everywhere ``dtype`` appears):

* float32 (``dtype``): the *stored* factors the kernels read — the item vectors ``[V, 1]`` entering the user
  kernels, the user solve's output ``[U, b]``, and the (clipped) user vectors ``ũ = [u; 1]`` entering the item
  statistics. The user step forms its per-user Gram matrices with ``dtype`` BLAS (the user solve is exact and
  local to the user; nothing in it is released) and factors them by Cholesky in float64.
* float64: everything the privacy analysis bounds or releases. The residuals ``e = w · clip(r − μ − b_u − c_j,
  −B, B)`` are computed, clipped and weighted in float64 (the contribution weights ``w`` are float64 and enter
  unrounded); the item statistics ``A_j = Σ w ũũᵀ`` and ``β_j = Σ e ũ`` read the float32 ``ũ`` and ``w``, ``e``
  and form every product and sum in float64 (:func:`dprec.kernels.als.item_stats`), so they are the exact
  sums of the vectors actually used up to float64 rounding; the item solve (exact Cholesky, or DP-ALS's
  noisy PSD solve, which receives these float64 ``A``, ``β``), the item factors and the item biases.

Why the clipping bound holds in that arithmetic: the sensitivity of ``(A, β)`` assumes ``‖ũ[:d]‖₂ ≤ Γ`` and
``|e/w| ≤ B``. :func:`clip_rows` clips in float64 with a relative margin that covers the rounding of the
float64 norm and of the cast to ``dtype``, then *verifies the cast values themselves* with a rigorous float64
upper bound on their exact squared norm and shrinks again any row that fails, so every row that enters
the statistics has exact norm ≤ Γ. The residual clip is a comparison and a select in float64 (exact), so
``|clip(·)| ≤ B`` holds exactly before the weight is applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from numba import njit

from ..kernels import als as K
from ..kernels import cg as KCG
from ._blocks import is_blocked
from .global_effects import nonprivate_biases

__all__ = [
    "ITEM_RIDGE_JITTER",
    "BiasedALSResult",
    "CGSolve",
    "UserSolver",
    "cg_solver",
    "clip_rows",
    "exact_item_solver",
    "global_effects",
    "item_major",
    "item_major_order",
    "item_major_weights",
    "item_rating_counts",
    "item_ridge",
    "item_statistics",
    "random_item_factors",
    "run",
    "user_ridge",
    "user_solve",
]

#: added to the item factors' ridge λ·n_j of the exact solve, so that unrated items stay well posed at λ = 0
ITEM_RIDGE_JITTER = 1e-6


class BiasedALSResult(NamedTuple):
    """What :func:`run` returns: the item side (float64) and the final users' solve against it."""

    item_factors: np.ndarray  # (n_items, d) float64
    item_bias: np.ndarray  # (n_items,) float64
    user_factors: np.ndarray  # (n_users, d) in the engine's dtype
    user_bias: np.ndarray  # (n_users,) in the engine's dtype


# ---------------------------------------------------------------------------------------------- initialisation
def random_item_factors(g: np.random.Generator, n_items: int, d: int, init_scale: float) -> np.ndarray:
    """Data-independent initial item factors: i.i.d. ``N(0, (init_scale/√d)²)``, float64 (one draw of
    ``n_items × d`` standard normals from ``g``). Both models draw them from the *third* of ``rng.spawn(3)``
    (DP-ALS's stream layout: selection/count noise, bias noise, factors)."""
    return (g.standard_normal((n_items, d)) / math.sqrt(max(d, 1)) * init_scale).astype(np.float64)


def global_effects(X: sp.csr_matrix, prior_var: float, bias_reg: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Non-private global effects ``(μ, c⁰, n_j)``: the ε = ∞ estimator of the DP global effects.

    μ = mean rating; user offsets ``β_u = Σ_j (r_uj − μ)/(n_u + λ_b)``; item biases
    ``c⁰_j = Σ_u (r_uj − μ − β_u)/(n_j + 1/τ²)`` (τ² = ``prior_var``); ``n_j`` the item rating counts.
    """
    if is_blocked(X):  # a distributed backend's user blocks (dprec.distributed): the same sums, per block
        return X.global_effects(prior_var, bias_reg)
    return nonprivate_biases(X, prior_var, bias_reg)


def item_rating_counts(X: sp.csr_matrix) -> np.ndarray:
    """``n_j``, the number of ratings of each item (float64); additive over blocks of users."""
    return np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)


def item_major(X: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """The item-major CSR of ``X`` (user indices sorted per item) and the item of each of its entries.

    The item of an entry is stored in the CSR's index dtype (int32 whenever the sizes allow): one (nnz,) array
    of half the int64 size.
    """
    Xt = X.T.tocsr()  # scipy's CSR → CSC pass is a stable counting sort: users stay sorted within each item
    Xt.sort_indices()  # a no-op check on that output; kept for matrices with unsorted indices
    item_t = np.repeat(np.arange(X.shape[1], dtype=Xt.indices.dtype), np.diff(Xt.indptr))
    return Xt, item_t


@njit(cache=True)
def _item_major_scatter_nb(indptr, indices, n_items, values, out):
    """``out[t']`` = ``values[t]`` for the user-major entry ``t`` that is the ``t'``-th entry of the item-major
    CSR: a stable counting sort by item (the entry order of scipy's CSR → CSC conversion), in one sequential
    read of ``values``."""
    nxt = np.zeros(n_items + 1, dtype=np.int64)
    for t in range(indices.shape[0]):
        nxt[indices[t] + 1] += 1
    for j in range(n_items):
        nxt[j + 1] += nxt[j]
    for u in range(indptr.shape[0] - 1):
        for t in range(indptr[u], indptr[u + 1]):
            j = indices[t]
            out[nxt[j]] = values[t]
            nxt[j] += 1


def item_major_order(X: sp.csr_matrix) -> np.ndarray:
    """The permutation that takes per-entry arrays aligned with ``X.data`` (user-major, sorted indices) to the
    entry order of :func:`item_major`: ``item_major(X)[0].data == X.data[item_major_order(X)]``.

    int32 when ``nnz < 2³¹`` (else int64); one O(nnz) pass, no copy of the matrix.
    """
    dtype = np.int32 if X.nnz < 2**31 else np.int64
    perm = np.empty(X.nnz, dtype=dtype)
    _item_major_scatter_nb(X.indptr, X.indices, X.shape[1], np.arange(X.nnz, dtype=dtype), perm)
    return perm


# ---------------------------------------------------------------------------------------------- ridges
def user_ridge(n_ratings: np.ndarray, d: int, user_reg: float, bias_reg: float) -> np.ndarray:
    """Per-user ridge (n, d+1): ``λ_u (n_u + 1)`` on the factors (weighted-λ, Zhou et al. 2008), ``λ_b`` on the bias."""
    n_ratings = np.asarray(n_ratings)
    reg = np.empty((len(n_ratings), d + 1))
    reg[:, :d] = user_reg * (n_ratings[:, None] + 1.0)
    reg[:, d] = bias_reg
    return reg


def item_ridge(base: np.ndarray, d: int, item_bias_reg: float) -> np.ndarray:
    """Per-item ridge (n_items, d+1): ``base_j`` on every coordinate plus ``λ_c`` on the bias correction."""
    reg = np.repeat(np.asarray(base, dtype=np.float64)[:, None], d + 1, axis=1)
    reg[:, d] += item_bias_reg
    return reg


def exact_item_solver(counts: np.ndarray, d: int, regularization: float, item_bias_reg: float) -> Callable:
    """The non-private item hook: ``[v_j; Δc_j] = (A_j + diag(λ n_j + 10⁻⁶, …, λ n_j + 10⁻⁶ + λ_c))⁻¹ β_j``.

    ``counts`` are the item rating counts (DP-ALS passes its DP counts, floored at 0). Cholesky per item,
    float64; the returned solver reuses one output buffer across calls.
    """
    reg = item_ridge(regularization * np.asarray(counts, dtype=np.float64) + ITEM_RIDGE_JITTER, d, item_bias_reg)
    buf: list = []

    def solve(A, b):
        if not buf:
            buf.append(np.empty(b.shape, dtype=np.float64))
        x, _ = K.solve_batched(A, b, reg, dtype=np.float64, out=buf[0])
        return x

    return solve


class CGSolve(NamedTuple):
    """The non-private conjugate-gradient mode of :func:`run` (both half-steps; see :func:`cg_solver`)."""

    steps: int  # CG steps per row and half-step
    item_reg: np.ndarray  # (n_items, d+1) float64 ridge of the item step, the exact solve's


def cg_solver(counts: np.ndarray, d: int, regularization: float, item_bias_reg: float, steps: int) -> CGSolve:
    """The CG counterpart of :func:`exact_item_solver`: the same ridge ``diag(λ n_j + 10⁻⁶, …, + λ_c)``, solved
    by ``steps`` warm-started CG steps per item (and per user) instead of exactly. Non-private ALS only."""
    reg = item_ridge(regularization * np.asarray(counts, dtype=np.float64) + ITEM_RIDGE_JITTER, d, item_bias_reg)
    return CGSolve(int(steps), reg)


# ---------------------------------------------------------------------------------------------- user step
class UserSolver:
    """Every user's exact ``[u_u; b_u]`` against ``(V, c)``; buffers and ridges prepared once per matrix."""

    def __init__(self, X: sp.csr_matrix, d: int, user_reg: float, bias_reg: float, dtype=np.float32):
        self.X, self.d, self.dtype = X, d, np.dtype(dtype)
        self.ones = np.ones(X.nnz, dtype=self.dtype)
        self.target = np.empty(X.nnz, dtype=self.dtype)
        self.zeros_c = np.zeros(X.shape[1])
        self.reg = user_ridge(np.diff(X.indptr), d, user_reg, bias_reg)
        self.G0 = np.zeros((d + 1, d + 1))

    def __call__(self, mu: float, V: np.ndarray, c: np.ndarray) -> np.ndarray:
        """``[U, b]`` as one (n_users, d+1) array of the engine's dtype (a fresh array per call)."""
        X, d = self.X, self.d
        Y = np.empty((V.shape[0], d + 1), dtype=self.dtype)
        Y[:, :d] = V
        Y[:, d] = 1.0
        # r − μ − c_j: one fused parallel pass (float64 arithmetic), rounded into the reused kernel-dtype buffer
        K.clipped_weighted_residuals(X.data, X.indices, X.indices, mu, c, self.zeros_c, self.ones, out=self.target)
        out = np.empty((X.shape[0], d + 1), dtype=self.dtype)
        K.solve_rows(X.indptr, X.indices, self.ones, self.target, Y, self.G0, self.reg, out)
        return out

    def cg(self, mu: float, V: np.ndarray, c: np.ndarray, U: np.ndarray, b: np.ndarray, steps: int) -> None:
        """``steps`` CG steps on the same per-user systems, warm-started from (and in place on) the float32 user
        factors ``U`` (n_users, d) and biases ``b`` (:func:`dprec.kernels.cg.cg_ridge_rows`; ``V`` float32)."""
        X = self.X
        K.clipped_weighted_residuals(X.data, X.indices, X.indices, mu, c, self.zeros_c, self.ones, out=self.target)
        KCG.cg_ridge_rows(X.indptr, X.indices, self.target, V, self.reg, U, b, steps)


def user_solve(
    X: sp.csr_matrix,
    V: np.ndarray,
    mu: float,
    item_bias: np.ndarray,
    user_reg: float,
    bias_reg: float,
    dtype=np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``(u_u, b_u)`` from ``(μ, c, V)`` and the user's own ratings (exact; see the module docstring).

    Returns ``(U, b)`` in ``dtype`` (float32 by default: the kernel precision). On a distributed backend's user
    blocks the solves stay with the blocks and ``(U, b)`` have no rows (the client holds no per-user value).
    """
    if is_blocked(X):
        return X.user_solve(V, mu, item_bias, user_reg, bias_reg, dtype)
    out = UserSolver(X, V.shape[1], user_reg, bias_reg, dtype)(mu, V, item_bias)
    d = V.shape[1]
    return out[:, :d], out[:, d]


# ---------------------------------------------------------------------------------------------- clipping
_EPS64 = float(np.finfo(np.float64).eps)


def _norm_sq_upper(Y: np.ndarray) -> np.ndarray:
    """An upper bound on the exact ``‖y‖²`` of every row of ``Y`` (float32 or float64 entries), in float64.

    The float64 sum of squares of ``k`` terms is within a relative ``k·eps64`` of the exact value (each square
    is exact for float32 entries and within ``eps64/2`` for float64 ones; ``k`` rounded additions), so
    ``s·(1 + (k + 2)·eps64)`` bounds it from above (the last factor's own rounding included in the margin).
    """
    Y64 = Y.astype(np.float64, copy=False)
    s = np.einsum("ij,ij->i", Y64, Y64)
    return s * (1.0 + (Y.shape[1] + 2) * _EPS64)


def clip_rows(U: np.ndarray, clip_norm: float, out: np.ndarray) -> np.ndarray:
    """``out ← u · min(1, Γ/‖u‖)`` per row, with ``‖out_row‖₂ ≤ Γ`` holding *exactly* for the stored values.

    ``out`` (same shape as ``U``) has the kernel dtype (float32 or float64), and its values are what enters
    the sensitivity-bounded statistics, so the bound is checked on them and not on the float64 intermediate:

    1. in float64, rows with ``‖u‖ > Γ`` are scaled by ``Γ/‖u‖ · (1 − m)`` with the margin
       ``m = 2·eps(dtype) + 8(k + 2)·eps64``, which covers the rounding of the float64 norm and scaling and of
       the cast to ``dtype`` (≤ eps/2 relative per entry); rows with ``‖u‖ ≤ Γ`` are copied unchanged;
    2. the cast rows are verified by a rigorous float64 upper bound of their exact squared norm
       (:func:`_norm_sq_upper`) against ``Γ²·(1 − 4·eps64)`` (a threshold below the rounded ``Γ²``); any row
       that fails (in practice only an unclipped row within rounding of Γ) is shrunk by ``1 − m`` again,
       until none fails.

    Unclipped rows far from the bound keep their exact values. Returns ``out``.
    """
    gamma = float(clip_norm)
    if not gamma > 0.0:
        raise ValueError(f"clip_norm must be positive, got {clip_norm}")
    k = U.shape[1]
    margin = 2.0 * float(np.finfo(out.dtype).eps) + 8.0 * (k + 2) * _EPS64
    limit = gamma * gamma * (1.0 - 4.0 * _EPS64)
    if out.shape == U.shape and out.dtype in (np.float32, np.float64) and U.dtype in (np.float32, np.float64):
        # steps 1–2 fused per row, in parallel (the same float64 operations; the verification bound holds for
        # any summation order)
        return K.clip_rows_into(U, gamma, margin, limit, out)
    U64 = U.astype(np.float64, copy=False)
    norms = np.sqrt(np.einsum("ij,ij->i", U64, U64))
    big = norms > gamma
    scale = np.ones(len(norms))
    scale[big] = gamma / norms[big] * (1.0 - margin)
    np.multiply(U64, scale[:, None], out=out, casting="same_kind")
    bad = np.flatnonzero(_norm_sq_upper(out) > limit)
    while bad.size:
        out[bad] = (out[bad].astype(np.float64) * (1.0 - margin)).astype(out.dtype)
        bad = bad[_norm_sq_upper(out[bad]) > limit]
    return out


# ---------------------------------------------------------------------------------------------- item statistics
def item_major_weights(X: sp.csr_matrix, w: np.ndarray) -> np.ndarray:
    """Per-entry weights aligned with ``X.data`` (user-major) re-ordered to the item-major CSR of :func:`item_major`.

    One stable counting sort by item, scattering ``w`` in place of a transposed copy of the matrix (the values
    are moved, never rounded: ``w``'s dtype is kept).
    """
    if not X.has_sorted_indices:
        X = X.sorted_indices()
    w = np.ascontiguousarray(w)
    if w.shape != (X.nnz,):
        raise ValueError(f"item_major_weights: w must have one entry per rating ({X.nnz}), got shape {w.shape}")
    out = np.empty_like(w)
    _item_major_scatter_nb(X.indptr, X.indices, X.shape[1], w, out)
    return out


def item_statistics(
    Xt: sp.csr_matrix,
    item_t: np.ndarray,
    mu: float,
    Ub: np.ndarray,
    c: np.ndarray,
    w_t: np.ndarray,
    *,
    residual_bound: float = np.inf,
    clip_norm: float | None = None,
    dtype=np.float32,
    out=None,
    wresid=None,
) -> tuple[np.ndarray, np.ndarray]:
    """One item step's statistics ``A_j = Σ_u w_uj ũ_u ũ_uᵀ``, ``β_j = Σ_u w_uj clip(r_uj − μ − b_u − c_j, ±B) ũ_u``.

    ``Ub`` (n_users, d+1) holds ``[u_u; b_u]`` from the user solve; ``ũ_u = [clip_rows(u_u, Γ); 1]`` (no clipping
    when ``clip_norm`` is None). This is the statistic DP-ALS releases
    (:class:`dprec.models.releases.FactorStats`) and the one the engine loop computes. Returns float64 ``(A, β)``
    (in ``out`` when given).
    """
    d = Ub.shape[1] - 1
    if wresid is None:
        wresid = np.empty(Xt.nnz)
    K.clipped_weighted_residuals(Xt.data, Xt.indices, item_t, mu, Ub[:, d], c, w_t, residual_bound, out=wresid)
    if clip_norm is not None:
        Ua = np.empty((Ub.shape[0], d + 1), dtype=dtype)
        clip_rows(Ub[:, :d], clip_norm, out=Ua[:, :d])
    else:
        Ua = Ub  # reuse the user solve's array: its bias column becomes the constant 1
    Ua[:, d] = 1.0
    return K.item_stats(Xt.indptr, Xt.indices, w_t, wresid, Ua, out=out)


# ---------------------------------------------------------------------------------------------- the loop
def run(
    X: sp.csr_matrix,
    V: np.ndarray,
    *,
    mu: float,
    item_bias: np.ndarray,
    iterations: int,
    user_reg: float,
    bias_reg: float,
    solve: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    weights: np.ndarray | None = None,
    residual_bound: float = np.inf,
    clip_norm: float | None = None,
    mask: np.ndarray | None = None,
    dtype=np.float32,
    item_major_csr: tuple[sp.csr_matrix, np.ndarray] | None = None,
    callback: Callable[[int, BiasedALSResult], None] | None = None,
    cg: CGSolve | None = None,
) -> BiasedALSResult:
    """Run ``iterations`` (item step, user step) sweeps after an initial user solve (module docstring).

    Parameters
    ----------
    X : user×item CSR of the ratings (sorted indices).
    V : (n_items, d) initial item factors (not modified).
    mu, item_bias : the global mean and the initial item biases c⁰ (not modified).
    iterations : T; with 0 only the user solve against ``V`` runs.
    user_reg, bias_reg : λ_u and λ_b of the user solve.
    solve : ``solve(A, β) → (n_items, d+1)`` float64 ``[V; Δc]``. ``A`` (n_items, d+1, d+1) and ``β``
        (n_items, d+1) are float64 buffers reused across iterations (read them, do not keep them). Required
        when ``iterations > 0``; :func:`exact_item_solver` is the non-private one.
    weights : per-entry weights aligned with the item-major CSR (default 1). On a distributed backend's user
        blocks (``X`` from :mod:`dprec.distributed`, which then runs this loop with the same ``solve`` on the
        client) a function ``weights(X_block)`` returning them per block.
    residual_bound : B, clip of the residuals in ``β`` (default ∞: no clipping).
    clip_norm : Γ, clip of the user-factor norms in the statistics (default None: no clipping).
    mask : items whose rows of ``[V; Δc]`` are kept (others set to 0); None keeps all.
    dtype : precision of the factors inside the kernels (float32 or float64).
    item_major_csr : precomputed :func:`item_major` of ``X`` (computed when None).
    callback : called as ``callback(t, state)`` after each sweep with the current (V, c, U, b); the arrays
        are the engine's working buffers, valid during the call only (copy what you keep).
    cg : :func:`cg_solver`'s ridge and step count: both half-steps (the initial user solve too) run that many
        warm-started CG steps per row instead of the exact solves (see "Conjugate-gradient mode" in the module
        docstring). Non-private only: ``solve``, ``weights``, ``residual_bound`` and ``clip_norm`` must be
        left at their defaults; float32 only.
    """
    if is_blocked(X):
        return X.run(
            V,
            mu=mu,
            item_bias=item_bias,
            iterations=iterations,
            user_reg=user_reg,
            bias_reg=bias_reg,
            solve=solve,
            weights=weights,
            residual_bound=residual_bound,
            clip_norm=clip_norm,
            mask=mask,
            dtype=dtype,
            callback=callback,
        )
    dtype = np.dtype(dtype)
    d = V.shape[1]
    if cg is not None:
        if solve is not None or weights is not None or clip_norm is not None or residual_bound != np.inf:
            raise ValueError("run: the CG mode is non-private (no solve hook, weights or clipping)")
        if dtype != np.float32:
            raise ValueError(f"run: the CG mode runs in float32, got dtype={dtype}")
        return _run_cg(X, V, mu, item_bias, iterations, user_reg, bias_reg, mask, item_major_csr, callback, cg)
    users = UserSolver(X, d, user_reg, bias_reg, dtype)
    c = np.asarray(item_bias, dtype=np.float64)
    Ub = users(mu, V, c)
    if iterations > 0:
        if solve is None:
            raise ValueError("run: an item solve is required when iterations > 0")
        Xt, item_t = item_major(X) if item_major_csr is None else item_major_csr
        # exact 1 in any dtype: the user solver's read-only ones serve (one nnz-sized array fewer)
        w_t = users.ones if weights is None else weights
        n_items = X.shape[1]
        bufs = (np.empty((n_items, d + 1, d + 1)), np.empty((n_items, d + 1)))
        wresid = np.empty(X.nnz)
    for t in range(iterations):
        A, b = item_statistics(
            Xt,
            item_t,
            mu,
            Ub,
            c,
            w_t,
            residual_bound=residual_bound,
            clip_norm=clip_norm,
            dtype=dtype,
            out=bufs,
            wresid=wresid,
        )
        Va = solve(A, b)
        if mask is not None:
            Va[~mask] = 0.0
        V = Va[:, :d]
        c = c + Va[:, d]
        Ub = users(mu, V, c)
        if callback is not None:
            callback(t, BiasedALSResult(V, c, Ub[:, :d], Ub[:, d]))
    return BiasedALSResult(V, c, Ub[:, :d], Ub[:, d])


def _run_cg(X, V, mu, item_bias, iterations, user_reg, bias_reg, mask, item_major_csr, callback, cg):
    """:func:`run` in CG mode: the same sweeps, each half-step ``cg.steps`` warm-started CG steps per row.

    Warm starts: the users from 0 before the first sweep and from their previous ``[u; b]`` after; the items
    from ``[v_j; 0]`` (their previous factors and a zero bias correction). Factors are float32 throughout.
    """
    d = V.shape[1]
    n_users, n_items = X.shape
    users = UserSolver(X, d, user_reg, bias_reg, np.float32)
    c = np.asarray(item_bias, dtype=np.float64)
    V = np.ascontiguousarray(V, dtype=np.float32)
    U, b = np.zeros((n_users, d), dtype=np.float32), np.zeros(n_users, dtype=np.float32)
    users.cg(mu, V, c, U, b, cg.steps)
    if iterations > 0:
        Xt, item_t = item_major(X) if item_major_csr is None else item_major_csr
        ones = np.ones(X.nnz, dtype=np.float32)
        resid = np.empty(X.nnz, dtype=np.float32)
        dc = np.empty(n_items, dtype=np.float32)
    for t in range(iterations):
        K.clipped_weighted_residuals(Xt.data, Xt.indices, item_t, mu, b, c, ones, out=resid)
        dc[:] = 0.0
        KCG.cg_ridge_rows(Xt.indptr, Xt.indices, resid, U, cg.item_reg, V, dc, cg.steps)
        if mask is not None:
            V[~mask] = 0.0
            dc[~mask] = 0.0
        c = c + dc
        users.cg(mu, V, c, U, b, cg.steps)
        if callback is not None:
            callback(t, BiasedALSResult(V, c, U, b))
    return BiasedALSResult(V.astype(np.float64), c, U, b)
