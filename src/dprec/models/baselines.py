"""DP baselines: DP global effects (McSherry & Mironov 2009) and DP popularity.

Every DP model must beat these at the epsilons where it claims to be useful.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from .._rng import as_generator
from ..privacy import accounting as acc
from ..privacy.noise import NoiseSource
from ._dp import DPModelMixin, contribution_weights
from .base import Recommender, register_model

__all__ = ["DPGlobalEffects", "DPPopularity", "release_biases", "local_user_biases", "default_k"]


def default_k(epsilon: float) -> int:
    """Default ``max_ratings_per_user``: 20 (flat optimum on MovieLens-100K for ε ∈ [1, 10] under weighting)."""
    return 20


def _mean_and_item_steps(k, half_range, residual_bound, privacy_unit):
    """Sensitivities (user-level, weighting; see :mod:`dprec.models._dp`).

    * mean: the pair ``(Σ w (r − m), Σ w)`` with scalar weights ``Σ_j w_ij ≤ k`` and ``|r − m| ≤ h``
      (``m``, ``h`` the public midpoint and half-range): ``Δ₂ = k √(h² + 1)``.
    * item statistics: the stacked vector ``(Σ_i w_ij e_ij, Σ_i w_ij)_j`` with ``Σ_j w_ij² ≤ k`` and
      ``|e| ≤ B``: ``Δ₂ = √k √(B² + 1)``.

    Under ``privacy_unit="rating"`` take ``k = 1`` (one rating changes one term of each).
    """
    kk = 1 if privacy_unit == "rating" else k
    return kk * math.sqrt(half_range**2 + 1.0), math.sqrt(kk) * math.sqrt(residual_bound**2 + 1.0)


def release_biases(
    X: sp.csr_matrix,
    *,
    rating_bounds,
    sigma_mean: float,
    sigma_items: float,
    k: int,
    residual_bound: float,
    prior_var: float,
    user_reg: float,
    privacy_unit: str,
    contribution: str,
    noise: NoiseSource,
    rng,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Release the DP global mean, item biases and item counts.

    Mechanism
    ---------
    1. Mean: ``μ = m + clip(S̃/Ñ, −h, h)`` with ``S = Σ w (r − m)``, ``N = Σ w`` (scalar weights), each plus
       ``N(0, σ_mean²)``; ``m = (lo + hi)/2``, ``h = (hi − lo)/2``.
    2. Residuals ``e_ij = clip(r_ij − μ − β_i, −B, B)`` with ``β_i = Σ_j (r_ij − μ)/(n_i + λ_u)`` the user's
       own damped offset (a per-user transformation of the user's own data, so it does not change the
       user-level sensitivity). Under ``privacy_unit="rating"`` ``β_i = 0``: the offset would let one rating
       move all of its user's residuals.
    3. Item statistics ``S_j = Σ_i w_ij e_ij`` and ``N_j = Σ_i w_ij`` plus ``N(0, σ_items²)`` each.
    4. Item bias, the posterior mean under a ``N(0, τ²)`` prior (τ² = ``prior_var``), unit residual variance
       and Gaussian release noise: ``c_j = S̃_j / (max(Ñ_j, 0) + 1/τ² + σ²/(max(Ñ_j, 1) τ²))``, clipped to
       ``[−B, B]``. The σ²-term shrinks rarely rated items, whose statistics are mostly noise. Post-processing.

    Returns ``(mu, item_bias, noisy_counts)``.
    """
    lo, hi = rating_bounds
    mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    indptr, idx, val = X.indptr, X.indices, X.data
    n_u = np.diff(indptr)
    n_items = X.shape[1]

    wm = contribution_weights(X, k, privacy_unit=privacy_unit, method=contribution, rng=rng, scalar=True)
    pair = np.array([np.sum(wm * (val - mid)), np.sum(wm)])
    S, N = noise.gaussian(pair, sigma_mean) if sigma_mean > 0 else pair
    mu = mid + float(np.clip(S / max(N, 1.0), -half, half))

    # The user's own offset β_i makes each residual depend on all of the user's ratings: harmless under
    # user-level DP (the user is the unit) but it would break the k = 1 bound under rating-level DP.
    offset = _segment_sums(val - mu, indptr) / (n_u + user_reg) if privacy_unit == "user" else np.zeros(len(n_u))
    e = np.clip(val - mu - np.repeat(offset, n_u), -residual_bound, residual_bound)
    w = contribution_weights(X, k, privacy_unit=privacy_unit, method=contribution, rng=rng)
    stats = np.concatenate([np.bincount(idx, weights=w * e, minlength=n_items), np.bincount(idx, weights=w, minlength=n_items)])
    if sigma_items > 0:
        stats = noise.gaussian(stats, sigma_items)
    Sj, Nj = stats[:n_items], stats[n_items:]
    denom = np.maximum(Nj, 0.0) + 1.0 / prior_var + sigma_items**2 / (np.maximum(Nj, 1.0) * prior_var)
    item_bias = np.clip(Sj / denom, -residual_bound, residual_bound)
    return mu, item_bias, np.maximum(Nj, 0.0)


def _segment_sums(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    out = np.zeros(len(indptr) - 1)
    nz = np.diff(indptr) > 0
    if nz.any():
        out[nz] = np.add.reduceat(values, indptr[:-1][nz])
    return out


def local_user_biases(X: sp.csr_matrix, mu: float, item_bias: np.ndarray, user_reg: float) -> np.ndarray:
    """Each user's bias from that user's own ratings and the released item side (free under joint DP).

    ``b_i = Σ_{j ∈ I_i} (r_ij − μ − c_j) / (|I_i| + λ_u)``.
    """
    n_u = np.diff(X.indptr)
    return _segment_sums(X.data - mu - item_bias[X.indices], X.indptr) / (n_u + user_reg)


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
        ``B``, clip of centred residuals. Default 1.0 for ε < 2, else 1.5 (tuned on ML-100K; public).
    prior_var : float
        ``τ²``, prior variance of item biases (shrinkage). Default 0.3.
    user_reg : float
        ``λ_u``, damping of local user biases. Default 10.
    mean_share : float
        Fraction of the budget spent on the global mean. Default 0.05.
    contribution : {"weight", "sample"}
        How user contributions are bounded (weighting keeps every rating; see :mod:`dprec.models._dp`).
    secure_noise : bool
        Draw the noise with OpenDP's samplers.
    rng : seed or Generator
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
        return 1.0 if self.epsilon < 2 else 1.5

    def _fit(self, data, *, ledger=None):
        X = data.matrix
        g = as_generator(self.rng)
        # one independent stream per step (selection/count, biases, factors): DP-ALS uses the same layout, so
        # with the same seed both models draw the same bias noise
        g_sel, g_bias = g.spawn(2)
        k, B = self._k(), self._B()
        lo, hi = data.rating_bounds
        d_mean, d_items = _mean_and_item_steps(k, (hi - lo) / 2, B, self.privacy_unit)
        steps = [acc.Step("global_mean", self.mean_share, d_mean), acc.Step("item_biases", 1 - self.mean_share, d_items)]
        plan, self._item_mask = self._plan_fit(data, steps, rng=g_sel, k=k, ledger=ledger)
        noise = NoiseSource(g_bias, secure=self.secure_noise)
        mu, c, counts = release_biases(
            X,
            rating_bounds=data.rating_bounds,
            sigma_mean=plan.sigma("global_mean"),
            sigma_items=plan.sigma("item_biases"),
            k=k,
            residual_bound=B if self.private else (hi - lo),
            prior_var=self.prior_var,
            user_reg=self.user_reg,
            privacy_unit=self.privacy_unit,
            contribution=self.contribution if self.private else "weight",
            noise=noise,
            rng=g_bias,
        ) if self.private else _nonprivate_biases(X, self.prior_var, self.user_reg)
        if self._item_mask is not None:  # unselected items carry no released information
            c, counts = np.where(self._item_mask, c, 0.0), np.where(self._item_mask, counts, 0.0)
        self.mu_, self.item_bias_, self.item_counts_ = mu, c, counts
        self.user_bias_ = local_user_biases(X, mu, c, self.user_reg)
        self._report_steps = _steps_report(plan, {"global_mean": "pair (Σw(r−m), Σw)", "item_biases": "stacked (S_j, N_j)"})
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
    offset = _segment_sums(X.data - mu, X.indptr) / (n_u + user_reg)
    e = X.data - mu - np.repeat(offset, n_u)
    Sj = np.bincount(X.indices, weights=e, minlength=X.shape[1])
    Nj = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    return mu, Sj / (Nj + 1.0 / prior_var), Nj


def _steps_report(plan, what: dict) -> list:
    out = []
    for s in plan.steps:
        out.append(
            {
                "name": s.name,
                "statistic": what.get(s.name, s.name),
                "mechanism": "gaussian" if plan.is_private else "none (ε = ∞)",
                "sensitivity_l2": s.sensitivity,
                "sigma": s.sigma,
                "count": s.count,
                "rho": s.rho if plan.is_private else math.inf,
            }
        )
    return out


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
    model._report_steps = getattr(model, "_report_steps", [])


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
        g = as_generator(self.rng)
        k = int(self.max_ratings_per_user or default_k(self.epsilon))
        kk = 1 if self.privacy_unit == "rating" else k
        plan, self._item_mask = self._plan_fit(data, [acc.Step("item_counts", 1.0, math.sqrt(kk))], rng=g, k=k, ledger=ledger)
        if self.private:
            w = contribution_weights(X, k, privacy_unit=self.privacy_unit)
            counts = np.bincount(X.indices, weights=w, minlength=X.shape[1])
            counts = NoiseSource(g, secure=self.secure_noise).gaussian(counts, plan.sigma("item_counts"))
        else:
            counts = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
        if self._item_mask is not None:
            counts = np.where(self._item_mask, counts, -np.inf)
        self.item_counts_ = counts
        self._report_steps = _steps_report(plan, {"item_counts": "weighted item counts"})
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
        self._report_steps = getattr(self, "_report_steps", [])

    _from_public_state = _set_state
