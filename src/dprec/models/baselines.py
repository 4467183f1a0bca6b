"""DP baselines: DP global effects (McSherry & Mironov 2009) and DP popularity.

Every DP model must beat these at the epsilons where it claims to be useful.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ._dp import DPModelMixin
from .base import Recommender, register_model
from .releases import GlobalMean, ItemBiases, ItemCounts, segment_sums

__all__ = ["DPGlobalEffects", "DPPopularity", "bias_releases", "release_biases", "local_user_biases", "default_k"]


#: default clip B of the centred residuals in the DP item biases: best of {0.5, 1, 1.5, 2} in 19 of 20 synthetic
#: cells (ε from 0.5 to 10, four shapes; docs/tuning.md). An earlier ε < 2 → 1.0 branch, tuned on MovieLens-100K,
#: did not hold up on synthetic data and was dropped.
BIAS_RESIDUAL_BOUND = 1.5


def default_k(epsilon: float) -> int:
    """Default ``max_ratings_per_user``: 20. Tuned on MovieLens-100K (flat optimum for ε ∈ [1, 10] under
    weighting); the synthetic re-check in docs/tuning.md agrees within 0.001 RMSE."""
    return 20


def bias_releases(*, unit: str, k: int, rating_bounds, residual_bound: float, user_reg: float, contribution: str,
                  share: float = 1.0, mean_share: float = 0.05) -> list:
    """The two releases of the DP global effects with their budget weights (``share`` of the fit in all).

    ``GlobalMean`` gets ``mean_share · share``, ``ItemBiases`` the rest of ``share``.
    """
    return [
        (GlobalMean(unit, k=k, rating_bounds=tuple(rating_bounds), contribution=contribution), mean_share * share),
        (ItemBiases(unit, k=k, residual_bound=residual_bound, user_reg=user_reg, contribution=contribution),
         (1 - mean_share) * share),
    ]


def release_biases(model, X: sp.csr_matrix, plan, *, prior_var: float, rng=None) -> tuple[float, np.ndarray, np.ndarray]:
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
    rel_mean, rel_items = model._releases["global_mean"], model._releases["item_biases"]
    lo, hi = rel_mean.rating_bounds
    mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    S, N = model._release(rel_mean, rel_mean.statistic(X, rng=rng), plan["global_mean"])
    mu = mid + float(np.clip(S / max(N, 1.0), -half, half))
    stats = model._release(rel_items, rel_items.statistic(X, mu=mu, rng=rng), plan["item_biases"])
    n_items = X.shape[1]
    Sj, Nj = stats[:n_items], stats[n_items:]
    sigma_items = plan.sigma("item_biases")
    B = rel_items.residual_bound
    denom = np.maximum(Nj, 0.0) + 1.0 / prior_var + sigma_items**2 / (np.maximum(Nj, 1.0) * prior_var)
    item_bias = np.clip(Sj / denom, -B, B)
    return mu, item_bias, np.maximum(Nj, 0.0)


def local_user_biases(X: sp.csr_matrix, mu: float, item_bias: np.ndarray, user_reg: float) -> np.ndarray:
    """Each user's bias from that user's own ratings and the released item side (free under joint DP).

    ``b_i = Σ_{j ∈ I_i} (r_ij − μ − c_j) / (|I_i| + λ_u)``.
    """
    n_u = np.diff(X.indptr)
    return segment_sums(X.data - mu - item_bias[X.indices], X.indptr) / (n_u + user_reg)


@register_model
class DPGlobalEffects(DPModelMixin, Recommender):
    """DP global effects: ``r̂_ij = clip(μ + b_i + c_j)`` with DP ``μ`` and ``c_j``, local ``b_i``.

    Parameters
    ----------
    epsilon, delta : float
        Target (ε, δ)-DP of the released item side. ``epsilon=math.inf`` gives the non-private estimator
        through the same code (no noise, no clipping of contributions).
    privacy_unit : {"user", "rating"}
    max_ratings_per_user : int, optional
        ``k``, the contribution bound (see :mod:`dprec.models._dp`). Default :func:`default_k`.
    residual_bound : float, optional
        ``B``, clip of centred residuals. Default :data:`BIAS_RESIDUAL_BOUND` = 1.5 (chosen on synthetic data at every ε;
        docs/tuning.md).
    prior_var : float
        ``τ²``, prior variance of item biases (shrinkage). Default 0.3.
    user_reg : float
        ``λ_u``, damping of local user biases. Default 10.
    mean_share : float
        Fraction of the budget spent on the global mean. Default 0.05.
    contribution : {"weight", "sample"}
        How user contributions are bounded (weighting keeps every rating; see :mod:`dprec.models._dp`).
    secure_noise : bool
        Pass every release through OpenDP's Gaussian measurement (refused above 100,000 entries).
    rng : None, seed or Generator
        ``None`` (default): noise from fresh OS entropy. A seed: reproducibility mode (a PrivacyWarning; the
        guarantee holds only while the seed stays secret and is never reused on the same data).
        Noise randomness.
    """

    def __init__(
        self,
        *,
        epsilon,
        delta=None,
        privacy_unit="user",
        max_ratings_per_user=None,
        residual_bound=None,
        prior_var=0.3,
        user_reg=10.0,
        mean_share=0.05,
        contribution="weight",
        secure_noise=False,
        num_threads=0,
        rng=None,
    ):
        super().__init__(num_threads=num_threads, rng=rng)
        self._init_privacy(epsilon, delta, privacy_unit, secure_noise)
        self.max_ratings_per_user = max_ratings_per_user
        self.residual_bound = residual_bound
        self.prior_var = _positive(prior_var, "prior_var")
        self.user_reg = _positive(user_reg, "user_reg", allow_zero=True)
        if not 0 < mean_share < 1:
            raise ValueError(f"mean_share must be in (0, 1), got {mean_share!r}")
        self.mean_share = float(mean_share)
        if contribution not in ("weight", "sample"):
            raise ValueError(f'contribution must be "weight" or "sample", got {contribution!r}')
        self.contribution = contribution

    def get_params(self) -> dict:
        return {
            **super().get_params(),
            "epsilon": self.epsilon,
            "delta": self.delta,
            "privacy_unit": self.privacy_unit,
            "max_ratings_per_user": self.max_ratings_per_user,
            "residual_bound": self.residual_bound,
            "prior_var": self.prior_var,
            "user_reg": self.user_reg,
            "mean_share": self.mean_share,
            "contribution": self.contribution,
            "secure_noise": self.secure_noise,
        }

    # resolved hyperparameters ------------------------------------------------
    def _k(self) -> int:
        return int(self.max_ratings_per_user or default_k(self.epsilon))

    def _B(self) -> float:
        if self.residual_bound is not None:
            return float(self.residual_bound)
        return BIAS_RESIDUAL_BOUND

    def _fit(self, data, *, ledger=None):
        X = data.matrix
        k, B = self._k(), self._B()
        releases = bias_releases(unit=self.privacy_unit, k=k, rating_bounds=data.rating_bounds, residual_bound=B,
                                 user_reg=self.user_reg, contribution=self.contribution, mean_share=self.mean_share)
        self._item_mask = self._start_private_fit(data, [releases], ledger=ledger, k=k)
        if self.private:
            plan = self._plan_releases(releases, n_items=data.n_items)
            mu, c, counts = release_biases(self, X, plan, prior_var=self.prior_var,
                                           rng=self._noise.generator("contribution_sampling"))
        else:
            mu, c, counts = _nonprivate_biases(X, self.prior_var, self.user_reg)
        if self._item_mask is not None:  # unselected items carry no released information
            c, counts = np.where(self._item_mask, c, 0.0), np.where(self._item_mask, counts, 0.0)
        self.mu_, self.item_bias_, self.item_counts_ = mu, c, counts
        self.user_bias_ = local_user_biases(X, mu, c, self.user_reg)
        self._bounds = {"k": k, "residual_bound": B, "rating_bounds": data.rating_bounds, "contribution": self.contribution}

    def _bounds_report(self) -> dict:
        return dict(self._bounds, unit=self.privacy_unit)

    def _released_description(self) -> dict:
        return {"global_mean": "DP", "item_bias": "DP", "item_counts": "DP (noisy weighted counts)", "user_bias": "per-user, never released"}

    # serving -------------------------------------------------------------------
    def _clip(self, x):
        lo, hi = self.rating_bounds
        return np.clip(x, lo, hi)

    def _scores(self, rows):
        # unclipped for ranking (clipping would create ties at the rating bounds)
        return self._mask_unreleased(self.mu_ + self.user_bias_[rows][:, None] + self.item_bias_[None, :])

    def _predict(self, rows, cols):
        ub = np.where(rows >= 0, self.user_bias_[np.maximum(rows, 0)] if len(self.user_bias_) else 0.0, 0.0)
        return self._clip(self.mu_ + ub + self.item_bias_[cols])

    def _fallback_scores(self):
        return self._mask_unreleased(self.mu_ + self.item_bias_)

    def _fold_in(self, row, cols, vals):
        b = float(np.sum(vals - self.mu_ - self.item_bias_[cols]) / (len(vals) + self.user_reg))
        if row == len(self.user_bias_):
            self.user_bias_ = np.append(self.user_bias_, b)
        else:
            self.user_bias_[row] = b

    def _explain(self, row, col):
        s = slice(self._seen.indptr[row], self._seen.indptr[row + 1])
        cols, vals = self._seen.indices[s], self._seen.data[s]
        contrib = (vals - self.mu_ - self.item_bias_[cols]) / (len(vals) + self.user_reg)
        return cols, vals, contrib, self.mu_ + self.item_bias_[col]

    def _item_vectors(self):
        return None

    def _get_state(self):
        return {"mu": np.array(self.mu_), "item_bias": self.item_bias_, "item_counts": self.item_counts_, "user_bias": self.user_bias_, **_bounds_arrays(self)}

    def _set_state(self, s):
        self.mu_ = float(s["mu"])
        self.item_bias_, self.item_counts_, self.user_bias_ = s["item_bias"], s["item_counts"], s["user_bias"]
        _restore_bounds(self, s)

    def _public_state(self):
        m = self._released_item_mask()
        return {"mu": np.array(self.mu_), "item_bias": self.item_bias_[m], "item_counts": self.item_counts_[m], **_bounds_arrays(self)}

    def _from_public_state(self, s):
        self.mu_ = float(s["mu"])
        self.item_bias_, self.item_counts_ = s["item_bias"], s["item_counts"]
        self.user_bias_ = np.zeros(0)
        _restore_bounds(self, s)


def _nonprivate_biases(X, prior_var, user_reg):
    """ε = ∞: the same estimator without noise, clipping or contribution weighting."""
    n_u = np.diff(X.indptr)
    mu = float(X.data.mean())
    offset = segment_sums(X.data - mu, X.indptr) / (n_u + user_reg)
    e = X.data - mu - np.repeat(offset, n_u)
    Sj = np.bincount(X.indices, weights=e, minlength=X.shape[1])
    Nj = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    return mu, Sj / (Nj + 1.0 / prior_var), Nj


def _bounds_arrays(model) -> dict:
    b = model._bounds
    return {"__bounds_k": np.array(b["k"]), "__bounds_B": np.array(b["residual_bound"], dtype=float)}


def _restore_bounds(model, s):
    model._bounds = {
        "k": int(s.pop("__bounds_k")),
        "residual_bound": float(s.pop("__bounds_B")),
        "rating_bounds": model.rating_bounds,
        "contribution": model.contribution,
    }


def _positive(x, name, allow_zero=False):
    x = float(x)
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'≥' if allow_zero else '>'} 0, got {x!r}")
    return x


@register_model
class DPPopularity(DPModelMixin, Recommender):
    """DP popularity: items ranked by noisy (weighted) rating counts.

    Release: ``Ñ_j = Σ_i w_ij + N(0, σ²)`` with user weights ``Σ_j w_ij² ≤ k`` (L2 sensitivity ``√k``; ``1``
    under ``privacy_unit="rating"``). Every user gets the same ranking (minus their own seen items). It ranks;
    it does not predict ratings (``evaluate`` reports RMSE as NaN).
    """

    predicts_ratings = False

    def __init__(self, *, epsilon, delta=None, privacy_unit="user", max_ratings_per_user=None, secure_noise=False, num_threads=0, rng=None):
        super().__init__(num_threads=num_threads, rng=rng)
        self._init_privacy(epsilon, delta, privacy_unit, secure_noise)
        self.max_ratings_per_user = max_ratings_per_user

    def get_params(self):
        return {
            **super().get_params(),
            "epsilon": self.epsilon,
            "delta": self.delta,
            "privacy_unit": self.privacy_unit,
            "max_ratings_per_user": self.max_ratings_per_user,
            "secure_noise": self.secure_noise,
        }

    def _check_fit_data(self, data):
        """Popularity needs no rating bounds (it counts interactions)."""

    def _fit(self, data, *, ledger=None):
        X = data.matrix
        k = int(self.max_ratings_per_user or default_k(self.epsilon))
        release = ItemCounts(self.privacy_unit, k=k)
        self._item_mask = self._start_private_fit(data, [[(release, 1.0)]], ledger=ledger, k=k)
        if self.private:
            plan = self._plan_releases([(release, 1.0)], n_items=data.n_items)
            counts = self._release(release, release.statistic(X), plan["item_counts"])
        else:
            counts = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
        if self._item_mask is not None:
            counts = np.where(self._item_mask, counts, -np.inf)
        self.item_counts_ = counts
        self._bounds = {"k": k}

    def _bounds_report(self):
        return {"k": self._bounds["k"], "unit": self.privacy_unit}

    def _released_description(self):
        return {"item_counts": "DP (noisy weighted counts)"}

    def _scores(self, rows):
        return np.broadcast_to(self.item_counts_, (len(rows), len(self.item_counts_))).copy()

    def _predict(self, rows, cols):
        return self.item_counts_[cols].astype(np.float64)

    def _fallback_scores(self):
        return self.item_counts_.astype(np.float64)

    def _fold_in(self, row, cols, vals):
        pass  # the ranking is global; seen items are tracked by the base class

    def _explain(self, row, col):
        s = slice(self._seen.indptr[row], self._seen.indptr[row + 1])
        cols = self._seen.indices[s]
        return cols, self._seen.data[s], np.zeros(len(cols)), float(self.item_counts_[col])

    def _get_state(self):
        return {"item_counts": self.item_counts_, "__k": np.array(self._bounds["k"])}

    def _public_state(self):
        return {"item_counts": self.item_counts_[self._released_item_mask()], "__k": np.array(self._bounds["k"])}

    def _set_state(self, s):
        self.item_counts_ = s["item_counts"]
        self._bounds = {"k": int(s["__k"])}

    _from_public_state = _set_state
