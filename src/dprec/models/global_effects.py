"""Global effects ``r̂_ui = μ + b_u + c_i``: the shared bias layer of DPGlobalEffects, the biased-ALS engine and
DP-ALS (DP mean and item biases, their ε = ∞ estimator, and each user's local bias).

The releases themselves (statistic, sensitivity, proof) are :class:`~dprec.models.releases.GlobalMean` and
:class:`~dprec.models.releases.ItemBiases`; this module assembles and post-processes them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._blocks import user_sum
from .releases import GlobalMean, ItemBiases, segment_sums

__all__ = [
    "BIAS_RESIDUAL_BOUND",
    "default_k",
    "bias_releases",
    "release_biases",
    "release_mean",
    "release_item_biases",
    "nonprivate_biases",
    "local_user_biases",
]

#: default clip B of the centred residuals in the DP item biases (chosen on synthetic data; docs/tuning.md)
BIAS_RESIDUAL_BOUND = 1.5


#: what ``recommend()`` says once on an explicit-rating DP model (docs: README "For rankings use the DP ranker")
RATING_MODEL_RANKING_ADVICE = (
    "{name} is an explicit-rating model: on the committed top-N benchmark (ML-100K, per-user holdout) the "
    "explicit-rating DP models rank worse than DP popularity at every ε tested (NDCG@10 0.04–0.12 against "
    "0.18–0.21). For rankings use the default DP ranker DPRanker ('dp-ranker'), "
    "which picks DP item-item or DP popularity from ε and the DP user count."
)


def default_k(epsilon: float) -> int:
    """Default ``max_ratings_per_user``: 20 at every ε (docs/tuning.md)."""
    return 20


def bias_releases(
    *,
    unit: str,
    k: int,
    rating_bounds,
    residual_bound: float,
    bias_regularization: float,
    contribution: str,
    share: float = 1.0,
    mean_share: float = 0.05,
) -> list:
    """The two releases of the DP global effects with their budget weights (``share`` of the fit in all).

    ``GlobalMean`` gets ``mean_share · share``, ``ItemBiases`` the rest of ``share``. ``bias_regularization``
    (λ_b) damps the users' own offsets inside the item-bias statistic.
    """
    return [
        (GlobalMean(unit, k=k, rating_bounds=tuple(rating_bounds), contribution=contribution), mean_share * share),
        (
            ItemBiases(
                unit, k=k, residual_bound=residual_bound, user_reg=bias_regularization, contribution=contribution
            ),
            (1 - mean_share) * share,
        ),
    ]


def release_biases(
    model, X: sp.csr_matrix, plan, *, prior_var: float, rng=None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Release the DP global mean, item biases and item counts of ``model``'s planned bias releases.

    Mechanism
    ---------
    1. Mean: ``μ = m + clip(S̃/Ñ, −h, h)`` from the noisy :class:`~dprec.models.releases.GlobalMean` pair;
       ``m = (lo + hi)/2``, ``h = (hi − lo)/2``.
    2. The noisy :class:`~dprec.models.releases.ItemBiases` statistics ``(S̃_j, Ñ_j)`` (residuals centred by μ
       and, under the user unit, the user's own damped offset).
    3. Item bias, the posterior mean under a ``N(0, τ²)`` prior (τ² = ``prior_var``), unit residual variance
       and Gaussian release noise: ``c_j = S̃_j / (max(Ñ_j, 0) + 1/τ² + σ²/(max(Ñ_j, 1) τ²))``, clipped to
       ``[−B, B]``. The σ²-term shrinks rarely rated items, whose statistics are mostly noise. Post-processing.

    ``rng`` is the stream of ``contribution="sample"``. Returns ``(mu, item_bias, noisy_counts)``.
    """
    mu, _ = release_mean(model, X, plan["global_mean"], rng=rng)
    c, counts = release_item_biases(model, X, plan["item_biases"], mu=mu, prior_var=prior_var, rng=rng)
    return mu, c, counts


def release_mean(model, X: sp.csr_matrix, step, *, rng=None) -> tuple[float, float]:
    """Step 1 of :func:`release_biases`: ``(μ, Ñ)`` from the noisy :class:`~dprec.models.releases.GlobalMean` pair
    drawn with the plan ``step``. ``Ñ`` (the noisy weighted rating count; the rating count at the rating unit)
    is returned for rules that need it (post-processing)."""
    rel_mean = model._releases["global_mean"]
    lo, hi = rel_mean.rating_bounds
    mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    S, N = model._release(rel_mean, user_sum(rel_mean.statistic, X, rng=rng), step)
    return mid + float(np.clip(S / max(N, 1.0), -half, half)), float(N)


def release_item_biases(
    model, X: sp.csr_matrix, step, *, mu: float, prior_var: float, rng=None
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2–3 of :func:`release_biases`: ``(item_bias, noisy_counts)`` from the noisy
    :class:`~dprec.models.releases.ItemBiases` statistics drawn with the plan ``step``, given the released μ."""
    rel_items = model._releases["item_biases"]
    stats = model._release(rel_items, user_sum(rel_items.statistic, X, mu=mu, rng=rng), step)
    n_items = X.shape[1]
    Sj, Nj = stats[:n_items], stats[n_items:]
    sigma_items = step.sigma
    B = rel_items.residual_bound
    denom = np.maximum(Nj, 0.0) + 1.0 / prior_var + sigma_items**2 / (np.maximum(Nj, 1.0) * prior_var)
    return np.clip(Sj / denom, -B, B), np.maximum(Nj, 0.0)


def nonprivate_biases(X: sp.csr_matrix, prior_var: float, bias_regularization: float):
    """ε = ∞: the same estimator without noise, clipping or contribution weighting: ``(μ, c⁰, n_j)``.

    μ = mean rating; user offsets ``β_u = Σ_j (r_uj − μ)/(n_u + λ_b)``; item biases
    ``c⁰_j = Σ_u (r_uj − μ − β_u)/(n_j + 1/τ²)`` (τ² = ``prior_var``); ``n_j`` the item rating counts.
    """
    n_u = np.diff(X.indptr)
    mu = float(X.data.mean())
    offset = segment_sums(X.data - mu, X.indptr) / (n_u + bias_regularization)
    e = X.data - mu - np.repeat(offset, n_u)
    Sj = np.bincount(X.indices, weights=e, minlength=X.shape[1])
    Nj = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    return mu, Sj / (Nj + 1.0 / prior_var), Nj


def local_user_biases(X: sp.csr_matrix, mu: float, item_bias: np.ndarray, bias_regularization: float) -> np.ndarray:
    """Each user's bias from that user's own ratings and the released item side (free under joint DP).

    ``b_i = Σ_{j ∈ I_i} (r_ij − μ − c_j) / (|I_i| + λ_b)``.
    """
    n_u = np.diff(X.indptr)
    return segment_sums(X.data - mu - item_bias[X.indices], X.indptr) / (n_u + bias_regularization)
