"""Every differentially private release of dprec, declared once.

A *release* is one Gaussian mechanism applied to one statistic vector: the object names the statistic,
computes it exactly (``statistic``), states its L2 sensitivity under each privacy unit (``sensitivity``)
and carries the proof in its docstring. Models assemble a list of releases, plan the whole list
(:func:`dprec.privacy.accounting.plan`), charge the ledger once, and only then compute and noise each
statistic through :meth:`dprec.privacy.noise.NoiseSource.release`. The privacy report is generated from the
same list (:meth:`Release.report`), so it cannot drift from what ran, and one parametrised neighbour test
(``tests/privacy/test_releases.py``) runs the real ``statistic`` of every release on neighbouring datasets.

Neighbouring relations (docs/privacy-model.md): ``privacy_unit="user"`` — add or remove one user with all of
that user's ratings; ``privacy_unit="rating"`` — add or remove one rating (changing a rating is a removal
followed by an addition, so it moves a statistic by at most twice the sensitivity).

Contribution bounding by weighting
----------------------------------
Under the user unit, user ``i`` with ``n_i`` ratings enters every per-item statistic with the weight
``w_i = min(1, √(k / n_i))`` (``k`` = ``max_ratings_per_user``). For ``s_j = Σ_i w_i f(r_ij)`` with
``|f| ≤ B``, removing user ``i`` changes ``s`` by ``w_i √(Σ_j f(r_ij)²) ≤ min(1, √(k/n_i)) √n_i B ≤ √k B``:
the bound of keeping at most ``k`` ratings, but every rating is used. Scalar totals use
``w_i = min(1, k / n_i)`` so that ``Σ_j w_i ≤ k``. Under the rating unit every weight is 1 and ``k = 1``.
``contribution="sample"`` keeps exactly ``min(k, n_i)`` uniformly sampled ratings per user instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from ..kernels import als as K
from ..privacy import accounting as acc
from ..privacy.units import check_privacy_unit

__all__ = [
    "Release",
    "UserCount",
    "RatingCount",
    "GlobalMean",
    "ItemBiases",
    "ItemCounts",
    "SpectralMoment",
    "FactorStats",
    "ItemSelection",
    "ItemCooccurrence",
    "ImplicitGramian",
    "ImplicitItemStats",
    "ClippedItemGradient",
    "contribution_weights",
    "implicit_weights",
    "segment_sums",
    "user_weights",
]


# ---------------------------------------------------------------------------------------------- bounding
def contribution_weights(
    X: sp.csr_matrix, k: int, *, privacy_unit: str, method: str = "weight", rng=None, scalar: bool = False
) -> np.ndarray:
    """Per-rating weights (aligned with ``X.data``) that bound each user's contribution (module docstring).

    Returns float64 weights with ``Σ_j w_ij² ≤ k`` per user (``Σ_j w_ij ≤ k`` if ``scalar``); all ones under
    ``privacy_unit="rating"``. ``method="sample"`` draws its sample from ``rng`` (a Generator).
    """
    n_u = np.diff(X.indptr)
    if privacy_unit == "rating":
        return np.ones(X.nnz)
    if method == "weight":
        return np.repeat(user_weights(n_u, k, scalar=scalar), n_u)
    if method == "sample":
        if rng is None:
            raise ValueError('contribution="sample" needs a random stream')
        w = np.zeros(X.nnz)
        keys = rng.random(X.nnz)  # keep the k smallest random keys within each user row
        for u in np.flatnonzero(n_u > 0):
            s, e = X.indptr[u], X.indptr[u + 1]
            if e - s <= k:
                w[s:e] = 1.0
            else:
                w[s + np.argpartition(keys[s:e], k - 1)[:k]] = 1.0
        return w
    raise ValueError(f'contribution must be "weight" or "sample", got {method!r}')


def user_weights(n_u: np.ndarray, k: int, *, scalar: bool = False) -> np.ndarray:
    """The per-user weights of ``method="weight"`` (user unit): ``min(1, √(k/n_u))`` (``min(1, k/n_u)`` if
    ``scalar``), ``n_u`` floored at 1; float64."""
    nu = np.maximum(n_u, 1).astype(np.float64)
    return np.minimum(1.0, k / nu) if scalar else np.minimum(1.0, np.sqrt(k / nu))


def kernel_weights(w: np.ndarray) -> np.ndarray:
    """Non-negative weights as float32 rounded toward zero, the form the statistics kernels read.

    The item-step kernels read an nnz-sized weight array twice per sweep; float32 halves that memory traffic
    (the kernels widen every value to float64 exactly). Rounding toward zero means no weight ever grows, so each
    bound the sensitivity proofs use (``w ≤ 1``, ``Σ_j w_ij² ≤ k`` per user) still holds for the stored values.
    """
    w = np.asarray(w, dtype=np.float64)
    w32 = w.astype(np.float32)
    up = w32.astype(np.float64) > w
    w32[up] = np.nextafter(w32[up], np.float32(0.0))
    return w32


def segment_sums(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each CSR row segment (0 for empty rows)."""
    out = np.zeros(len(indptr) - 1)
    nz = np.diff(indptr) > 0
    if nz.any():
        out[nz] = np.add.reduceat(values, indptr[:-1][nz])
    return out


# ---------------------------------------------------------------------------------------------- base
@dataclass(frozen=True)
class Release:
    """One Gaussian release: ``statistic(...) + N(0, σ² I)`` with σ from the plan.

    Subclasses set ``name`` (the plan step, the noise stream and the report entry), ``what`` (the statistic in
    words) and implement :meth:`sensitivity` (L2, for the add/remove relation of ``unit``) and ``statistic``.
    ``count`` is the number of independent releases of the statistic in one fit (DP-ALS iterations).
    """

    name: ClassVar[str] = ""
    what: ClassVar[str] = ""
    #: extra δ of a δ-approximate zCDP mechanism (only DP item selection has one)
    extra_delta: ClassVar[bool] = False

    unit: str

    def __post_init__(self):
        check_privacy_unit(self.unit)

    @property
    def count(self) -> int:
        return 1

    def sensitivity(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def size(self, n_items: int) -> int:  # pragma: no cover - abstract
        """Number of entries of the released vector (public: from the public item count)."""
        raise NotImplementedError

    def step(self, weight: float) -> acc.Step:
        """The accounting step of this release with a relative ``weight`` of the budget."""
        return acc.Step(self.name, weight, self.sensitivity(), self.count)

    def report(self, step, sampler: str) -> dict:
        """The report entry: what was released, how, at what cost (from the calibrated ``step``)."""
        private = math.isfinite(step.rho) and step.sigma > 0
        return {
            "name": self.name,
            "statistic": self.what,
            "mechanism": "gaussian" if private else "none (ε = ∞)",
            "sampler": sampler,
            "sensitivity_l2": step.sensitivity,
            "sigma": step.sigma,
            "count": step.count,
            "rho": step.rho if private else math.inf,
        }


# ---------------------------------------------------------------------------------------------- releases
@dataclass(frozen=True)
class UserCount(Release):
    """The number of users ``n``.

    Sensitivity: adding or removing one user changes ``n`` by 1; adding or removing one rating changes it by
    at most 1 (the rating may be its user's only one). ``Δ = 1`` under both units.
    """

    name: ClassVar[str] = "n_users"
    what: ClassVar[str] = "number of users"

    def sensitivity(self) -> float:
        return 1.0

    def size(self, n_items: int) -> int:
        return 1

    def statistic(self, X: sp.csr_matrix) -> np.ndarray:
        return np.array([float(np.count_nonzero(np.diff(X.indptr)))])


@dataclass(frozen=True)
class RatingCount(Release):
    """The number of ratings, each user's capped at ``k``: ``N = Σ_i min(n_i, k)`` (``k = 1`` under the rating
    unit means no cap: every rating counts once).

    Sensitivity: adding or removing one rating changes ``N`` by at most 1 (by exactly 1 while its user has at most
    ``k`` ratings); adding or removing one user changes it by ``min(n_i, k) ≤ k``. ``Δ = 1`` under the rating
    unit, ``k`` under the user unit. DP-ALS reads it under the rating unit, where its rules count protected units.
    """

    name: ClassVar[str] = "n_ratings"
    what: ClassVar[str] = "number of ratings"

    k: int = 1

    def sensitivity(self) -> float:
        return 1.0 if self.unit == "rating" else float(self.k)

    def size(self, n_items: int) -> int:
        return 1

    def statistic(self, X: sp.csr_matrix) -> np.ndarray:
        if self.unit == "rating":
            return np.array([float(X.nnz)])
        return np.array([float(np.minimum(np.diff(X.indptr), self.k).sum())])


@dataclass(frozen=True)
class GlobalMean(Release):
    """The pair ``(S, N) = (Σ w_ij (r_ij − m), Σ w_ij)`` for the DP global mean ``μ = m + clip(S̃/Ñ, ±h)``.

    ``m = (lo + hi)/2`` and ``h = (hi − lo)/2`` come from the public rating bounds; scalar weights
    ``Σ_j w_ij ≤ k`` (module docstring). Removing user ``i`` changes ``S`` by ``|Σ_j w_ij (r_ij − m)| ≤ k h``
    and ``N`` by ``Σ_j w_ij ≤ k``: ``Δ = k √(h² + 1)``, attained by a user with ``k`` ratings all at a bound.
    Rating unit: ``k = 1``.
    """

    name: ClassVar[str] = "global_mean"
    what: ClassVar[str] = "pair (Σw(r−m), Σw)"

    k: int = 1
    rating_bounds: tuple = (0.0, 1.0)
    contribution: str = "weight"

    def sensitivity(self) -> float:
        kk = 1 if self.unit == "rating" else self.k
        lo, hi = self.rating_bounds
        return kk * math.sqrt(((hi - lo) / 2.0) ** 2 + 1.0)

    def size(self, n_items: int) -> int:
        return 2

    def statistic(self, X: sp.csr_matrix, *, rng=None) -> np.ndarray:
        lo, hi = self.rating_bounds
        if self.contribution == "weight" or self.unit == "rating":  # deterministic weights: one fused pass
            return K.global_mean_stats(X.indptr, X.data, self.k, (lo + hi) / 2.0, rating_unit=self.unit == "rating")
        wm = contribution_weights(X, self.k, privacy_unit=self.unit, method=self.contribution, rng=rng, scalar=True)
        return np.array([np.sum(wm * (X.data - (lo + hi) / 2.0)), np.sum(wm)])


@dataclass(frozen=True)
class ItemBiases(Release):
    """The stacked vector ``(S_j, N_j)_j``: ``S_j = Σ_i w_ij e_ij``, ``N_j = Σ_i w_ij`` (weights ``Σ_j w_ij² ≤ k``).

    Residuals ``e_ij = clip(r_ij − μ − β_i, −B, B)`` with the released mean μ and the user's own damped offset
    ``β_i = Σ_j (r_ij − μ)/(n_i + λ_u)`` (user unit only). Removing user ``i`` removes its terms (μ is already
    released; β_i is a function of user ``i``'s own row): ``‖Δ‖² = Σ_j w_ij² (e_ij² + 1) ≤ k (B² + 1)``,
    so ``Δ = √k √(B² + 1)``, attained by a user with ``k`` ratings whose residuals all clip at ±B.

    Rating unit: ``β_i = 0``. With the offset, one rating would move all of its user's residuals (a measured
    1.008× excess over the claim); without it one rating changes one ``(S_j, N_j)`` pair by
    ``(e, 1)``: ``Δ = √(B² + 1)``.
    """

    name: ClassVar[str] = "item_biases"
    what: ClassVar[str] = "stacked (S_j, N_j)"

    k: int = 1
    residual_bound: float = 1.0
    user_reg: float = 10.0
    contribution: str = "weight"

    def sensitivity(self) -> float:
        kk = 1 if self.unit == "rating" else self.k
        return math.sqrt(kk) * math.sqrt(self.residual_bound**2 + 1.0)

    def size(self, n_items: int) -> int:
        return 2 * n_items

    def statistic(self, X: sp.csr_matrix, *, mu: float, rng=None) -> np.ndarray:
        if self.contribution == "weight" or self.unit == "rating":  # deterministic weights: one fused pass
            return K.item_bias_stats(
                X.indptr,
                X.indices,
                X.data,
                X.shape[1],
                mu,
                self.user_reg,
                self.residual_bound,
                self.k,
                rating_unit=self.unit == "rating",
            )
        indptr, idx, val = X.indptr, X.indices, X.data
        n_u = np.diff(indptr)
        if self.unit == "user":
            offset = segment_sums(val - mu, indptr) / (n_u + self.user_reg)
        else:
            offset = np.zeros(len(n_u))
        B = self.residual_bound
        e = np.clip(val - mu - np.repeat(offset, n_u), -B, B)
        w = contribution_weights(X, self.k, privacy_unit=self.unit, method=self.contribution, rng=rng)
        n_items = X.shape[1]
        return np.concatenate(
            [np.bincount(idx, weights=w * e, minlength=n_items), np.bincount(idx, weights=w, minlength=n_items)]
        )


@dataclass(frozen=True)
class ItemCounts(Release):
    """Weighted item counts ``Ñ_j = Σ_i w_ij`` (weights ``Σ_j w_ij² ≤ k``): ``Δ = √k`` (``1`` per rating).

    Removing user ``i`` changes the vector by ``(w_ij)_j`` of norm ``√(Σ_j w_ij²) ≤ √k``, attained by a user
    with at least ``k`` ratings.
    """

    name: ClassVar[str] = "item_counts"
    what: ClassVar[str] = "weighted item counts"

    k: int = 1

    def sensitivity(self) -> float:
        return math.sqrt(1 if self.unit == "rating" else self.k)

    def size(self, n_items: int) -> int:
        return n_items

    def statistic(self, X: sp.csr_matrix) -> np.ndarray:
        w = contribution_weights(X, self.k, privacy_unit=self.unit)
        return np.bincount(X.indices, weights=w, minlength=X.shape[1])


@dataclass(frozen=True)
class SpectralMoment(Release):
    """The strict upper triangle of ``C = Σ_i x_i x_iᵀ`` over the ``M`` selected items (DP spectral start).

    ``x_i = w_i · clip(r_iS − μ − c_S − b_i, −B, B)`` with ``w_i = min(1, √(k/n_iS))`` (``n_iS`` = the user's
    ratings among the items ``S``, chosen from released counts; μ, c released). ``b_i`` is the user's own local
    bias ``Σ_j (r_ij − μ − c_j)/(n_i + λ_b)`` under the user unit and **0** under the rating unit (where it
    would carry one rating into every residual of its user).

    User unit: removing user ``i`` removes exactly ``T_i = triu⁺(x_i x_iᵀ)``:
    ``‖T_i‖² = Σ_{j<l} x_j² x_l² = ((Σ x_j²)² − Σ x_j⁴)/2 ≤ ‖x_i‖⁴/2`` and ``‖x_i‖² ≤ min(n_iS, k) B² ≤ k B²``,
    so ``Δ = k B²/√2`` (nearly attained by a user with many ratings, all clipped: ``Σ x⁴`` is then ``k B⁴/n``).

    Rating unit: adding a rating outside ``S`` changes nothing (no local bias). Adding one inside ``S`` to a
    user with ``n = n_iS`` ratings there, with residuals ``e`` (``Q = Σ e_j² ≤ n B²``) and the new residual
    ``e*``, turns ``x = w e`` into ``x' = (w' e, w' e*)``; the strict upper triangle changes on the old pairs by
    ``(w² − w'²) e_j e_l`` and gains the pairs ``w'² e_j e*``:
    ``‖ΔT‖² = (w² − w'²)² (Q² − Σ e⁴)/2 + w'⁴ e*² Q``.

    * ``n + 1 ≤ k``: ``w = w' = 1``, ``‖ΔT‖² = e*² Q ≤ (k − 1) B⁴`` (``n ≤ k − 1``);
    * ``n ≥ k``: ``w² − w'² = k/(n(n+1))``, so ``‖ΔT‖² ≤ k² B⁴ (n + ½)/(n + 1)²``, decreasing in ``n``:
      at most ``k² (k + ½)/(k + 1)² · B⁴``.

    ``Δ = B² · √max(k − 1, k²(k + ½)/(k + 1)²)`` — for ``k ≥ 3`` that is ``√(k − 1) B²``, attained exactly by a
    user with ``k − 1`` clipped ratings in ``S`` gaining a ``k``-th. One rating thus costs ``√k B²`` where a
    user costs ``k B²/√2``; the protected unit no longer pays for its whole user.
    """

    name: ClassVar[str] = "spectral_moment"
    what: ClassVar[str] = "strict upper triangle of the residual second moment of the top items"

    k: int = 10
    bound: float = 0.5
    n_selected: int = 0

    def sensitivity(self) -> float:
        k, b2 = float(self.k), self.bound**2
        if self.unit == "rating":
            return b2 * math.sqrt(max(k - 1.0, k * k * (k + 0.5) / (k + 1.0) ** 2))
        return k * b2 / math.sqrt(2.0)

    def size(self, n_items: int) -> int:
        m = min(self.n_selected, n_items)
        return m * (m - 1) // 2

    def statistic(self, X: sp.csr_matrix, *, mu: float, item_bias, items, bias_reg: float) -> np.ndarray:
        C = self.matrix(X, mu=mu, item_bias=item_bias, items=items, bias_reg=bias_reg)
        return C[np.triu_indices(C.shape[0], 1)]

    def matrix(self, X: sp.csr_matrix, *, mu: float, item_bias, items, bias_reg: float) -> np.ndarray:
        """The exact ``C`` (``M × M``, zero diagonal, float64), with each user's own local bias
        ``b_i = Σ_j (r_ij − μ − c_j) / (n_i + λ_b)`` removed (``λ_b`` = ``bias_reg``) under the user unit; under the
        rating unit ``b_i = 0`` (``bias_reg`` is ignored)."""
        items = np.asarray(items, dtype=np.int64)
        if self.unit == "rating":
            bias_reg = math.inf  # Σ_j (…)/(n_i + ∞) = 0 exactly in float64: no local bias (class docstring)
        if X.has_sorted_indices and len(np.unique(items)) == len(items):  # the models' case: one fused pass
            return K.spectral_moment(X.indptr, X.indices, X.data, mu, item_bias, items, bias_reg, self.bound, self.k)
        n_u = np.diff(X.indptr)
        t = X.data - mu - np.asarray(item_bias)[X.indices]
        user_bias = segment_sums(t, X.indptr) / (n_u + bias_reg)
        e = t - np.repeat(user_bias, n_u)
        E = sp.csr_matrix((np.clip(e, -self.bound, self.bound), X.indices, X.indptr), shape=X.shape)[:, items].tocsr()
        w = np.minimum(1.0, np.sqrt(self.k / np.maximum(np.diff(E.indptr), 1)))
        E = sp.diags(w) @ E
        C = np.asarray((E.T @ E).todense(), dtype=np.float64)
        np.fill_diagonal(C, 0.0)
        return C


@dataclass(frozen=True)
class FactorStats(Release):
    """DP-ALS's per-iteration item statistics: per item the upper triangle (diagonal included) of
    ``A_j = Σ_i w_ij ũ_i ũ_iᵀ`` and ``b_j = Σ_i w_ij e_ij ũ_i``, stacked over items.

    ``ũ_i = [u_i · min(1, Γ/‖u_i‖); 1]`` (so ``‖ũ_i‖² ≤ Γ² + 1`` in the arithmetic the kernels run),
    ``e_ij = clip(r_ij − μ − b_i − c_j, −B, B)``, user-level weights ``Σ_j w_ij² ≤ k``.

    User unit: other users' factors depend on user ``i`` only through released item factors (joint DP), so
    removing user ``i`` removes exactly its terms; ``‖triu(ũũᵀ)‖ ≤ ‖ũ‖² ≤ Γ² + 1`` and ``‖e ũ‖ ≤ B √(Γ² + 1)``:
    ``‖Δ‖² ≤ Σ_j w_ij² (Γ² + 1)(Γ² + 1 + B²) ≤ k (Γ² + 1)(Γ² + 1 + B²)``, so
    ``Δ = √k √(Γ² + 1) √(Γ² + 1 + B²)``.

    Rating unit: one rating changes its user's solved factor and weights and so *all* of that user's terms, but
    the user's whole weighted contribution has norm ≤ the user-level bound ``C`` before and after, so the
    change is ≤ 2C: ``Δ = 2C`` (the user-level weights are used under both units).
    """

    name: ClassVar[str] = "factor_stats"
    what: ClassVar[str] = "stacked (upper-tri A_j, b_j) per iteration"

    k: int = 1
    residual_bound: float = 1.5
    clip_norm: float = 1.0
    factors: int = 8
    iterations: int = 1
    contribution: str = "weight"

    @property
    def count(self) -> int:
        return self.iterations

    def item_major_weights(self, X: sp.csr_matrix, rng=None, *, item_major_users=None) -> np.ndarray:
        """The user-level contribution weights (under both units), ordered like the item-major CSR.

        ``item_major_users``: the user of each item-major entry (``item_major(X)[0].indices``), when the caller
        has it; deterministic weights are then a gather of the per-user weights (the same values). Float32,
        rounded toward zero (:func:`kernel_weights`)."""
        from ._biased_als import item_major_weights

        if self.contribution == "weight" and item_major_users is not None:
            return kernel_weights(user_weights(np.diff(X.indptr), self.k))[item_major_users]

        w = contribution_weights(X, self.k, privacy_unit="user", method=self.contribution, rng=rng)
        return item_major_weights(X, kernel_weights(w))

    def statistic(
        self, X: sp.csr_matrix, *, item_factors, mu: float, item_bias, user_reg: float, bias_reg: float, rng=None
    ) -> np.ndarray:
        """The released vector of one iteration given the released item side ``(μ, c, V)``: every user solves
        ``[u; b]`` locally, then :func:`dprec.models._biased_als.item_statistics` — the engine's own code path."""
        from . import _biased_als as E

        Xt, item_t = E.item_major(X)
        Ub = E.UserSolver(X, item_factors.shape[1], user_reg, bias_reg)(mu, item_factors, np.asarray(item_bias, float))
        A, b = E.item_statistics(
            Xt,
            item_t,
            mu,
            Ub,
            np.asarray(item_bias, float),
            self.item_major_weights(X, rng),
            residual_bound=self.residual_bound,
            clip_norm=self.clip_norm,
        )
        return self.pack(A, b)

    def sensitivity(self) -> float:
        g2 = self.clip_norm**2 + 1.0
        c = math.sqrt(self.k) * math.sqrt(g2) * math.sqrt(g2 + self.residual_bound**2)
        return 2.0 * c if self.unit == "rating" else c

    def size(self, n_items: int) -> int:
        k1 = self.factors + 1
        return n_items * (k1 * (k1 + 1) // 2 + k1)

    @staticmethod
    def pack(A: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The released vector of the reduced statistics: per item the row-major upper triangle of ``A_j``
        (diagonal included), then all ``b_j``."""
        iu = np.triu_indices(A.shape[1])
        return np.concatenate([A[:, iu[0], iu[1]].ravel(), b.ravel()])

    @staticmethod
    def unpack(vec: np.ndarray, n_items: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`pack`: symmetric ``A`` (n, k1, k1) and ``b`` (n, k1)."""
        iu = np.triu_indices(k1)
        t = len(iu[0])
        tri = vec[: n_items * t].reshape(n_items, t)
        A = np.zeros((n_items, k1, k1))
        A[:, iu[0], iu[1]] = tri
        A[:, iu[1], iu[0]] = tri
        return A, vec[n_items * t :].reshape(n_items, k1).copy()


@dataclass(frozen=True)
class ItemSelection(Release):
    """DP item selection without a public catalog: noisy L2-normalised weighted counts, released above a threshold.

    Input: the ratings bounded to ``n_i ≤ k`` items per user (``sample_per_user`` with the public cap ``k``, a
    sample only for users above it; one row per rating under the rating unit, ``k = 1``). User ``i`` gives
    weight ``1/√n_i`` to each of its ``n_i`` items, so its weight vector has L2 norm exactly 1; no user's
    weight depends on another user. Adding or removing user ``i`` changes, on the items present in both
    neighbours, ``≤ n_i`` coordinates by ``1/√n_i``: ``Δ = 1`` (attained when all its items are shared),
    ``ρ``-zCDP. Under the rating unit one rating changes one count by 1: ``Δ = 1``; changing a rating's value
    changes nothing. The ``≤ n_i`` items present only because of the extra user have count ``1/√n_i`` and pass
    ``τ = max_{1≤n≤k} [1/√n + σ Φ⁻¹(1 − δ_sel/n)]`` with total probability ``≤ n_i Φ̄((τ − 1/√n_i)/σ) ≤ δ_sel``
    (union bound): the mechanism is ``δ_sel``-approximate ``ρ``-zCDP (Bun & Steinke 2016, Def. 1.6), so it
    costs an extra ``δ_sel``, charged with it. See :func:`dprec.privacy.bounding.dp_item_selection`.

    DP-SIPS rounds (:func:`dprec.privacy.bounding.dp_sips_selection`): round ``r`` applies this statistic to
    :func:`~dprec.privacy.bounding.sips_round_matrix` — the rows without the items released in earlier rounds
    (public), then the cap — so each round has ``Δ = 1`` and its own ``(ρ_r, δ_r)``; the rounds compose to
    ``(Σρ_r, Σδ_r) = (ρ, δ_sel)``, the one-round cost.
    """

    name: ClassVar[str] = "item_selection"
    what: ClassVar[str] = "noisy L2-normalised weighted counts of the items present, thresholded"
    extra_delta: ClassVar[bool] = True

    k: int = 1

    def sensitivity(self) -> float:
        return 1.0

    def size(self, n_items: int) -> int:
        return n_items

    def statistic(self, Xs: sp.csr_matrix) -> np.ndarray:
        """Weighted counts of every column of the already bounded ``Xs`` (the present items are those > 0).

        User unit: row ``i`` weighs ``1/√n_i``. Rating unit: every rating weighs 1 (one row per rating)."""
        from ..privacy.bounding import weighted_item_counts

        Xs = sp.csr_matrix(Xs)
        if self.unit == "rating":
            return np.bincount(Xs.indices, minlength=Xs.shape[1]).astype(np.float64)
        return weighted_item_counts(Xs)


@dataclass(frozen=True)
class ItemCooccurrence(Release):
    """The upper triangle, diagonal included, of ``G = Σ_u x_u x_uᵀ`` over the ``M`` selected items (DP item-item).

    ``x_u = w_u · 1[u interacted with j]`` on the items ``S`` (chosen from released counts, held fixed), with
    ``w_u = min(1, √(k / n_uS))`` and ``n_uS`` the user's number of interactions among ``S``. Every entry of
    ``x_u`` equals ``w_u`` on the user's ``n = n_uS`` items, so ``‖x_u‖² = min(n, k)`` and ``Σ_a x_a⁴ = ‖x_u‖⁴/n``.

    User unit: removing user ``u`` removes exactly ``T_u = triu(x_u x_uᵀ)``, and
    ``‖T_u‖² = Σ_{a≤b} x_a² x_b² = (‖x‖⁴ + Σ_a x_a⁴)/2 = min(n, k)² (1 + 1/n)/2``. For ``n ≤ k`` this is
    ``n(n + 1)/2``, increasing in ``n``; for ``n > k`` it is ``k²(1 + 1/n)/2 < k(k + 1)/2``. So
    ``Δ = √(k(k + 1)/2)`` (≤ ``‖x‖² ≤ k``), attained exactly by a user with ``k`` interactions among ``S``
    (for ``k = 1``: one interaction, ``Δ = 1``).

    Rating unit (same user-level weights): adding or removing one interaction of a user who then has ``n``
    resp. ``n − 1`` interactions in ``S`` (an interaction outside ``S`` changes nothing). For ``n ≤ k`` the
    weights stay 1 and the change is the ``n`` entries ``(j, b)`` of the removed item ``j``: ``‖·‖² = n ≤ k``.
    For ``n > k`` the ``n`` entries involving ``j`` change by ``k/n`` and the ``n(n − 1)/2`` others by
    ``k/(n − 1) − k/n`` (``n − 1 ≥ k``): ``‖·‖² = k²/n + k²/(2n(n − 1)) < k`` (at ``n = k + 1`` it is
    ``k(2k + 1)/(2k + 2)``, and it decreases in ``n``). So ``Δ = √k``, attained by removing one interaction of a
    user with exactly ``k``. (The generic argument — old and new user terms each ≤ the user bound — would give
    ``2√(k(k + 1)/2)``; the exact bound is proved here and measured in ``tests/privacy/test_releases.py``.)
    Changing a rating's value does not change the binary statistic.
    """

    name: ClassVar[str] = "item_cooccurrence"
    what: ClassVar[str] = "upper triangle (with diagonal) of the weighted co-occurrence of the top items"

    k: int = 20
    n_selected: int = 0

    def sensitivity(self) -> float:
        if self.unit == "rating":
            return math.sqrt(self.k)
        return math.sqrt(self.k * (self.k + 1) / 2.0)

    def size(self, n_items: int) -> int:
        m = min(self.n_selected, n_items)
        return m * (m + 1) // 2

    def statistic(self, X: sp.csr_matrix, *, items) -> np.ndarray:
        G = self.matrix(X, items=items)
        return G[np.triu_indices(G.shape[0])]

    def matrix(self, X: sp.csr_matrix, *, items, weighted: bool = True) -> np.ndarray:
        """The exact ``G`` (``M × M``, float64) of the binarised ``X`` on ``items`` (unweighted if not ``weighted``)."""
        items = np.asarray(items, dtype=np.int64)
        Xb = sp.csr_matrix((np.ones(X.nnz), X.indices, X.indptr), shape=X.shape)[:, items].tocsr()
        Xb.sum_duplicates()
        Xb.data[:] = 1.0
        if weighted:
            w = np.minimum(1.0, np.sqrt(self.k / np.maximum(np.diff(Xb.indptr), 1)))
            Xb = sp.diags(w) @ Xb
        return np.asarray((Xb.T @ Xb).todense(), dtype=np.float64)

    @staticmethod
    def unpack(vec: np.ndarray, m: int) -> np.ndarray:
        """The symmetric ``M × M`` matrix from its released upper triangle (row-major, diagonal included)."""
        G = np.zeros((m, m))
        iu = np.triu_indices(m)
        G[iu] = vec
        G[(iu[1], iu[0])] = vec
        return G


# ---------------------------------------------------------------------------------------------- DP implicit ALS
#: the contribution-bounding methods of DP implicit ALS (:func:`implicit_weights`)
IMPLICIT_BOUNDING = ("uniform", "least-popular", "adaptive")


def implicit_weights(
    X: sp.csr_matrix, k: int, *, method: str, counts=None, power: float = -0.5, rng=None
) -> np.ndarray:
    """Per-interaction weights ``ω_uj`` (aligned with ``X.data``) with ``Σ_j ω_uj² ≤ k`` for every user.

    A user's weights depend only on that user's own row and on the released DP counts ``ñ`` (``counts``), so
    removing a user removes exactly its weighted terms (:class:`ImplicitItemStats`).

    * ``"uniform"`` — keep ``min(k, n_u)`` of the user's items, uniformly at random (``rng``), weight 1;
    * ``"least-popular"`` — keep the user's ``k`` items with the smallest DP counts (ties at random), weight 1:
      rare items, whose statistics are the noisiest, keep every user they have (Chien et al. 2021, §5);
    * ``"adaptive"`` — every item, ``ω_uj = q_uj · min(1/max_l q_ul, √k/‖q_u‖)`` with ``q_uj = max(ñ_j, 1)^power``:
      the shape ``ñ_j^μ`` (μ = ``power``), scaled so that no weight exceeds 1 and ``Σ_j ω_uj² ≤ k``. ``power = 0``
      is the uniform down-weighting ``min(1, √(k/n_u))`` of :func:`contribution_weights`.
    """
    n_u = np.diff(X.indptr)
    rows = np.repeat(np.arange(X.shape[0]), n_u)
    if method == "adaptive":
        if counts is None:
            raise ValueError('bounding="adaptive" needs the DP item counts')
        q = np.maximum(np.asarray(counts, np.float64)[X.indices], 1.0) ** float(power)
        qmax = np.zeros(X.shape[0])
        np.maximum.at(qmax, rows, q)
        qn = np.sqrt(segment_sums(q * q, X.indptr))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.minimum(1.0 / qmax, math.sqrt(k) / qn)
        s[~np.isfinite(s)] = 0.0
        w = q * s[rows]
        # the float64 rounding of the scaling could put Σω² a few ulps above k: shrink those users by the excess
        tot = segment_sums(w * w, X.indptr)
        over = tot > k
        if over.any():
            fix = np.ones(X.shape[0])
            fix[over] = np.sqrt(k / tot[over]) * (1.0 - 1e-12)
            w *= fix[rows]
        return w
    if method not in ("uniform", "least-popular"):
        raise ValueError(f"bounding must be one of {IMPLICIT_BOUNDING}, got {method!r}")
    if rng is None:
        raise ValueError(f'bounding="{method}" needs a random stream (ties and samples)')
    key = rng.random(X.nnz)
    if method == "least-popular":
        if counts is None:
            raise ValueError('bounding="least-popular" needs the DP item counts')
        order = np.lexsort((key, np.asarray(counts, np.float64)[X.indices], rows))
    else:
        order = np.lexsort((key, rows))
    rank = np.empty(X.nnz, np.int64)
    rank[order] = np.arange(X.nnz) - np.repeat(X.indptr[:-1], n_u)
    return (rank < k).astype(np.float64)


@dataclass(frozen=True)
class ImplicitGramian(Release):
    """DP implicit ALS's global Gramian per iteration: the upper triangle (diagonal included) of
    ``G = Σ_u ū_u ū_uᵀ`` with ``ū_u = u_u · min(1, Γ/‖u_u‖)`` (:func:`dprec.models._biased_als.clip_rows`, so
    ``‖ū_u‖ ≤ Γ`` holds exactly for the values that enter the sum). It carries the unobserved-item term of the
    item solve (Hu, Koren & Volinsky's ``YᵀY``; Chien et al. 2021).

    User unit: each user's factor is solved from the released item factors and the user's own row (joint DP),
    so removing user ``u`` removes exactly ``T = triu(ū ūᵀ)``: ``‖T‖² = (‖ū‖⁴ + Σ_a ū_a⁴)/2 ≤ ‖ū‖⁴ ≤ Γ⁴``, so
    ``Δ = Γ²``, attained by a clipped user factor along a coordinate axis.

    Rating unit: one rating moves its user's factor anywhere in the Γ-ball: ``M = ūūᵀ − ū'ū'ᵀ`` has
    ``‖M‖_F² = ‖ū‖⁴ + ‖ū'‖⁴ − 2(ū·ū')² ≤ 2Γ⁴`` and ``‖triu(M)‖ ≤ ‖M‖_F``: ``Δ = √2 Γ²``.
    """

    name: ClassVar[str] = "implicit_gramian"
    what: ClassVar[str] = "upper triangle of Σ_u ū_u ū_uᵀ (clipped user factors), per iteration"

    clip_norm: float = 1.0
    factors: int = 8
    iterations: int = 1

    @property
    def count(self) -> int:
        return self.iterations

    def sensitivity(self) -> float:
        g2 = self.clip_norm**2
        return math.sqrt(2.0) * g2 if self.unit == "rating" else g2

    def size(self, n_items: int) -> int:
        return self.factors * (self.factors + 1) // 2

    def from_user_factors(self, U: np.ndarray) -> np.ndarray:
        """The released vector from the (unclipped) user factors ``U`` (clipped here, float64 sum)."""
        from ..kernels import als as K
        from ._biased_als import clip_rows

        Uc = clip_rows(U, self.clip_norm, np.empty_like(U))
        G = K.gram(Uc)
        return G[np.triu_indices(G.shape[0])]

    def statistic(self, X: sp.csr_matrix, *, item_factors, alpha: float, regularization: float, values=None):
        """Every user solves against the released ``item_factors`` (:func:`dprec.models.dpimplicit.user_solve`,
        the model's own code path), then :meth:`from_user_factors`."""
        from .dpimplicit import user_solve

        U = user_solve(X, item_factors, alpha=alpha, regularization=regularization, values=values)
        return self.from_user_factors(U)

    @staticmethod
    def unpack(vec: np.ndarray, d: int) -> np.ndarray:
        """The symmetric ``d × d`` matrix from its released upper triangle (row-major, diagonal included)."""
        G = np.zeros((d, d))
        iu = np.triu_indices(d)
        G[iu] = vec
        G[(iu[1], iu[0])] = vec
        return G


@dataclass(frozen=True)
class ImplicitItemStats(Release):
    """DP implicit ALS's per-item statistics per iteration, over the head items ``H`` (chosen from released
    counts, held fixed): the upper triangle (diagonal included) of ``A_j = Σ_u ω_uj α p_uj ū_u ū_uᵀ`` and
    ``b_j = Σ_u ω_uj (1 + α p_uj) ū_u``, stacked over ``H`` (:meth:`FactorStats.pack` layout).

    ``p_uj ∈ [0, P]`` is the interaction's value (1 when binarised; else clipped to ``P``, the public upper
    rating bound), ``α`` the confidence slope (Hu, Koren & Volinsky: confidence ``1 + α p``), ``ū_u`` the user
    factor clipped to ``‖ū_u‖ ≤ Γ`` and ``ω_uj`` the contribution weights of :func:`implicit_weights`
    (``Σ_j ω_uj² ≤ k``).

    User unit: other users' factors depend on user ``u`` only through released item factors (joint DP), so
    removing ``u`` removes exactly its terms. Per item, ``‖triu(ūūᵀ)‖ ≤ ‖ū‖² ≤ Γ²`` and ``‖ū‖ ≤ Γ``:
    ``‖Δ‖² ≤ Σ_j ω_uj² (α² P² Γ⁴ + (1 + αP)² Γ²) ≤ k Γ² (α² P² Γ² + (1 + αP)²)``, so
    ``Δ = √k Γ √(α²P²Γ² + (1 + αP)²)``, attained by a user with ``Σ ω² = k``, every value at ``P`` and a clipped
    factor along a coordinate axis.

    Rating unit: one rating changes its user's factor and weights and so all of its terms, but the user's whole
    contribution is ≤ the user-level bound ``C`` before and after: ``Δ = 2C`` (user-level weights under both).
    """

    name: ClassVar[str] = "implicit_item_stats"
    what: ClassVar[str] = "stacked (upper-tri A_j, b_j) of the head items, per iteration"

    k: int = 20
    alpha: float = 1.0
    value_bound: float = 1.0
    clip_norm: float = 1.0
    factors: int = 8
    iterations: int = 1
    n_head: int = 0

    @property
    def count(self) -> int:
        return self.iterations

    def sensitivity(self) -> float:
        g, a, p = self.clip_norm, self.alpha, self.value_bound
        c = math.sqrt(self.k) * g * math.sqrt(a * a * p * p * g * g + (1.0 + a * p) ** 2)
        return 2.0 * c if self.unit == "rating" else c

    def size(self, n_items: int) -> int:
        d = self.factors
        return min(self.n_head, n_items) * (d * (d + 1) // 2 + d)

    def from_user_factors(self, X: sp.csr_matrix, U: np.ndarray, *, weights, items, values=None) -> np.ndarray:
        """The released vector from the (unclipped) user factors ``U``, the weights ``ω`` (aligned with
        ``X.data``) and the head items (sorted): the model's own kernels (:func:`dprec.models.dpimplicit.head_stats`)."""
        from ._biased_als import clip_rows
        from .dpimplicit import head_stats

        Uc = clip_rows(U, self.clip_norm, np.empty_like(U))
        A, b = head_stats(X, Uc, weights, items, alpha=self.alpha, values=values)
        return FactorStats.pack(A, b)

    def statistic(
        self, X: sp.csr_matrix, *, item_factors, regularization: float, weights, items, values=None
    ) -> np.ndarray:
        """Every user solves against the released ``item_factors``, then :meth:`from_user_factors`."""
        from .dpimplicit import user_solve

        U = user_solve(X, item_factors, alpha=self.alpha, regularization=regularization, values=values)
        return self.from_user_factors(X, U, weights=weights, items=items, values=values)


# ---------------------------------------------------------------------------------------------- DP-SGD (appended)
@dataclass(frozen=True)
class ClippedItemGradient(Release):
    """One DP-SGD step: ``G = Σ_g clip_C(∇_θ ½ Σ_{j∈g} e_gj²)`` over the groups ``g`` of a Poisson batch.

    ``θ = [V, c]`` are the item factors and item biases (``n_items × (d+1)``, flattened); for a group ``g`` (a
    sampled user under the user unit; one user's sampled ratings under the rating unit) the user side
    ``[u_g; b_g]`` is solved from the current (released) ``θ`` and the group's own ratings only, the residuals
    are ``e_gj = r_gj − μ − c_j − b_g − u_gᵀ v_j`` and the group's gradient ``−e_gj [u_g; 1]`` on the rated
    items is clipped to L2 norm ``C`` (:func:`dprec.kernels.sgd.clipped_item_gradient`).

    Sensitivity (the batch is fixed; sampling is accounted by the DP-SGD accountant)
    -------------------------------------------------------------------------------
    * User unit: removing sampled user ``i`` removes its group, and no other group depends on user ``i``
      (every other group's user solve reads only ``θ``, already released, and its own ratings):
      ``‖G − G'‖ = ‖clip_C(g_i)‖ ≤ C``, attained by any user whose raw gradient norm exceeds ``C``.
    * Rating unit: removing a sampled rating ``(i, j)`` changes only user ``i``'s group (its user solve uses only
      its *sampled* ratings, so an unsampled rating changes nothing): ``G − G' = clip_C(g_i) − clip_C(g'_i)``,
      ``‖·‖ ≤ 2C`` by the triangle inequality (``C`` when ``(i, j)`` was the group's only rating). Since the
      privacy loss of the Poisson-subsampled Gaussian depends only on ``Δ/σ``, the accountant is run with the
      effective noise multiplier ``σ / Δ``.
    """

    name: ClassVar[str] = "sgd_item_gradient"
    what: ClassVar[str] = "summed per-unit clipped gradient of the item parameters [V, c]"

    clip_norm: float = 1.0
    factors: int = 8
    user_regularization: float = 0.1
    bias_regularization: float = 10.0
    steps: int = 1

    @property
    def count(self) -> int:
        return self.steps

    def sensitivity(self) -> float:
        return (1.0 if self.unit == "user" else 2.0) * self.clip_norm

    def size(self, n_items: int) -> int:
        return n_items * (self.factors + 1)

    def sample_batch(self, X: sp.csr_matrix, rate: float, rng) -> sp.csr_matrix:
        """The Poisson batch: every unit (user, or rating) kept independently with probability ``rate``.

        Returns a CSR matrix of the same shape whose non-empty rows are the batch's groups.
        """
        if self.unit == "user":
            keep = rng.random(X.shape[0]) < rate
            return sp.csr_matrix(sp.diags(keep.astype(X.dtype)) @ X)
        keep = rng.random(X.nnz) < rate
        # by structure, not by value: a rating may be 0 on other scales
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[keep]
        return sp.csr_matrix((X.data[keep], (rows, X.indices[keep])), shape=X.shape)

    def statistic(self, Xb: sp.csr_matrix, *, item_factors, item_bias, mu: float) -> np.ndarray:
        """``G`` flattened (``n_items·(d+1)``, row-major: item ``j``'s ``[v_j; c_j]``) for the batch ``Xb``."""
        from ..kernels.sgd import clipped_item_gradient, gradient_parts

        Xb = sp.csr_matrix(Xb)
        G, _ = clipped_item_gradient(
            Xb.indptr.astype(np.int64),
            Xb.indices.astype(np.int64),
            Xb.data.astype(np.float64),
            np.ascontiguousarray(item_factors, dtype=np.float64),
            np.ascontiguousarray(item_bias, dtype=np.float64),
            float(mu),
            float(self.user_regularization),
            float(self.bias_regularization),
            float(self.clip_norm),
            gradient_parts(item_factors.shape[0], item_factors.shape[1]),
        )
        return G.ravel()
