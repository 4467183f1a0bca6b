"""DP baselines: DP global effects (McSherry & Mironov 2009) and DP popularity.

Every DP model must beat these at the epsilons where it claims to be useful. The global-effects estimator
itself (releases, post-processing, the ε = ∞ version) is :mod:`dprec.models.global_effects`, shared with
DP-ALS and the biased-ALS engine.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ._dp import DPModelMixin
from .base import Recommender, deprecated_alias
from .config import Int, PrivateConfig, Real
from .global_effects import (
    BIAS_RESIDUAL_BOUND,
    RATING_MODEL_RANKING_ADVICE,
    bias_releases,
    default_k,
    local_user_biases,
    nonprivate_biases,
    release_biases,
)
from .registry import register_model
from .releases import ItemCounts

__all__ = ["DPGlobalEffects", "DPPopularity", "DPGlobalEffectsConfig", "DPPopularityConfig"]

Contribution = Literal["weight", "sample"]
_K_HELP = "k, the per-user contribution bound (weighting; see dprec.models.releases); None = default_k(ε) = 20"


class DPGlobalEffectsConfig(PrivateConfig):
    """Parameters of :class:`DPGlobalEffects`."""

    deprecated_names = {"user_reg": "bias_regularization"}

    max_ratings_per_user: Int | None = Field(None, ge=1, description=_K_HELP)
    residual_bound: Real | None = Field(
        None, gt=0, description="B, clip of the centred residuals in the item biases; None = BIAS_RESIDUAL_BOUND = 1.5"
    )
    prior_var: Real = Field(0.3, gt=0, description="τ², prior variance of the item biases (shrinkage)")
    bias_regularization: Real = Field(
        10.0, ge=0, description="λ_b, damping of the users' bias offsets (b_u = Σ(r − μ − c)/(n_u + λ_b))"
    )
    mean_share: Real = Field(0.05, gt=0, lt=1, description="fraction of the budget spent on the global mean")
    contribution: Contribution = Field(
        "weight",
        description='how user contributions are bounded: "weight" keeps '
        'every rating, "sample" keeps k sampled ratings per user',
    )


@register_model("dp-baseline")
class DPGlobalEffects(DPModelMixin, Recommender):
    """DP global effects: ``r̂_ij = clip(μ + b_i + c_j)`` with DP ``μ`` and ``c_j``, local ``b_i``.

    Parameters (keyword-only; :class:`DPGlobalEffectsConfig` documents each)
    ----------
    epsilon, delta : float
        Target (ε, δ)-DP of the released item side. ``epsilon=math.inf`` gives the non-private estimator
        through the same code (no noise, no clipping of contributions).
    privacy_unit : {"user", "rating"}
    max_ratings_per_user : int, optional
        ``k``, the contribution bound (see :mod:`dprec.models.releases`). Default :func:`default_k`.
    residual_bound : float, optional
        ``B``, clip of centred residuals. Default :data:`~dprec.models.global_effects.BIAS_RESIDUAL_BOUND`.
    prior_var : float
        ``τ²``, prior variance of item biases (shrinkage). Default 0.3.
    bias_regularization : float
        ``λ_b``, damping of local user biases. Default 10. (Deprecated name: ``user_reg``.)
    mean_share : float
        Fraction of the budget spent on the global mean. Default 0.05.
    contribution : {"weight", "sample"}
        How user contributions are bounded (weighting keeps every rating).
    secure_noise : bool
        Pass every release through OpenDP's Gaussian measurement (refused above 100,000 entries).
    rng : None, seed or Generator
        ``None`` (default): noise from fresh OS entropy. A seed: reproducibility mode (a PrivacyWarning; the
        guarantee holds only while the seed stays secret and is never reused on the same data).

    Fitted attributes: ``global_mean_`` (μ), ``item_bias_``, ``item_counts_`` (DP), ``user_bias_`` (local).
    """

    is_private = True
    predicts_ratings = True
    feedback = "explicit"
    Config = DPGlobalEffectsConfig
    ranking_advice = RATING_MODEL_RANKING_ADVICE.format(name="DPGlobalEffects")

    def __init__(self, **params):
        super().__init__(**params)
        self._init_private_state()
        self.global_mean_ = self.item_bias_ = self.item_counts_ = self.user_bias_ = None
        self._bounds = None

    mu_ = deprecated_alias("global_mean_", "mu_")
    user_reg = deprecated_alias("bias_regularization", "user_reg")

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
        releases = bias_releases(
            unit=self.privacy_unit,
            k=k,
            rating_bounds=data.rating_bounds,
            residual_bound=B,
            bias_regularization=self.bias_regularization,
            contribution=self.contribution,
            mean_share=self.mean_share,
        )
        self._item_mask = self._start_private_fit(data, [releases], ledger=ledger)
        if self.private:
            plan = self._plan_releases(releases, n_items=data.n_items)
            mu, c, counts = release_biases(
                self, X, plan, prior_var=self.prior_var, rng=self._noise.generator("contribution_sampling")
            )
        else:
            mu, c, counts = nonprivate_biases(X, self.prior_var, self.bias_regularization)
        if self._item_mask is not None:  # unselected items carry no released information
            c, counts = np.where(self._item_mask, c, 0.0), np.where(self._item_mask, counts, 0.0)
        self.global_mean_, self.item_bias_, self.item_counts_ = mu, c, counts
        self.user_bias_ = local_user_biases(X, mu, c, self.bias_regularization)
        self._bounds = {
            "k": k,
            "residual_bound": B,
            "rating_bounds": data.rating_bounds,
            "contribution": self.contribution,
        }

    def _bounds_report(self) -> dict:
        return dict(self._bounds, unit=self.privacy_unit)

    def _released_description(self) -> dict:
        return {
            "global_mean": "DP",
            "item_bias": "DP",
            "item_counts": "DP (noisy weighted counts)",
            "user_bias": "per-user, never released",
        }

    # serving -------------------------------------------------------------------
    def _clip(self, x):
        lo, hi = self.rating_bounds_
        return np.clip(x, lo, hi)

    def _scores(self, rows):
        # unclipped for ranking (clipping would create ties at the rating bounds)
        return self._mask_unreleased(self.global_mean_ + self.user_bias_[rows][:, None] + self.item_bias_[None, :])

    def _predict(self, rows, cols):
        ub = np.where(rows >= 0, self.user_bias_[np.maximum(rows, 0)] if len(self.user_bias_) else 0.0, 0.0)
        return self._clip(self.global_mean_ + ub + self.item_bias_[cols])

    def _fallback_scores(self):
        return self._mask_unreleased(self.global_mean_ + self.item_bias_)

    def _reserve_users(self, n_new):
        self.user_bias_ = np.concatenate([self.user_bias_, np.zeros(n_new)])

    def _fold_in(self, row, cols, vals):
        b = float(np.sum(vals - self.global_mean_ - self.item_bias_[cols]) / (len(vals) + self.bias_regularization))
        if row == len(self.user_bias_):
            self.user_bias_ = np.append(self.user_bias_, b)
        else:
            self.user_bias_[row] = b

    def _explain(self, row, col):
        """Exact (before clipping): ``b_u = Σ_j (r_j − μ − c_j) / (n_u + λ)`` splits over the rated items, the
        same for every target item; the baseline is ``μ + c_i``."""
        s = slice(self._seen.indptr[row], self._seen.indptr[row + 1])
        cols, vals = self._seen.indices[s], self._seen.data[s]
        contrib = (vals - self.global_mean_ - self.item_bias_[cols]) / (len(vals) + self.bias_regularization)
        return cols, vals, contrib, self.global_mean_ + self.item_bias_[col]

    def _explain_baseline_words(self):
        return "the overall average rating and this item's average"

    def _item_vectors(self):
        return None

    def _get_state(self):
        return {
            "mu": np.array(self.global_mean_),
            "item_bias": self.item_bias_,
            "item_counts": self.item_counts_,
            "user_bias": self.user_bias_,
            **_bounds_arrays(self),
        }

    def _set_state(self, s):
        self.global_mean_ = float(s["mu"])
        self.item_bias_, self.item_counts_, self.user_bias_ = s["item_bias"], s["item_counts"], s["user_bias"]
        _restore_bounds(self, s)

    def _public_state(self):
        m = self._released_item_mask()
        return {
            "mu": np.array(self.global_mean_),
            "item_bias": self.item_bias_[m],
            "item_counts": self.item_counts_[m],
            **_bounds_arrays(self),
        }

    def _from_public_state(self, s):
        self.global_mean_ = float(s["mu"])
        self.item_bias_, self.item_counts_ = s["item_bias"], s["item_counts"]
        self.user_bias_ = np.zeros(0)
        _restore_bounds(self, s)


def _bounds_arrays(model) -> dict:
    b = model._bounds
    return {"__bounds_k": np.array(b["k"]), "__bounds_B": np.array(b["residual_bound"], dtype=float)}


def _restore_bounds(model, s):
    model._bounds = {
        "k": int(s.pop("__bounds_k")),
        "residual_bound": float(s.pop("__bounds_B")),
        "rating_bounds": model.rating_bounds_,
        "contribution": model.contribution,
    }


class DPPopularityConfig(PrivateConfig):
    """Parameters of :class:`DPPopularity`."""

    max_ratings_per_user: Int | None = Field(None, ge=1, description=_K_HELP)


@register_model("dp-popularity")
class DPPopularity(DPModelMixin, Recommender):
    """DP popularity: items ranked by noisy (weighted) rating counts.

    Release: ``Ñ_j = Σ_i w_ij + N(0, σ²)`` with user weights ``Σ_j w_ij² ≤ k`` (L2 sensitivity ``√k``; ``1``
    under ``privacy_unit="rating"``). Every user gets the same ranking (minus their own seen items). It ranks;
    it does not predict ratings (``evaluate`` reports RMSE as NaN). Parameters: :class:`DPPopularityConfig`.
    Fitted attribute: ``item_counts_``.
    """

    is_private = True
    predicts_ratings = False
    explain_uses_ratings = False
    feedback = "any"
    uses_threads = False  # numpy only: num_threads has no effect
    Config = DPPopularityConfig

    def __init__(self, **params):
        super().__init__(**params)
        self._init_private_state()
        self.item_counts_ = None
        self._bounds = None

    def _check_fit_data(self, data):
        """Popularity needs no rating bounds (it counts interactions)."""

    def _fit(self, data, *, ledger=None):
        self._item_mask = self._start_private_fit(data, self._private_candidates(data), ledger=ledger)
        self._fit_after_start(data)

    def _private_candidates(self, data):
        """The one release list (validated before the charge; a ranker fitting this model passes it too)."""
        k = int(self.max_ratings_per_user or default_k(self.epsilon))
        return [[(ItemCounts(self.privacy_unit, k=k), 1.0)]]

    def _fit_after_start(self, data):
        """The fit after :meth:`_start_private_fit` (item selection and ñ done, the ledger charged)."""
        X = data.matrix
        k = int(self.max_ratings_per_user or default_k(self.epsilon))
        release = ItemCounts(self.privacy_unit, k=k)
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

    def _explain_baseline_words(self):
        return "the item's overall popularity"

    def _get_state(self):
        return {"item_counts": self.item_counts_, "__k": np.array(self._bounds["k"])}

    def _public_state(self):
        return {"item_counts": self.item_counts_[self._released_item_mask()], "__k": np.array(self._bounds["k"])}

    def _set_state(self, s):
        self.item_counts_ = s["item_counts"]
        self._bounds = {"k": int(s["__k"])}

    _from_public_state = _set_state
