"""DP implicit-feedback ALS for top-N: Hu, Koren & Volinsky (2008) ALS with Chien et al.'s (ICML 2021) private
item step.

Model: a user's score of item ``j`` is ``u_uᵀ v_j``; the objective is HKV's
``Σ_{u,j} c_uj (p_uj − u_uᵀ v_j)² + λ(‖U‖² + ‖V‖²)`` with confidence ``c_uj = 1 + α p_uj`` on observed entries
(``p_uj`` = 1 when binarised, or the interaction's value) and 1 on all others. Released (DP): noisy item
counts ``ñ`` and the item factors ``V``. Never released: the user factors, each solved from the released ``V``
and that user's own row (joint DP, the billboard model; :meth:`fold_in` of a new user costs nothing).

Fit (``T`` iterations, each an item step then a user step, from a data-independent random ``U``)
--------------------------------------------------------------------------------------------------
1. :class:`~dprec.models.releases.ItemCounts`: DP weighted counts ``ñ_j`` (``Σ_j w² ≤ k`` per user). They
   choose the *head* ``H = {j : ñ_j ≥ τ}`` (post-processing); tail items get no factor (``v_j = 0``) and fall
   back to DP popularity. They also drive the least-popular-first and adaptive contribution bounding and the
   frequency-scaled ridge.
2. Per iteration :class:`~dprec.models.releases.ImplicitGramian`: ``G̃ = P(G + N)``, the noisy global Gramian
   ``G = Σ_u ū_u ū_uᵀ`` of the clipped user factors (``‖ū‖ ≤ Γ``, exact), projected on the PSD cone — the
   unobserved-item term ``YᵀY`` of HKV's item solve.
3. Per iteration :class:`~dprec.models.releases.ImplicitItemStats`: per head item ``A_j = Σ_u ω_uj α p_uj ū ūᵀ``
   and ``b_j = Σ_u ω_uj (1 + α p_uj) ū`` (contribution weights ``ω`` with ``Σ_j ω_uj² ≤ k``, see
   :func:`~dprec.models.releases.implicit_weights`: ``uniform`` sampling, ``least-popular`` first, or
   ``adaptive`` weights ``∝ ñ_j^μ``) with Gaussian noise, then
   ``v_j = P_f(G̃ + A_j + N_j + λ_j I)⁻¹ (b_j + n_j)`` by the numba PSD solve
   (:func:`dprec.kernels.psd.noisy_psd_solve`, post-processing), ridge ``λ_j = λ + λ_f·max(ñ_j, 0) + c·σ√d``;
   ``P_f`` clips eigenvalues below ``f = φ·min_j λ_j`` (``φ = 1``: the PSD projection of the noisy matrix, then
   the ridge; the default ``φ = 0.3`` keeps noise eigenvalues down to ``−0.7λ``, so that most items pass the
   kernel's Cholesky test and skip the eigendecomposition).
4. User step (local, exact Cholesky or warm-started CG): ``u = (VᵀV + Σ_j α p_uj v_j v_jᵀ + λI)⁻¹ Σ_j c_uj v_j``.

Serving: ``s_uj = (1 − β)·u_uᵀv_j / max_l |u_uᵀv_l| + β·ñ_j / max ñ`` (``β = 0``: the raw ``u_uᵀ v_j``); users
the model does not know get the DP popularity ``ñ``.

At ``epsilon=math.inf`` nothing is bounded, clipped or noised and every item is in the head: the item step
is ``solve_batched(A, b, λ, UᵀU)`` on ``item_stats``, the user step ``solve_rows`` — the calls of
``ALS(feedback="implicit", solver="cholesky")``, with the same initial factors for the same seed, so both
fit the same factors (tests/models/test_dp_implicit_als.py): with ``confidence="value"`` on any data, with the
default ``confidence="binary"`` on binary data (ALS's confidence uses the stored values).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from .._rng import as_generator
from ..errors import CorruptFileError
from ..kernels import als as K
from ..kernels.psd import noisy_psd_solve, psd_project
from ._biased_als import clip_rows, item_rating_counts
from ._blocks import is_blocked, user_sum
from ._dp import DPModelMixin
from .base import Recommender
from .config import Int, PrivateConfig, Real
from .registry import register_model
from .releases import ImplicitGramian, ImplicitItemStats, ItemCounts, implicit_weights

__all__ = ["DPImplicitALS", "DPImplicitALSConfig", "user_solve", "head_stats"]

_DTYPES = {"float32": np.float32, "float64": np.float64}

#: default contribution bound k (Σ_j ω_uj² ≤ k)
DEFAULT_K = 60
#: defaults of a private fit (rank, sweeps) and of ε = ∞ (ALS's implicit benchmark settings)
PRIVATE_FACTORS, PRIVATE_ITERATIONS = 16, 3
NONPRIVATE_FACTORS, NONPRIVATE_ITERATIONS = 32, 15
#: default budget weights of the counts, the global Gramian and the per-item statistics
COUNTS_SHARE, GRAMIAN_SHARE = 0.2, 0.05
#: τ = HEAD_NOISE · σ / ((1 + αP) Γ): the DP count at which an item's RHS signal reaches HEAD_NOISE noise sd's
HEAD_NOISE = 3.0
#: the weight β of DP popularity in the private score
POPULARITY_WEIGHT = 0.3
#: below ε·ñ = MIN_SIGNAL the model releases only the counts (DP popularity)
MIN_SIGNAL = 1500.0


class DPImplicitALSConfig(PrivateConfig):
    """Parameters of :class:`DPImplicitALS` (ALS's implicit names: ``factors``, ``iterations``,
    ``regularization``, ``alpha``, ``dtype``, ``solver``, ``cg_steps``, ``init_scale``)."""

    factors: Int | None = Field(None, ge=1, description="latent dimension d; None = 16 (private), 32 (ε = ∞)")
    iterations: Int | None = Field(
        None, ge=0, description="number of sweeps (item step, user step) T; None = 3 (private), 15 (ε = ∞)"
    )
    regularization: Real = Field(0.01, ge=0, description="λ, the plain ridge on users and items (ALS's)")
    frequency_regularization: Real = Field(
        0.0, ge=0, description="λ_f: private fits add λ_f·max(ñ_j, 0) to item j's ridge"
    )
    noise_regularization: Real = Field(4.0, ge=0, description="c: private fits add c·σ√d to every item ridge")
    psd_floor: Real = Field(
        0.3,
        gt=0,
        le=1,
        description="φ: the noisy item matrix plus its ridge r is projected onto {X ⪰ φ·r I} (1 = P(M) + r I)",
    )
    alpha: Real = Field(1.0, ge=0, description="confidence slope: c = 1 + alpha·p")
    confidence: Literal["binary", "value"] = Field(
        "binary",
        description="p = 1 for every interaction (binary) or its value clipped to [0, upper rating bound] (value)",
    )
    max_ratings_per_user: Int | None = Field(
        None, ge=1, description="k, the per-user bound Σ_j ω² ≤ k of the releases; None = 60"
    )
    bounding: Literal["uniform", "least-popular", "adaptive"] = Field(
        "uniform", description="contribution bounding: uniform sample, least-popular first, adaptive weights"
    )
    adaptive_power: Real = Field(-0.5, description="μ of the adaptive weights ω ∝ ñ_j^μ")
    clip_norm: Real = Field(0.3, gt=0, description="Γ, bound on the user-factor norms in the releases")
    counts_share: Real = Field(COUNTS_SHARE, gt=0, lt=1, description="share of the budget on the DP counts")
    gramian_share: Real = Field(GRAMIAN_SHARE, gt=0, lt=1, description="share of the budget on the Gramians")
    head_threshold: Real | None = Field(
        None, description="τ: items with DP count ≥ τ get factors; None = 3σ/((1 + αP)Γ) (0 at ε = ∞)"
    )
    popularity_weight: Real | None = Field(
        None, ge=0, le=1, description="β, weight of DP popularity in the private score; None = 0.3 (0 at ε = ∞)"
    )
    solver: Literal["cholesky", "cg"] = Field("cholesky", description="the local user step: exact or CG")
    cg_steps: Int = Field(3, ge=1, description="solver='cg': CG steps per user and iteration")
    init_scale: Real = Field(0.1, gt=0, description="standard deviation × √d of the random initial factors")
    dtype: Literal["float32", "float64"] = Field("float32", description="factor precision in the kernels")


# ---------------------------------------------------------------------------------------------- shared pieces
def _values(X: sp.csr_matrix, values) -> np.ndarray:
    if callable(values):  # a distributed backend's per-block rule (confidence_values)
        values = values(X)
    return np.ones(X.nnz) if values is None else np.asarray(values, dtype=np.float64)


def confidence_values(X: sp.csr_matrix, *, upper: float | None) -> np.ndarray:
    """``p`` aligned with ``X.data``: the stored values, clipped to ``[0, upper]`` unless ``upper`` is None."""
    v = np.asarray(X.data, np.float64)
    return v if upper is None else np.clip(v, 0.0, upper)


def user_solve(
    X: sp.csr_matrix,
    V: np.ndarray,
    *,
    alpha: float,
    regularization: float,
    values=None,
    out=None,
    solver: str = "cholesky",
    cg_steps: int = 3,
    dtype=None,
) -> np.ndarray:
    """The local user step: ``u = (VᵀV + Σ_j α p_uj v_j v_jᵀ + λI)⁻¹ Σ_j (1 + α p_uj) v_j`` for every row of ``X``.

    ``values`` are ``p`` aligned with ``X.data`` (None = 1). ``solver="cholesky"`` is exact (ALS's
    ``solve_rows``); ``"cg"`` runs ``cg_steps`` warm-started CG steps from ``out`` (float32). Returns ``out``.
    """
    if is_blocked(X):  # a distributed backend's user blocks: the solves stay with the blocks
        return X.implicit_user_solve(V, alpha=alpha, regularization=regularization, values=values, solver=solver,
                                     cg_steps=cg_steps, dtype=dtype)  # fmt: skip
    dtype = V.dtype if dtype is None else dtype
    V = np.ascontiguousarray(V, dtype=dtype)
    p = _values(X, values)
    n, d = X.shape[0], V.shape[1]
    if out is None:
        out = np.zeros((n, d), dtype=dtype)
    VtV = K.gram(V)
    if solver == "cg":
        K.cg_rows(X.indptr, X.indices, (1.0 + alpha * p).astype(np.float32), V, VtV, regularization, out, cg_steps)
    else:
        wA, wb = (alpha * p).astype(dtype), (1.0 + alpha * p).astype(dtype)
        K.solve_rows(X.indptr, X.indices, wA, wb, V, VtV, np.full((n, d), float(regularization)), out)
    return out


class HeadCSR:
    """The item-major CSR of ``X`` restricted to the head items (sorted) and to the entries with a non-zero
    weight, with the item-step weights ``α p ω`` (Gram) and ``(1 + α p) ω`` (right-hand side).

    Built once per fit. ``dtype`` of the weights: float64 for private fits (what the sensitivity proof bounds,
    read exactly by :func:`dprec.kernels.als.item_stats`), the factor dtype at ε = ∞ (ALS's rounding)."""

    def __init__(self, X: sp.csr_matrix, weights, items, *, alpha: float, values=None, dtype=np.float64):
        p = _values(X, values)
        w = np.ones(X.nnz) if weights is None else np.asarray(weights, np.float64)
        items = np.asarray(items, dtype=np.int64)
        keep = w != 0
        pos = np.flatnonzero(keep)
        sub = sp.csr_matrix((pos + 1.0, X.indices[keep], _indptr_of(X, keep)), shape=X.shape)
        Xt = sub.T.tocsr()[items]
        Xt.sort_indices()
        src = Xt.data.astype(np.int64) - 1
        self.indptr, self.indices = Xt.indptr, Xt.indices
        self.wA = (alpha * p[src] * w[src]).astype(dtype)
        self.wb = ((1.0 + alpha * p[src]) * w[src]).astype(dtype)
        self.n_items = len(items)

    def stats(self, U: np.ndarray, out=None) -> tuple[np.ndarray, np.ndarray]:
        """``(A, b)`` over the head items, float64 (``out`` reuses buffers)."""
        return K.item_stats(self.indptr, self.indices, self.wA, self.wb, U, 0, U.shape[0], out=out)


def _indptr_of(X: sp.csr_matrix, keep: np.ndarray) -> np.ndarray:
    """The indptr of ``X`` with only the entries where ``keep`` is True."""
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    c = np.zeros(X.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=X.shape[0]), out=c[1:])
    return c


def head_stats(X: sp.csr_matrix, Uc: np.ndarray, weights, items, *, alpha: float, values=None):
    """``(A_j, b_j)`` of the head ``items`` from the clipped user factors ``Uc`` (the released statistic)."""
    return HeadCSR(X, weights, items, alpha=alpha, values=values).stats(Uc)


# ---------------------------------------------------------------------------------------------- model
@register_model("dp-implicit-als")
class DPImplicitALS(DPModelMixin, Recommender):
    """DP implicit-feedback ALS (see the module docstring): ranks, does not predict ratings.

    Parameters: :class:`DPImplicitALSConfig`. Fitted attributes: ``item_factors_`` (DP; 0 for tail items),
    ``item_counts_`` (DP), ``head_`` (boolean mask of the items with factors), ``user_factors_`` (per user,
    never released), ``popularity_weight_`` (β), ``head_threshold_`` (τ).
    """

    is_private = True
    predicts_ratings = False
    feedback = "implicit"
    Config = DPImplicitALSConfig

    def __init__(self, **params):
        super().__init__(**params)
        self._init_private_state()
        self.item_factors_ = self.user_factors_ = self.item_counts_ = self.head_ = None
        self.popularity_weight_ = self.head_threshold_ = None
        self._bounds = None
        self._VtV = None

    def _check_fit_data(self, data):
        if self.confidence == "value" and self.private and data.rating_bounds is None:
            raise ValueError(
                'DPImplicitALS(confidence="value") needs public rating bounds (the upper bound P clips the '
                'values): build the data with rating_bounds=(lo, hi), or use confidence="binary"'
            )

    def _k(self) -> int:
        return int(self.max_ratings_per_user or DEFAULT_K)

    @property
    def factors_(self) -> int:
        """The rank in use: ``factors``, or 16 for a private fit and 32 at ε = ∞."""
        if self.factors is not None:
            return int(self.factors)
        return PRIVATE_FACTORS if self.private else NONPRIVATE_FACTORS

    @property
    def iterations_(self) -> int:
        """The number of sweeps in use: ``iterations``, or 3 for a private fit and 15 at ε = ∞."""
        if self.iterations is not None:
            return int(self.iterations)
        return PRIVATE_ITERATIONS if self.private else NONPRIVATE_ITERATIONS

    def _value_bound(self, data) -> float:
        return float(data.rating_bounds[1]) if self.confidence == "value" and data.rating_bounds else 1.0

    def _p(self, X, data=None) -> np.ndarray | None:
        """``p`` aligned with ``X.data``: ones (binary), the raw values at ε = ∞, else clipped to [0, P]."""
        if self.confidence == "binary":
            return None
        upper = float(self.rating_bounds_[1]) if self.private and self.rating_bounds_ is not None else None
        if is_blocked(X):  # evaluated by each block of a distributed backend
            return functools.partial(confidence_values, upper=upper)
        return confidence_values(X, upper=upper)

    # ------------------------------------------------------------------ fit
    def _fit(self, data, *, ledger=None):
        X = data.matrix
        n_users, n_items = X.shape
        d, T = self.factors_, self.iterations_
        ft = _DTYPES[self.dtype]
        k, P = self._k(), self._value_bound(data)
        counts_rel = ItemCounts(self.privacy_unit, k=k)
        gram_rel = ImplicitGramian(self.privacy_unit, clip_norm=self.clip_norm, factors=d, iterations=max(T, 1))
        stats_rel = ImplicitItemStats(
            self.privacy_unit,
            k=k,
            alpha=self.alpha,
            value_bound=P,
            clip_norm=self.clip_norm,
            factors=d,
            iterations=max(T, 1),
            n_head=n_items,  # an upper bound: the head is chosen after the counts (size checks only)
        )
        s_c, s_g = self.counts_share, self.gramian_share
        personal = [(counts_rel, s_c), (gram_rel, s_g), (stats_rel, max(1.0 - s_c - s_g, 1e-3))]
        fallback = [(counts_rel, 1.0)]
        self._item_mask = self._start_private_fit(data, [personal, fallback], ledger=ledger)
        usable = np.ones(n_items, bool) if self._item_mask is None else self._item_mask.copy()
        p = self._p(X)
        # the data-independent start: ALS's stream and order (U, then V)
        g = as_generator(self.rng)
        scale = self.init_scale / np.sqrt(d)
        U = (g.standard_normal((n_users, d)) * scale).astype(ft)
        V = (g.standard_normal((n_items, d)) * scale).astype(ft)

        if self.private:
            use_factors = T > 0 and self.epsilon * self.n_users_dp_ >= MIN_SIGNAL
            releases = personal if use_factors else fallback
            plan = self._plan_releases(releases, n_items=n_items)
            counts = self._release(counts_rel, user_sum(counts_rel.statistic, X), plan[counts_rel.name])
            beta = POPULARITY_WEIGHT if self.popularity_weight is None else float(self.popularity_weight)
            if use_factors:
                sig = plan[stats_rel.name].sigma
                tau = (
                    HEAD_NOISE * sig / ((1.0 + self.alpha * P) * self.clip_norm)
                    if self.head_threshold is None
                    else float(self.head_threshold)
                )
                head = usable & (counts >= tau)
            else:
                beta, tau, head = 1.0, math.inf, np.zeros(n_items, bool)
        else:
            counts = user_sum(item_rating_counts, X)
            beta = 0.0 if self.popularity_weight is None else float(self.popularity_weight)
            tau = -math.inf if self.head_threshold is None else float(self.head_threshold)
            head = usable & (counts >= tau)
        items = np.flatnonzero(head)
        V[~head] = 0.0
        if T > 0 and len(items):
            V, U = self._iterate(X, U, V, items, counts, p, plan if self.private else None, gram_rel, stats_rel)
        elif T > 0:
            U = user_solve(X, V, alpha=self.alpha, regularization=self.regularization, values=p, dtype=ft)
        if self._item_mask is not None:
            counts = np.where(self._item_mask, counts, -np.inf)
        self.item_factors_, self.user_factors_ = V, U
        self.item_counts_, self.head_ = counts, head
        self.popularity_weight_, self.head_threshold_ = float(beta), float(tau)
        self._bounds = {"k": k, "bounding": self.bounding, "clip_norm": self.clip_norm, "value_bound": P}
        self._VtV = None

    def _iterate(self, X, U, V, items, counts, p, plan, gram_rel, stats_rel):
        """``T`` sweeps: item step (noisy when private) on the head items, then the local user step."""
        if is_blocked(X):  # a distributed backend runs these sweeps with the model's own releases and solves
            return X.implicit_iterate(self, U, V, items, counts, p, plan, gram_rel, stats_rel)
        ft = _DTYPES[self.dtype]
        n_users, d = U.shape
        lam = float(self.regularization)
        if self.private:
            w = implicit_weights(
                X,
                self._k(),
                method=self.bounding,
                counts=counts,
                power=self.adaptive_power,
                rng=self._noise.generator("contribution_sampling"),
            )
            hc = HeadCSR(X, w, items, alpha=self.alpha, values=p, dtype=np.float64)
            gstep, sstep = plan[gram_rel.name], plan[stats_rel.name]
            reg, floor = self._item_ridge(counts[items], sstep.sigma, d)
            Uc = np.empty_like(U)
            iu = np.triu_indices(d)
            noise_bufs = self._noise_buffers(len(items), d)
        else:
            hc = HeadCSR(X, None, items, alpha=self.alpha, values=p, dtype=ft)
            reg = np.full((len(items), d), lam)
        bufs = (np.empty((len(items), d, d)), np.empty((len(items), d)))
        Vh = np.empty((len(items), d), dtype=ft)
        user_kw = dict(alpha=self.alpha, regularization=lam, values=p, solver=self.solver, cg_steps=self.cg_steps)
        for t in range(self.iterations_):
            if self.private:
                clip_rows(U, self.clip_norm, out=Uc)
                Gv = self._release(gram_rel, K.gram(Uc)[iu], gstep, index=t)
                G = psd_project(ImplicitGramian.unpack(Gv, d))
                A, b = hc.stats(Uc, out=bufs)
                # G̃ and the ridge go in before the projection (see _noisy_item_solve)
                Vh[:] = self._noisy_item_solve(A, b, G, reg, floor, stats_rel, sstep, t, noise_bufs)
            else:
                A, b = hc.stats(U, out=bufs)
                Vh, _ = K.solve_batched(A, b, reg, K.gram(U), out=Vh)
            V[items] = Vh
            user_solve(X, V, out=U, **user_kw)
        return V, U

    def _item_ridge(self, head_counts, sigma: float, d: int) -> tuple[np.ndarray, float]:
        """The per-item ridge ``λ_j = λ + λ_f·max(ñ_j, 0) + λ_σ·σ√d`` of the head items (from the DP counts ``ñ_j``
        and the release's σ: post-processing) and the PSD floor ``φ·min_j λ_j``."""
        reg = (
            float(self.regularization)
            + self.frequency_regularization * np.maximum(head_counts, 0.0)
            + self.noise_regularization * sigma * math.sqrt(d)
        )
        return reg, (self.psd_floor * float(np.min(reg)) if len(reg) else 0.0)

    def _noise_buffers(self, n: int, d: int):
        """Reusable buffers for the per-item noise (upper triangle, right-hand side); None in secure mode."""
        return None if self.secure_noise else [np.empty((n, w)) for w in (d * (d + 1) // 2, d)]

    def _noisy_item_solve(self, A, b, G, reg, floor, rel, step, t, noise_bufs):
        """The Gaussian mechanism on the stacked ``(triu A_j, b_j)`` (fused into the PSD solve, or through
        OpenDP in secure mode), then ``v_j = P_f(M_j + N_j)⁻¹ (b_j + n_j)`` (post-processing).

        ``M_j = A_j + G̃ + λ_j I``: the released Gramian and the ridge are public and go in before the noise (the
        PSD kernel adds them while it loads each item). ``P_f`` clips eigenvalues below ``f = φ·min_j λ_j``;
        with ``φ = 1`` (and one ridge for all items) this is ``P(A_j + G̃ + N_j) + λ_j I``, the PSD projection
        followed by the ridge. With ``φ < 1`` noise eigenvalues down to ``−(1 − φ)λ`` are kept, and most matrices
        pass the kernel's Cholesky test without an eigendecomposition. The noise is drawn in parallel, one
        stream per row block of the step (:meth:`~dprec.privacy.noise.NoiseSource.draw_rows`)."""
        n, d = b.shape
        zero = np.zeros(n)
        if self.secure_noise:
            from .releases import FactorStats

            A += G[None]
            A[:, np.arange(d), np.arange(d)] += reg[:, None]
            # the released matrices already include G̃ (a released value): subtracting it is post-processing
            A_n, b_n = FactorStats.unpack(self._release(rel, FactorStats.pack(A, b), step, index=t), n, d)
            return noisy_psd_solve(A_n, b_n, np.zeros((n, d * (d + 1) // 2)), np.zeros((n, d)), zero, floor)
        noise_tri, noise_b = self._noise.draw_rows(
            n, (d * (d + 1) // 2, d), step=rel.name, sigma=step.sigma, index=t, out=noise_bufs
        )
        self._record(rel, step)
        return noisy_psd_solve(A, b, noise_tri, noise_b, zero, floor, base=G, shift=reg)

    # ------------------------------------------------------------------ reporting
    def _bounds_report(self):
        return dict(self._bounds, unit=self.privacy_unit)

    def _released_description(self):
        return {
            "item_counts": "DP (noisy weighted counts)",
            "head_items": "post-processing of the DP counts (ñ_j ≥ τ)",
            "item_factors": "DP (noisy Gramian and per-item statistics, PSD solve)",
            "n_users": "DP count (used only by the rules)",
            "user_factors": "per-user, never released",
        }

    def _public_assumptions(self):
        out = super()._public_assumptions()
        if self.confidence == "binary":
            out[0] = "interactions are binarised: no rating bounds are used"
        return out

    # ------------------------------------------------------------------ serving
    def _popularity(self) -> np.ndarray:
        c = np.where(np.isfinite(self.item_counts_), self.item_counts_, 0.0)
        top = np.max(np.abs(c)) if c.size else 0.0
        return c / top if top > 0 else c

    def _scores(self, rows):
        rows = np.asarray(rows, dtype=np.int64)
        s = self.user_factors_[rows].astype(np.float64) @ self.item_factors_.T.astype(np.float64)
        beta = self.popularity_weight_
        if beta > 0:
            scale = np.max(np.abs(s), axis=1, keepdims=True)
            s = np.divide(s, scale, out=np.zeros_like(s), where=scale > 0)
            s = (1.0 - beta) * s + beta * self._popularity()[None, :]
        return self._mask_unreleased(s)

    def _dot_scores(self):  # the fast top-k path of recommend (base.DotScores)
        return self._dot_form(biases=False, popularity_weight=self.popularity_weight_, popularity=self._popularity())

    def _fallback_scores(self):
        return self._mask_unreleased(self.item_counts_.astype(np.float64).copy())

    def _predict(self, rows, cols):
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        out = np.empty(len(rows))
        known = rows >= 0
        if (~known).any():
            out[~known] = self._fallback_scores()[cols[~known]]
        for r in np.unique(rows[known]):
            sel = rows == r
            out[sel] = self._scores(np.array([r]))[0, cols[sel]]
        return np.where(np.isfinite(out), out, 0.0)

    def _item_gram(self) -> np.ndarray:
        if self._VtV is None:
            self._VtV = K.gram(np.ascontiguousarray(self.item_factors_))
        return self._VtV

    def _solve_rows(self, X) -> np.ndarray:
        """Local user solves of the rows of ``X`` (model columns) against the released item factors."""
        X = sp.csr_matrix(X)
        p = None if self.confidence == "binary" else np.asarray(X.data, np.float64)
        if p is not None and self.private and self.rating_bounds_ is not None:
            p = np.clip(p, 0.0, float(self.rating_bounds_[1]))
        return user_solve(X, self.item_factors_, alpha=self.alpha, regularization=self.regularization, values=p)

    def _reserve_users(self, n_new):
        self.user_factors_ = np.vstack(
            [self.user_factors_, np.zeros((n_new, self.item_factors_.shape[1]), self.item_factors_.dtype)]
        )

    def _fold_in_rows(self, rows, X):
        self.user_factors_[rows] = self._solve_rows(X)

    def _fold_in(self, row, cols, vals):
        X1 = sp.csr_matrix((vals, cols, [0, len(cols)]), shape=(1, len(self._item_ids)))
        u = self._solve_rows(X1)
        if row >= self.user_factors_.shape[0]:
            self._reserve_users(row + 1 - self.user_factors_.shape[0])
        self.user_factors_[row] = u[0]

    def _explain(self, row, col):
        """The user solve is linear in its right-hand side ``Σ_j c_j v_j``: with ``W = (VᵀV + Σ_j α p_j v_jv_jᵀ
        + λI)⁻¹``, item ``j`` contributes ``c_j · v_colᵀ W v_j`` to ``u·v_col`` (scaled like the score when
        β > 0); the baseline is the rest of the score (the popularity term)."""
        s = slice(self._seen.indptr[row], self._seen.indptr[row + 1])
        cols, vals = self._seen.indices[s].astype(np.int64), self._seen.data[s].astype(np.float64)
        V = self.item_factors_.astype(np.float64)
        p = np.ones(len(cols)) if self.confidence == "binary" else vals
        Y = V[cols]
        M = self._item_gram() + (Y * (self.alpha * p)[:, None]).T @ Y + self.regularization * np.eye(V.shape[1])
        z = np.linalg.solve(M, V[col])
        contrib = (1.0 + self.alpha * p) * (Y @ z)
        beta = self.popularity_weight_
        if beta > 0:
            raw = self.user_factors_[row].astype(np.float64) @ V.T
            top = np.max(np.abs(raw))
            contrib = contrib * ((1.0 - beta) / top if top > 0 else 0.0)
        score = float(self._predict(np.array([row]), np.array([col]))[0])
        return cols, vals, contrib, score - float(contrib.sum())

    def _explain_baseline_words(self):
        if self.popularity_weight_ > 0:
            return "the item's overall popularity"
        return "a small numerical remainder of the model's solver"

    def _item_vectors(self):
        return self.item_factors_.astype(np.float64)

    # ------------------------------------------------------------------ state
    def _get_state(self):
        return {
            "item_factors": self.item_factors_,
            "user_factors": self.user_factors_,
            "item_counts": self.item_counts_,
            "head": self.head_,
            "popularity_weight": np.array(self.popularity_weight_),
            "head_threshold": np.array(self.head_threshold_),
        }

    def _set_state(self, s):
        n_i, d = len(self._item_ids), self.factors_
        V = s["item_factors"]
        if V.shape != (n_i, d) or s["head"].shape != (n_i,) or s["item_counts"].shape != (n_i,):
            raise CorruptFileError("DPImplicitALS state arrays do not match the model's items and factors")
        self.item_factors_, self.item_counts_, self.head_ = V, s["item_counts"], s["head"].astype(bool)
        self.user_factors_ = s.get("user_factors", np.zeros((0, d), V.dtype))
        self.popularity_weight_ = float(s["popularity_weight"])
        self.head_threshold_ = float(s["head_threshold"])
        self._bounds = self._bounds or {}
        self._VtV = None

    def _public_state(self):
        m = self._released_item_mask()
        st = self._get_state()
        st.pop("user_factors")
        return {**st, "item_factors": self.item_factors_[m], "item_counts": self.item_counts_[m], "head": self.head_[m]}

    def _from_public_state(self, s):
        self._set_state(s)
        self.user_factors_ = np.zeros((0, self.factors_), self.item_factors_.dtype)

    def _restore_manifest(self, manifest):
        super()._restore_manifest(manifest)
        self._bounds = dict((manifest.get("privacy") or {}).get("bounds") or {})
        self._bounds.pop("unit", None)
