"""DP-SGD matrix factorisation (Abadi et al. 2016) for explicit ratings with biases, joint DP.

Model: ``r̂_ij = clip(μ + b_i + c_j + u_iᵀ v_j)``, as DP-ALS. Released (DP): ``μ``, the item biases ``c`` and the
item factors ``V``. Never released: ``b_i`` and ``u_i``, solved from the released item side and user ``i``'s own
ratings (joint DP / billboard model).

Fit
---
1. The releases of the DP baseline :class:`~dprec.models.baselines.DPGlobalEffects` (defaults), exactly as it
   makes them — same statistics, same σ's, same noise streams: the DP user count ``ñ_u``
   (:class:`~dprec.models.releases.UserCount`, ``COUNT_SHARE`` of ``ρ(ε, δ)``) and the DP global mean, whose
   noisy weight ``Ñ`` is the DP rating count at the rating unit (post-processing).
2. The public rules (:func:`default_hyperparameters`) read ε and the DP count ``ñ`` of protected units (``ñ_u``
   under ``privacy_unit="user"``, ``Ñ`` under ``"rating"``); ``q·ñ`` is the public expected batch size.
3. No epoch (``ε·ñ < 10⁶``): the item biases are the baseline's release too, ``V = U = 0``, and the user bias is
   the baseline's local bias — the fit *is* the DP baseline's estimator (never worse, by construction).
   With epochs: the item biases are re-planned on what is left of the zCDP share ``bias_share · ε`` (their σ
   differs from the baseline's, so they come from DPSGD's own stream), then
4. ``T = ⌈epochs / q⌉`` DP-SGD steps from ``θ = [V⁰, c]`` (``V⁰`` random and data-independent, ``c`` the DP item
   biases). Each step: a Poisson batch (every unit kept independently with probability ``q``); per group the
   local user solve and the item gradient clipped to ``C`` (:class:`~dprec.models.releases.ClippedItemGradient`,
   :mod:`dprec.kernels.sgd`); ``G̃ = G + N(0, σ² I)`` on all ``n_items·(d+1)`` coordinates (drawn in bulk);
   ``θ ← θ − η (G̃ / (q ñ) + λ [V, 0])``. The divisor is the public expected batch size, never the realised
   one (which is not private).
5. Serving: each user's ``[u_i; b_i]`` from the final ``θ`` (the user solve of DP-ALS).

Noise streams: the releases of step 1 (and of step 3 without epochs) are drawn from the streams
DPGlobalEffects would use with the same ``rng`` (DPSGD's streams with the baseline's model key), so in
reproducibility mode a sweep's DP-SGD numbers equal the DP baseline's wherever the rules run no epoch. That is
not a stream shared by two released models: each such release *is* the baseline's release (same statistic, σ
and noise), so publishing both fits publishes one set of numbers twice, never two noisy views of one statistic
whose difference would cancel the noise. Every release whose statistic or σ differs (the item biases with
epochs, every DP-SGD step) comes from DPSGD's own streams. (DPRanker's delegates, in contrast, draw from the
ranker's own streams: their releases are not those of any other fit.)

Accounting
----------
The fit is ``(ε, δ)``-DP by basic composition of two parts:

* the zCDP part (counts and global effects, Gaussian releases), ``ρ_z`` converted at ``δ_z = δ/2``
  (Canonne, Kamath & Steinke 2020) to ``ε_z = bias_share · ε`` (``ε_z = ε`` and ``δ_z = δ`` with no epoch);
  the count and mean of step 1 are planned inside ``ρ(ε, δ)`` as the baseline plans them, and the item biases
  get ``ρ_z − ρ_count − ρ_mean`` (a ``bias_share`` leaving nothing is refused before the charge);
* the DP-SGD part, ``T`` self-composed Poisson-subsampled Gaussian mechanisms with noise multiplier
  ``z = σ / Δ`` (``Δ = C`` per user, ``2C`` per rating), accounted with ``dp-accounting`` (PLD by default,
  RDP as an option) at ``δ − δ_z``; ``z`` is calibrated to ``ε − ε_z`` unless ``noise_multiplier`` is given
  (then the fit refuses a ``z`` whose ε exceeds the remainder).

The ledger is charged once, before any noise, as an ``(ε, δ)`` charge (kind ``approx``) with the accountant's
event in its parameters: a subsampled Gaussian has no finite zCDP ρ that is tight, so an (ε, δ) charge is the
honest form; it composes with zCDP charges in the ledger by basic composition. The charge comes before the
rules can know whether epochs run, so it is ``(ε, δ)`` in both branches (without epochs the releases are the
baseline's, whose own charge would be the equivalent ``ρ(ε, δ)``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Literal

import numpy as np
from pydantic import Field

from .._json import to_jsonable
from ..errors import ConfigError, CorruptFileError
from ..privacy import accounting as acc
from ..privacy.noise import NoiseSource
from ..privacy.units import check_delta
from . import _biased_als as E
from ._dp import COUNT_SHARE, open_ledger
from .baselines import DPGlobalEffects
from .config import Int, PrivateConfig, Real
from .dpals import DPALS
from .global_effects import (
    BIAS_RESIDUAL_BOUND,
    RATING_MODEL_RANKING_ADVICE,
    bias_releases,
    default_k,
    local_user_biases,
    release_item_biases,
    release_mean,
)
from .registry import register_model
from .releases import ClippedItemGradient, UserCount

__all__ = ["DPSGD", "DPSGDConfig", "ResolvedDPSGD", "default_hyperparameters"]

#: ε·ñ (protected units) below which DP-SGD runs no epoch and spends everything on the global effects
MIN_EPSILON_UNITS = 1_000_000.0
#: the rules' share of ε for the counts and biases when DP-SGD epochs run
SGD_BIAS_SHARE = 0.5
#: floor of the DP item counts in the per-item step preconditioner (noise on rarer items is damped)
ITEM_SCALE_FLOOR = 20.0
#: share of the zCDP δ (δ/2 when SGD runs) — the DP-SGD part gets the rest
ZCDP_DELTA_SHARE = 0.5


def default_hyperparameters(epsilon: float, n_units_est: float, unit: str) -> dict:
    """Rules for the hyperparameters left as ``None``, from public inputs only: ε, the unit and the DP count
    ``ñ`` of protected units (users, or ratings).

    * ``ε · ñ < 1,000,000`` → no epoch: the whole budget goes to the DP global effects (DP-SGD *is* the DP
      baseline). MovieLens-100K is here at every ε ≤ 20 at the user unit (943 users) and up to ε ≈ 12 at
      the rating unit (80,000 training ratings).
    * otherwise → rank 8, ``bias_share = 0.5``, clip ``C = 1``, ``q = 0.2``, 10 epochs (50 steps), η = 20
      (``η`` multiplies the clipped gradient averaged over the expected batch), λ = 0.01, λ_u = 0.1, λ_b = 10.

    At ε = ∞: rank 16, 20 epochs, no clipping matters (``C`` large), no noise. Where the values come from:
    docs/tuning.md (ML-100K split seed 1 and synthetic data, never the reported split).
    """
    base = {
        "factors": 8,
        "bias_share": SGD_BIAS_SHARE,
        "clip_norm": 1.0,
        "regularization": 0.01,
        "user_regularization": 0.1,
        "bias_regularization": 10.0,
        "sampling_rate": 0.2,
        "epochs": 10,
        "learning_rate": 20.0,
    }
    if math.isinf(epsilon):
        return {**base, "factors": 16, "epochs": 20, "bias_share": 1.0}
    if epsilon * max(n_units_est, 0.0) < MIN_EPSILON_UNITS:
        return {**base, "epochs": 0, "bias_share": 1.0}
    return base


class DPSGDConfig(PrivateConfig):
    """Parameters of :class:`DPSGD`; ``None`` = chosen by :func:`default_hyperparameters`."""

    factors: Int | None = Field(None, ge=1, description="rank d; None = the rules")
    epochs: Int | None = Field(None, ge=0, description="passes over the data (T = ⌈epochs/q⌉ steps); None = the rules")
    sampling_rate: Real | None = Field(
        None, gt=0, le=1, description="q, the public Poisson sampling rate of units; None = the rules"
    )
    clip_norm: Real | None = Field(None, gt=0, description="C, L2 clip of each unit's item gradient; None = the rules")
    learning_rate: Real | None = Field(None, gt=0, description="η of the item update; None = the rules")
    regularization: Real | None = Field(None, ge=0, description="λ, weight decay of the item factors; None = the rules")
    user_regularization: Real | None = Field(
        None, gt=0, description="λ_u of the local user solves (× the rating count + 1); None = the rules"
    )
    bias_regularization: Real | None = Field(None, gt=0, description="λ_b of the user biases; None = the rules")
    noise_multiplier: Real | None = Field(
        None, ge=0, description="z = σ/Δ of the gradient noise; None = calibrated from (ε, δ), q and T"
    )
    accountant: Literal["pld", "rdp"] = Field("pld", description="dp-accounting accountant of the DP-SGD part")
    item_scaling: bool = Field(
        False,
        strict=True,
        description="divide item j's noisy gradient by q·(ñ_j + F) (DP item counts) instead of q·ñ",
    )
    item_scale_floor: Real = Field(200.0, gt=0, description="F of item_scaling: damps the noise on rare items")
    bias_share: Real | None = Field(
        None, gt=0, le=1, description="share of ε for the counts and DP global effects; None = the rules"
    )
    max_ratings_per_user: Int | None = Field(None, ge=1, description="k of the DP global effects; None = 20")
    prior_var: Real = Field(0.3, gt=0, description="τ², prior variance of the item biases (shrinkage)")
    init_scale: Real = Field(0.1, gt=0, description="standard deviation × √d of the random initial item factors")


@dataclasses.dataclass(frozen=True)
class ResolvedDPSGD:
    """DP-SGD's hyperparameters after the public rules: what a fit ran with (public; in the report and files)."""

    factors: int
    epochs: int
    sampling_rate: float
    steps: int
    clip_norm: float
    learning_rate: float
    regularization: float
    user_regularization: float
    bias_regularization: float
    bias_share: float
    noise_multiplier: float
    accountant: str
    k: int
    item_scaling: bool = False
    expected_batch_size: float | None = None
    n_units_dp: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> ResolvedDPSGD:
        if not isinstance(d, dict):
            raise CorruptFileError("the model file's manifest lacks DP-SGD's resolved hyperparameters")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in d and n not in ("expected_batch_size", "n_units_dp")]
        if missing:
            raise CorruptFileError(f"the model file's DP-SGD hyperparameters lack {', '.join(missing)}")
        return cls(**{n: d[n] for n in names if n in d})


@register_model("dp-sgd")
class DPSGD(DPALS):
    """DP-SGD matrix factorisation with biases (module docstring: algorithm, sensitivity, accounting).

    Parameters (keyword-only; :class:`DPSGDConfig` documents each)
    ----------
    epsilon, delta : float
        Target (ε, δ)-DP of everything released (``math.inf``: no noise, same code path).
    privacy_unit : {"user", "rating"}
        The Poisson-sampled unit: users with all their ratings, or single ratings.
    factors, epochs, sampling_rate, clip_norm, learning_rate, regularization : optional
        ``d``, epochs, ``q``, ``C``, ``η``, ``λ``; ``None`` → :func:`default_hyperparameters`.
    noise_multiplier : float, optional
        ``z = σ/Δ``; ``None`` → the smallest ``z`` (relative tolerance 10⁻³) whose accounted ε fits the DP-SGD
        part of the budget (:func:`dprec.privacy.accounting.dpsgd_noise_multiplier`, which never overshoots).
    accountant : {"pld", "rdp"}
        ``dp_accounting``'s PLD (default) or RDP accountant.
    rng : None, seed or Generator
        ``None``: fresh OS entropy; a seed is reproducibility mode (PrivacyWarning).
    num_threads : int
        0 = all cores.

    Fitted attributes: ``global_mean_``, ``item_bias_``, ``item_counts_`` (DP), ``item_factors_`` (DP),
    ``user_factors_``/``user_bias_`` (never released), ``resolved_`` (:class:`ResolvedDPSGD`), ``n_units_dp_``.
    """

    Config = DPSGDConfig
    ranking_advice = RATING_MODEL_RANKING_ADVICE.format(name="DPSGD")

    def __init__(self, **params):
        super().__init__(**params)
        self.n_units_dp_ = None
        self._sgd_report = None
        self._zcdp_budget = None

    # ------------------------------------------------------------------ rules
    def _resolve(self, n_units: float, k: int) -> dict:
        rules = default_hyperparameters(self.epsilon, n_units, self.privacy_unit)
        out = {name: (getattr(self, name) if getattr(self, name) is not None else rules[name]) for name in rules}
        if self.bias_share is None:
            # no epoch: everything on the biases; epochs forced where the rules run none: the SGD band's share
            out["bias_share"] = 1.0 if out["epochs"] == 0 else min(rules["bias_share"], SGD_BIAS_SHARE)
        if self.private and out["epochs"] > 0 and out["bias_share"] >= 1.0:
            raise ConfigError("bias_share=1 leaves no budget for the DP-SGD epochs: pass epochs=0 or a bias_share < 1")
        out["k"] = k
        return out

    def _bias_list(self, hp: dict, data) -> list:
        return bias_releases(
            unit=self.privacy_unit,
            k=hp["k"],
            rating_bounds=data.rating_bounds,
            residual_bound=BIAS_RESIDUAL_BOUND,
            bias_regularization=hp["bias_regularization"],
            contribution="weight",
        )

    # ------------------------------------------------------------------ fit
    def _fit(self, data, *, ledger=None):
        X = data.matrix
        self._check_fit_data(data)
        k = int(self.max_ratings_per_user or default_k(self.epsilon))
        self._catalog_public = bool(data.public_items)
        if self.private and not self._catalog_public:
            raise ConfigError(
                "DPSGD needs a public item catalog (its gradient release covers every item): build the data with "
                "public_items=True, or use DPALS, which runs DP item selection first"
            )
        self._open_noise(ledger)
        if not self.private:
            n_units = float(data.matrix.nnz if self.privacy_unit == "rating" else data.n_users)
            self.n_users_dp_ = float(data.n_users)
            hp = self._resolve(n_units, k)
            self._zcdp_budget = (math.inf, 0.0)
            self._rest_budget = (math.inf, 0.0, math.inf)
            releases = self._bias_list(hp, data)
            self._plan_releases(releases, n_items=data.n_items)
            mu, c, counts = E.global_effects(X, self.prior_var, hp["bias_regularization"])
        else:
            hp, mu, c, counts, n_units = self._private_biases(data, k, ledger)
        self._finish_fit(data, hp, k, n_units, mu, c, counts)

    def _private_biases(self, data, k: int, ledger):
        """The DP count ñ, the rules and the DP global effects; returns ``(hp, μ, c, ñ_j, ñ)``.

        Until the rules have run, every release is the one :class:`~dprec.models.baselines.DPGlobalEffects`
        makes with its defaults (same statistic, same σ, same stream): the user count at ``COUNT_SHARE`` of
        ``ρ(ε, δ)`` and the global mean. The rules then read ``ñ`` (the DP user count at the user unit, the mean's
        noisy rating count ``Ñ`` at the rating unit). Without epochs the item biases are the baseline's too, so
        the fit *is* the DP baseline's estimator. With epochs the item biases are re-planned on what is left of
        the zCDP part ``bias_share · ε`` and drawn from DP-SGD's own stream (their σ differs from the baseline's).
        """
        X = data.matrix
        hp0 = self._resolve(0.0, k)  # the no-epoch branch; its bias releases do not depend on ñ
        count = UserCount(self.privacy_unit)
        plan0 = acc.plan(self.epsilon, self.delta, [count.step(COUNT_SHARE), acc.Step("rest", 1 - COUNT_SHARE, 1.0)])
        self._count_plan = plan0
        self._rest_budget = (
            acc.rho_to_epsilon(plan0["rest"].total_rho, self.delta),
            self.delta,
            plan0["rest"].total_rho,
        )
        releases = self._bias_list(hp0, data)
        plan_b = self._plan_releases(releases, n_items=data.n_items, dry_run=True)
        rho_fixed = plan0["n_users"].total_rho + plan_b["global_mean"].total_rho
        self._check_branches(k, rho_fixed)  # refuse bad explicit settings before charging (both branches)
        self._charge_approx(ledger, data)
        own_noise, self._noise = self._noise, self._baseline_noise()
        n_users = float(self._release(count, count.statistic(X), plan0["n_users"])[0])
        self.n_users_dp_ = n_users
        check_delta(self.delta, max(n_users, 1.0))
        plan_b = self._plan_releases(releases, n_items=data.n_items)
        mu, n_ratings = release_mean(self, X, plan_b["global_mean"])
        n_units = n_users if self.privacy_unit == "user" else max(n_ratings, 0.0)
        hp = self._resolve(n_units, k)
        if hp["epochs"] == 0:
            self._zcdp_budget = (self.epsilon, self.delta)
            c, counts = release_item_biases(self, X, plan_b["item_biases"], mu=mu, prior_var=self.prior_var)
            self._noise = own_noise
            return hp, mu, c, counts, n_units
        self._noise = own_noise
        eps_z, delta_z = self._zcdp_split(hp["bias_share"], True)
        rho_items = acc.epsilon_to_rho(eps_z, delta_z) - rho_fixed
        if rho_items <= 0:
            raise RuntimeError("internal accounting error: the counts exceed the zCDP part; please report")
        self._zcdp_budget = (eps_z, delta_z)
        self._rest_budget = (acc.rho_to_epsilon(rho_items, delta_z), delta_z, rho_items)
        items = [(r, 1.0) for r, _ in self._bias_list(hp, data) if r.name == "item_biases"]
        plan_i = self._plan_releases(items, n_items=data.n_items)
        self._releases = {r.name: r for r, _ in self._bias_list(hp, data)}
        c, counts = release_item_biases(self, X, plan_i["item_biases"], mu=mu, prior_var=self.prior_var)
        return hp, mu, c, counts, n_units

    def _baseline_noise(self) -> NoiseSource:
        """The noise of the releases DPSGD shares with the DP baseline: the streams DPGlobalEffects would use with
        the same ``rng`` (only their model key differs from DPSGD's own). Why this is not a stream shared by two
        released models: each such release is the baseline's release itself (same statistic, σ and noise), so a
        DPSGD fit and a DPGlobalEffects fit with the same seed publish the same numbers, not two noisy views of
        one statistic; every release whose statistic or σ differs is drawn from DPSGD's own streams."""
        streams = copy.copy(self._streams)
        streams.model = DPGlobalEffects.__name__
        return NoiseSource(streams, secure=self.secure_noise)

    def _check_branches(self, k: int, rho_fixed: float) -> None:
        """Before the charge: every branch the rules can take after ñ must fit the budget."""
        for probe in (0.0, math.inf):
            hp = self._resolve(probe, k)
            if hp["epochs"] == 0:
                continue
            eps_z, delta_z = self._zcdp_split(hp["bias_share"], True)
            if acc.epsilon_to_rho(eps_z, delta_z) <= rho_fixed:
                raise ConfigError(
                    f"bias_share={hp['bias_share']:g} leaves the DP item biases no budget after the DP count and "
                    "mean: raise bias_share"
                )
            if self.noise_multiplier is not None:
                q = float(hp["sampling_rate"])
                self._check_noise_multiplier(q, math.ceil(hp["epochs"] / q), eps_z, delta_z)

    def _finish_fit(self, data, hp: dict, k: int, n_units: float, mu, c, counts) -> None:
        """DP-SGD epochs (if the rules run any) from the DP global effects, then the local user solves."""
        X = data.matrix
        self.n_units_dp_ = n_units
        q = float(hp["sampling_rate"])
        T = int(math.ceil(hp["epochs"] / q)) if hp["epochs"] > 0 else 0
        z = self._noise_multiplier(hp, q, T)
        self.resolved_ = ResolvedDPSGD(
            factors=int(hp["factors"]),
            epochs=int(hp["epochs"]),
            sampling_rate=q,
            steps=T,
            clip_norm=float(hp["clip_norm"]),
            learning_rate=float(hp["learning_rate"]),
            regularization=float(hp["regularization"]),
            user_regularization=float(hp["user_regularization"]),
            bias_regularization=float(hp["bias_regularization"]),
            bias_share=float(hp["bias_share"]),
            noise_multiplier=float(z),
            accountant=self.accountant,
            k=k,
            item_scaling=self.item_scaling,
            expected_batch_size=q * max(n_units, 1.0) if T > 0 else None,
            n_units_dp=n_units if self.private else None,
        )
        self.global_mean_, self.item_bias_, self.item_counts_ = float(mu), np.asarray(c, float), counts
        d = self.resolved_.factors
        V = E.random_item_factors(self._streams.init_generator(), data.n_items, d, self.init_scale).astype(np.float64)
        if T == 0:
            # no epoch: no factor is learnt (V = U = 0) and the user bias is the DP baseline's local bias,
            # b_i = Σ_j (r_ij − μ − c_j)/(n_i + λ_b): the DP baseline's predictions (to the float summation order)
            self.item_factors_ = np.zeros_like(V)
            self.user_factors_ = np.zeros((data.n_users, d))
            self.user_bias_ = local_user_biases(
                X, self.global_mean_, self.item_bias_, self.resolved_.bias_regularization
            )
            return
        V, self.item_bias_ = self._sgd(X, V, self.item_bias_.copy(), T, z, max(n_units, 1.0))
        self.item_factors_ = V
        U, ub = E.user_solve(
            X,
            V,
            self.global_mean_,
            self.item_bias_,
            self.resolved_.user_regularization,
            self.resolved_.bias_regularization,
        )
        self.user_factors_, self.user_bias_ = U.astype(np.float64), ub.astype(np.float64)

    def _zcdp_split(self, share: float, sgd_runs: bool) -> tuple[float, float]:
        """``(ε_z, δ_z)`` of the zCDP part (counts + biases): everything without epochs, else the share."""
        if not sgd_runs:
            return self.epsilon, self.delta
        return share * self.epsilon, ZCDP_DELTA_SHARE * self.delta

    def _sgd_budget(self) -> tuple[float, float]:
        eps_z, delta_z = self._zcdp_budget
        return self.epsilon - eps_z, self.delta - delta_z

    def _noise_multiplier(self, hp: dict, q: float, T: int) -> float:
        """The accountant's noise multiplier ``z`` for the DP-SGD part (given, or calibrated never to overshoot)."""
        if not self.private or T == 0:
            return 0.0
        if self.noise_multiplier is not None:
            return self._check_noise_multiplier(q, T, *self._zcdp_budget)
        eps_s, delta_s = self._sgd_budget()
        return acc.dpsgd_noise_multiplier(eps_s, delta_s, q, T, accountant=self.accountant)

    def _check_noise_multiplier(self, q: float, T: int, eps_z: float, delta_z: float) -> float:
        """The given ``noise_multiplier`` if its accounted ε fits the DP-SGD part ``(ε − ε_z, δ − δ_z)``."""
        eps_s, delta_s = self.epsilon - eps_z, self.delta - delta_z
        z = float(self.noise_multiplier)
        got = acc.dpsgd_epsilon(z, q, T, delta_s, accountant=self.accountant)
        if got > eps_s * (1 + 1e-12):
            raise ConfigError(
                f"noise_multiplier={z} gives ε = {got:.4g} for the DP-SGD part, above its share {eps_s:.4g} "
                f"of epsilon={self.epsilon}: raise noise_multiplier or leave it None (calibrated)"
            )
        return z

    def _gradient_release(self) -> ClippedItemGradient:
        hp = self.resolved_
        return ClippedItemGradient(
            self.privacy_unit,
            clip_norm=hp.clip_norm,
            factors=hp.factors,
            user_regularization=hp.user_regularization,
            bias_regularization=hp.bias_regularization,
            steps=hp.steps,
        )

    def _sgd(self, X, V, c, T: int, z: float, n_units: float):
        """``T`` noisy steps on ``θ = [V, c]``; returns the final ``(V, c)`` (released: post-processing of G̃)."""
        hp = self.resolved_
        rel = self._gradient_release()
        m, d = V.shape
        sigma = z * rel.sensitivity() if self.private else 0.0
        denom = hp.sampling_rate * n_units  # public expected batch size (DP count), never the realised one
        # per-item preconditioner from the released DP item counts (post-processing): item j's rows are scaled
        # by q·max(ñ_j, n_min) instead of q·ñ, so rarely and often rated items move at comparable speeds
        scale = denom * np.ones(m)
        if hp.item_scaling:
            counts = np.maximum(np.asarray(self.item_counts_, float), 0.0) + self.item_scale_floor
            scale = hp.sampling_rate * counts
        sampler = self._noise.generator("sgd_batch_sampling")
        theta = np.hstack([V, c[:, None]])
        for t in range(T):
            Xb = rel.sample_batch(X, hp.sampling_rate, sampler)
            G = rel.statistic(Xb, item_factors=theta[:, :d], item_bias=theta[:, d], mu=self.global_mean_)
            if self.private and self.secure_noise:
                Gn = self._noise.release(G, step=rel.name, sigma=sigma, sensitivity=rel.sensitivity(), index=t)
            elif self.private:
                Gn = G + self._noise.draw(G.shape, step=rel.name, sigma=sigma, index=t)
            else:
                Gn = G
            grad = Gn.reshape(m, d + 1) / scale[:, None]
            grad[:, :d] += hp.regularization * theta[:, :d]
            theta -= hp.learning_rate * grad
        self._sgd_report = {
            "name": rel.name,
            "statistic": rel.what,
            "mechanism": "poisson-subsampled gaussian (DP-SGD)" if self.private else "none (ε = ∞)",
            "sampler": self._noise.samplers.get(rel.name, ""),
            "sensitivity_l2": rel.sensitivity(),
            "sigma": sigma,
            "count": T,
            "noise_multiplier": z,
            "sampling_rate": hp.sampling_rate,
            "expected_batch_size": "q · ñ (the DP count of protected units)",
        }
        return np.ascontiguousarray(theta[:, :d]), np.ascontiguousarray(theta[:, d])

    def _charge_approx(self, ledger, data) -> None:
        """One (ε, δ) charge of the whole fit, before any noise (module docstring: why not zCDP)."""
        self._ledger_state = "no ledger (the caller passed none)"
        if ledger is None:
            return
        led = open_ledger(ledger, dataset=data.dataset_id)
        token = self._streams._reuse_token
        kwargs = {"seed": token} if token is not None else {}
        led.charge(
            epsilon=self.epsilon,
            delta=self.delta,
            model=type(self).__name__,
            mechanism="gaussian (zCDP) + poisson-subsampled gaussian (dp-accounting), basic composition",
            label=f"DPSGD fit ε={self.epsilon} δ={self.delta} unit={self.privacy_unit}",
            params={"accountant": self.accountant, "event": "SelfComposed(PoissonSampled(Gaussian(z)), T)"},
            **kwargs,
        )
        self._ledger_state = "charged to a privacy ledger (one (ε, δ) charge) before any noise was drawn"

    # ------------------------------------------------------------------ reporting
    _steps_outside_zcdp = frozenset({ClippedItemGradient.name})  # accounted by dp-accounting, not in ρ

    def privacy_report(self) -> dict:
        """As :meth:`DPModelMixin.privacy_report`, with the DP-SGD part and its accountant's event.

        ``verified_epsilon`` = ε of the listed zCDP ρ's at ``δ_z`` + the accountant's ε of the DP-SGD event at
        ``δ − δ_z`` (basic composition), recomputed from the report's own numbers.
        """
        self._require_fitted()
        kept = self._report_steps
        sgd_steps = [s for s in kept if s.get("name") == ClippedItemGradient.name]
        if sgd_steps and self._sgd_report is None:  # a loaded model: the step comes from its manifest
            self._sgd_report = {k: v for k, v in sgd_steps[0].items() if k != "dp_event"}
        self._report_steps = [s for s in kept if s.get("name") != ClippedItemGradient.name]
        try:
            rep = super().privacy_report()
        finally:
            self._report_steps = kept
        hp = self.resolved_
        if not self.private:
            return rep
        eps_z, delta_z = self._zcdp_budget
        steps = list(rep["steps"])
        total_rho = math.fsum(s["rho"] * s["count"] for s in steps)
        verified = acc.rho_to_epsilon(total_rho, delta_z)
        event = None
        if hp.steps > 0:
            eps_s, delta_s = self.epsilon - eps_z, self.delta - delta_z
            verified += acc.dpsgd_epsilon(
                hp.noise_multiplier, hp.sampling_rate, hp.steps, delta_s, accountant=hp.accountant
            )
            event = {
                "event": "SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(z)), T)",
                "q": hp.sampling_rate,
                "z": hp.noise_multiplier,
                "T": hp.steps,
                "accountant": hp.accountant,
                "epsilon": eps_s,
                "delta": delta_s,
            }
            steps = steps + [dict(self._sgd_report or {}, dp_event=event)]
        rep.update(
            total_rho=total_rho,
            verified_epsilon=verified,
            steps=steps,
            accounting=(
                f"zero-concentrated DP for the counts and global effects (ρ summed, converted at δ_z = {delta_z:g}, "
                "Canonne, Kamath & Steinke 2020)"
                + (
                    f" + the DP-SGD part accounted by dp-accounting ({hp.accountant.upper()}) at δ − δ_z; the two "
                    "(ε, δ) guarantees add (basic composition)"
                    if hp.steps > 0
                    else ""
                )
            ),
            dpsgd=to_jsonable(event),
        )
        return rep

    def _bounds_report(self) -> dict:
        return {**self.resolved_.to_dict(), "unit": self.privacy_unit, "rating_bounds": self.rating_bounds_}

    def _released_description(self) -> dict:
        return {
            "global_mean": "DP",
            "item_bias": "DP (global effects, then DP-SGD updates)",
            "item_counts": "DP (noisy weighted counts)",
            "item_factors": "DP (DP-SGD)",
            "n_units": "DP count (rules and the expected batch size)",
            "user_factors": "per-user, never released",
            "user_bias": "per-user, never released",
        }

    def _public_assumptions(self) -> list[str]:
        return super()._public_assumptions() + [
            "the sampling rate q, the number of steps and the clip norm are public; the batch divisor is q times "
            "the DP count of protected units"
        ]

    def _extra_manifest(self) -> dict:
        return {**super()._extra_manifest(), "zcdp_budget": list(self._zcdp_budget)}

    def _restore_manifest(self, manifest):
        super(DPALS, self)._restore_manifest(manifest)
        self.resolved_ = ResolvedDPSGD.from_dict(manifest.get("hyperparameters"))
        budget = manifest.get("zcdp_budget")
        if not isinstance(budget, list) or len(budget) != 2:
            raise CorruptFileError("the model file's manifest lacks DP-SGD's zCDP budget split")
        self._zcdp_budget = (float(budget[0]), float(budget[1]))
