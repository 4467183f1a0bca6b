"""DP-ALS: user-level, joint-DP alternating least squares (Chien et al., ICML 2021), with private biases.

Model: ``r̂_ij = clip(μ + b_i + c_j + u_iᵀ v_j)``. Released (DP): ``μ``, item biases ``c``, noisy item counts
and item factors ``V``. Never released: user biases ``b_i`` and user factors ``u_i`` — each is solved from
the released item side and user ``i``'s own ratings (joint DP / billboard model).

Fit
---
1. (no public catalog only) DP item selection — see :meth:`DPModelMixin._plan_fit`.
2. A DP count of users ``ñ`` (Δ = 1) and, under ``privacy_unit="rating"``, a DP count of ratings ``Ñ``
   (Δ = 1); with ε they decide, by documented rules, how the rest of the budget is split
   (:func:`default_hyperparameters`). Nothing else about the data is looked at before noise.
3. DP global effects (:func:`dprec.models.global_effects.release_biases`): DP mean, DP item biases and counts.
3b. Start of the item factors: random (data-independent) or, when ``spectral_items = M > 0`` (the rules'
   choice once ``ε · ñ ≥ 15,000``), the DP spectral start of :mod:`dprec.models._spectral`: one Gaussian
   release of the residual second moment of the ``M`` items with the largest DP counts, whose top
   eigenvectors give those items' factors (others start at 0). With ``iterations = 0`` this start is the
   released ``V``.
4. T noisy ALS iterations on the residuals of the released biases, run by the biased-ALS engine
   :mod:`dprec.models._biased_als` (its docstring describes the algorithm once: user step, item statistics,
   item solve, final user solve). DP-ALS plugs into its item step the contribution weights (``Σ_j w_ij² ≤ k``),
   the clipping of residuals at ``B`` and of user factors at ``Γ``, and the noisy solve: the Gaussian mechanism
   on the stacked statistics (:class:`~dprec.models.releases.FactorStats`, σ from the planner), then PSD
   projection and the ridge solve ``v_j = (Ã_j + λ_j I)⁻¹ b̃_j`` with ``λ_j = λ·max(ñ_j, 0) + 2σ√(d+1)``
   (:func:`dprec.kernels.psd.noisy_psd_solve`; post-processing).
5. Serving: each user's ``[u_i; b_i]`` from the final ``V`` and the user's own ratings (no clipping: the
   user factor is never released).

At ``epsilon=math.inf`` DP-ALS takes the exact solve, no weights and no clipping, with the non-private global
effects (μ, c, n_j) of step 3, so it *is* ``ALS(feedback="explicit")`` with the same hyperparameters (table in
:class:`dprec.models.ALS`; tests/models/test_als_equals_dpals.py).

Sensitivity of one iteration's release (user-level, add/remove user i)
----------------------------------------------------------------------
Under joint DP, other users' factors depend on user i only through previously *released* (already
private) item factors, so removing user i removes exactly its terms. For the stacked upper triangles of
``A_j``: ``√(Σ_j w_ij² ‖u_i u_iᵀ‖_F²) ≤ √k Γ²``; for the stacked ``b_j``: ``√(Σ_j w_ij² e_ij² ‖u_i‖²) ≤ √k B Γ``;
jointly ``√k Γ √(Γ² + B²)`` (with the augmented ``[u; 1]``, Γ² → Γ² + 1). Under ``privacy_unit="rating"``
one rating changes its user's factor and hence all of that user's terms, but the user's whole weighted
contribution still has norm ≤ C (the user-level bound), so one rating changes the release by ≤ 2C: the
factor statistics use the user-level weights and twice the user-level sensitivity. The spectral start, in
contrast, is priced per rating under that unit (no local bias: :class:`~dprec.models.releases.SpectralMoment`),
which is why the rating-unit rules spend the factor budget on it alone.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from ..errors import CorruptFileError
from ..kernels.psd import noisy_psd_solve
from . import _biased_als as E
from . import _spectral as S
from ._blocks import is_blocked, user_sum
from ._dp import DPModelMixin
from .base import Recommender, deprecated_alias
from .config import Int, PrivateConfig, Real
from .global_effects import (
    BIAS_RESIDUAL_BOUND,
    RATING_MODEL_RANKING_ADVICE,
    bias_releases,
    default_k,
    release_biases,
)
from .registry import register_model
from .releases import FactorStats, RatingCount, SpectralMoment

__all__ = ["DPALS", "DPALSConfig", "ResolvedDPALS", "default_hyperparameters"]


#: fraction of the factor budget on the spectral start when noisy iterations follow it
_SPECTRAL_SHARE_WITH_ITERATIONS = 0.1
#: default B of the factor statistics' residual clip
FACTOR_RESIDUAL_BOUND = 1.5
#: lower edges of the rules' factor bands in ε·ñ (users, user unit) and ε·Ñ (ratings, rating unit); the fit
#: plans one configuration per band before the charge (:func:`default_hyperparameters`)
USER_BANDS = (15_000, 80_000)
RATING_BANDS = (150_000, 500_000)


def default_hyperparameters(
    epsilon: float, n_users_est: float, n_items: int, *, privacy_unit: str = "user", n_ratings_est: float = 0.0
) -> dict:
    """Rules for the hyperparameters left as ``None`` (public inputs only: ε and DP counts of protected units).

    How much a factor part can earn depends on how many protected units stand behind each released statistic,
    so the rules switch on ε times a DP count.

    User unit, on ``ε · ñ`` (``ñ`` the DP user count):

    * ``ε · ñ < 15,000`` → biases only: the whole budget goes to the DP global effects, so DP-ALS equals the
      DP baseline (which it must never be worse than). MovieLens-100K (943 users) is here up to ε ≈ 16.
    * ``15,000 ≤ ε · ñ < 80,000`` → a *spectral* factor part and no ALS iteration: 30% of the budget on the
      noisy residual second moment of the 200 most-rated items (:mod:`dprec.models._spectral`); those items
      get rank-8 factors from its top eigenvectors, every user solves locally against them. Per-item noisy
      statistics would cost more than they bring here.
    * ``ε · ñ ≥ 80,000`` → the spectral start (10% of the factor budget) and then two noisy ALS iterations,
      80% of the budget on factors, rank 8, λ = 0.1 (items, × DP counts), λ_u = 0.03 (users, × own count).

    Rating unit, on ``ε · Ñ`` (``Ñ`` the DP rating count, :class:`~dprec.models.releases.RatingCount`). The
    spectral moment is priced per rating there (``√(k − 1) B²``, :class:`~dprec.models.releases.SpectralMoment`),
    so it pays from far fewer users; the per-item factor statistics still pay a whole user per rating
    (:class:`~dprec.models.releases.FactorStats`), so the rules run no noisy iteration at this unit:

    * ``ε · Ñ < 150,000`` → biases only (the DP baseline; ML-100K's 80,000 training ratings: ε < 1.9);
    * ``150,000 ≤ ε · Ñ < 500,000`` → spectral only: 50% of the budget on the moment of the 400 most-rated
      items, rank 16 (the spike weights drop the components under the noise edge), λ_u = 0.3;
    * ``ε · Ñ ≥ 500,000`` → the same on the 800 most-rated items with 80% of the budget.

    Where the thresholds come from (MovieLens-100K, a synthetic ML-10M shape, a re-check with forced bands, and
    for the rating unit ML-100K split seed 1, which no reported table uses): docs/tuning.md. ``n_items`` caps
    the spectral item count.

    At ε = ∞ (no noise): rank 64, 15 iterations from a random start, λ = 0.1 (items), 0.12 (users), bias
    damping 5 — the defaults of ``ALS(feedback="explicit")``.
    """
    if math.isinf(epsilon):
        return {
            "factors": 64,
            "iterations": 15,
            "factor_share": 0.0,
            "spectral_items": 0,
            "spectral_share": 0.0,
            "regularization": 0.1,
            "user_regularization": 0.12,
            "bias_regularization": 5.0,
        }
    if privacy_unit == "rating":
        return _rating_unit_rules(epsilon * max(n_ratings_est, 0.0), n_items)
    en = epsilon * max(n_users_est, 0.0)
    m = int(min(200, n_items))
    if en < USER_BANDS[0]:
        return {
            "factors": 0,
            "iterations": 0,
            "factor_share": 0.0,
            "spectral_items": 0,
            "spectral_share": 0.0,
            "regularization": 0.3,
            "user_regularization": 0.3,
            "bias_regularization": 10.0,
        }
    if en < USER_BANDS[1]:
        return {
            "factors": 8,
            "iterations": 0,
            "factor_share": 0.3,
            "spectral_items": m,
            "spectral_share": 1.0,
            "regularization": 0.3,
            "user_regularization": 0.3,
            "bias_regularization": 10.0,
        }
    return {
        "factors": 8,
        "iterations": 2,
        "factor_share": 0.8,
        "spectral_items": m,
        "spectral_share": _SPECTRAL_SHARE_WITH_ITERATIONS,
        "regularization": 0.1,
        "user_regularization": 0.03,
        "bias_regularization": 10.0,
    }


def _rating_unit_rules(en: float, n_items: int) -> dict:
    """The rating-unit bands of :func:`default_hyperparameters` (``en = ε · Ñ``, Ñ the DP rating count)."""
    common = {"iterations": 0, "regularization": 0.3, "user_regularization": 0.3, "bias_regularization": 10.0}
    if en < RATING_BANDS[0]:
        return {**common, "factors": 0, "factor_share": 0.0, "spectral_items": 0, "spectral_share": 0.0}
    m, share = (400, 0.5) if en < RATING_BANDS[1] else (800, 0.8)
    return {
        **common,
        "factors": 16,
        "factor_share": share,
        "spectral_items": int(min(m, n_items)),
        "spectral_share": 1.0,
    }


class DPALSConfig(PrivateConfig):
    """Parameters of :class:`DPALS`; ``None`` = chosen by :func:`default_hyperparameters` from ε and the DP user count."""

    deprecated_names = {"bias_reg": "bias_regularization", "item_bias_reg": "item_bias_regularization"}

    factors: Int | None = Field(None, ge=0, description="rank d; None = the rules")
    iterations: Int | None = Field(None, ge=0, description="number of noisy ALS iterations T; None = the rules")
    max_ratings_per_user: Int | None = Field(
        None, ge=1, description="k, the per-user contribution bound (weighting); None = default_k(ε) = 20"
    )
    clip_norm: Real = Field(1.0, gt=0, description="Γ, bound on the user-factor norms in the factor statistics")
    regularization: Real | None = Field(
        None, gt=0, description="λ of the item solves (× DP item counts); None = the rules"
    )
    user_regularization: Real | None = Field(
        None, gt=0, description="λ_u of the user solves (× the user's rating count + 1); None = the rules"
    )
    residual_bound: Real | None = Field(
        None, gt=0, description="B, clip of the residuals in the factor statistics; None = 1.5"
    )
    factor_share: Real | None = Field(
        None,
        ge=0,
        lt=1,
        description="share of the budget for the factor part "
        "(spectral start and iterations; the rest goes to the biases); None = the rules",
    )
    spectral_items: Int | None = Field(
        None,
        ge=0,
        description="M: start from the DP spectral factors of the M items "
        "with the largest DP counts (0 = random start); None = the rules",
    )
    spectral_share: Real | None = Field(
        None,
        gt=0,
        le=1,
        description="fraction of the factor budget spent on the "
        "spectral release; must be 1 when iterations=0; None = the rules",
    )
    prior_var: Real = Field(0.3, gt=0, description="τ², prior variance of the item biases (shrinkage)")
    bias_regularization: Real | None = Field(
        None,
        gt=0,
        description="λ_b, ridge on the user biases and damping of the "
        "users' offsets in the item-bias release; None = the rules",
    )
    contribution: Literal["weight", "sample"] = Field("weight", description="how user contributions are bounded")
    init_scale: Real = Field(0.1, gt=0, description="standard deviation × √d of the random initial item factors")
    item_bias_regularization: Real = Field(
        100.0, ge=0, description="λ_c, ridge on each iteration's correction of the item biases"
    )

    @model_validator(mode="after")
    def _spectral_share_needs_iterations(self):
        if self.spectral_share == 1 and self.iterations != 0:
            raise ValueError(
                "spectral_share=1 leaves no budget for the iterations: also pass iterations=0, or a share < 1"
            )
        return self


@dataclasses.dataclass(frozen=True)
class ResolvedDPALS:
    """DP-ALS's hyperparameters after the public rules (:func:`default_hyperparameters`) and the bounds: what a
    fit ran with. Public (reported in the privacy report and written to model files)."""

    factors: int
    iterations: int
    factor_share: float
    spectral_items: int
    spectral_share: float
    regularization: float
    user_regularization: float
    bias_regularization: float
    k: int
    bias_residual_bound: float
    residual_bound: float
    clip_norm: float
    #: the DP user count the rules saw (None at ε = ∞)
    n_users_dp: float | None = None
    #: the spectral statistic's per-user bound k and residual clip B (they depend on the privacy unit)
    spectral_k: int = S.SPECTRAL_K
    spectral_bound: float = S.SPECTRAL_BOUND
    #: the DP rating count the rating-unit rules saw (None at the user unit and at ε = ∞)
    n_ratings_dp: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> ResolvedDPALS:
        """From :meth:`to_dict` (older files: ``bias_reg`` for ``bias_regularization``); CorruptFileError if incomplete."""
        if not isinstance(d, dict):
            raise CorruptFileError("the model file's manifest lacks DP-ALS's resolved hyperparameters")
        d = dict(d)
        if "bias_reg" in d and "bias_regularization" not in d:
            d["bias_regularization"] = d.pop("bias_reg")
        names = [f.name for f in dataclasses.fields(cls)]
        optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        missing = [n for n in names if n not in d and n not in optional]
        if missing:
            raise CorruptFileError(f"the model file's DP-ALS hyperparameters lack {', '.join(missing)}")
        return cls(**{n: d[n] for n in names if n in d})


@register_model("dpals")
class DPALS(DPModelMixin, Recommender):
    """Differentially private ALS with biases (see module docstring for the algorithm and proofs).

    Parameters (keyword-only; :class:`DPALSConfig` documents each)
    ----------
    epsilon, delta : float
        Target (ε, δ)-DP of everything released. ``epsilon=math.inf``: same code path, no noise, no clipping;
        then ``DPALS(epsilon=math.inf, factors=d, iterations=T, regularization=λ, user_regularization=λ_u,
        bias_regularization=λ_b, item_bias_regularization=λ_c, prior_var=τ², init_scale=s, rng=seed)`` equals
        ``ALS(feedback="explicit", ...)`` with the same keyword arguments.
    privacy_unit : {"user", "rating"}
    factors, iterations : int, optional
        Rank ``d`` and number of noisy iterations ``T``; ``None`` → :func:`default_hyperparameters`.
    max_ratings_per_user : int, optional
        ``k``; default :func:`dprec.models.global_effects.default_k` (weighting, see :mod:`dprec.models.releases`).
    clip_norm : float
        ``Γ``, bound on user-factor norms in the statistics. Default 1.
    regularization, user_regularization : float, optional
        ``λ`` of the item solves (× DP item counts) and of the user solves (× the user's rating count);
        ``None`` → the rules.
    residual_bound : float, optional
        ``B``, clip of residuals in the factor statistics. Default 1.5.
    factor_share : float, optional
        Share of the budget for the factor part, spectral start and iterations together (rest: biases).
        ``None`` → the rules.
    spectral_items : int, optional
        ``M``: start from the DP spectral item factors of the ``M`` items with the largest DP counts
        (:mod:`dprec.models._spectral`) instead of random ones; 0 = random start. ``None`` → the rules.
    spectral_share : float, optional
        Fraction of the factor part's budget spent on the spectral release (the rest on the iterations);
        ``None`` → the rules. Must be 1 when ``iterations=0`` and the start is spectral.
    prior_var : float
        ``τ²`` of the item biases. Default 0.3.
    bias_regularization : float, optional
        ``λ_b``, ridge on the user biases; ``None`` → the rules. (Deprecated name: ``bias_reg``.)
    item_bias_regularization : float
        Extra ridge on the per-iteration correction of each item bias (the item solve's constant
        coordinate). Without it a rarely rated item's bias follows its few ratings and such items flood the
        top of every ranking. Default 100 (docs/tuning.md). (Deprecated name: ``item_bias_reg``.)
    init_scale : float
        Standard deviation × √d of the random (data-independent) initial item factors (drawn from the third
        stream of ``rng.spawn(3)``, as ALS does).
    secure_noise : bool
        Pass every release — the factor statistics included — through OpenDP's Gaussian measurement (the exact
        statistic is its input); a fit whose largest release exceeds the secure sampler's limit (100,000 entries,
        e.g. the factor statistics of 1,682 items at rank 8) is refused before anything is charged.
    num_threads : int
        0 = all cores.
    rng : None, seed or Generator
        Initialisation and noise. ``None`` (default): fresh OS entropy. A seed: reproducibility mode (a
        PrivacyWarning; the guarantee holds only while the seed stays secret and is never reused on the same data).

    Fitted attributes: ``global_mean_`` (μ), ``item_bias_``, ``item_counts_`` (DP), ``item_factors_`` (DP),
    ``user_factors_`` and ``user_bias_`` (per user, never released), ``resolved_`` (:class:`ResolvedDPALS`),
    ``n_users_dp_``, and with a spectral start ``spectral_eigenvalues_`` / ``spectral_weights_``.
    """

    is_private = True
    predicts_ratings = True
    feedback = "explicit"
    Config = DPALSConfig
    ranking_advice = RATING_MODEL_RANKING_ADVICE.format(name="DPALS")

    def __init__(self, **params):
        super().__init__(**params)
        self._init_private_state()
        self.global_mean_ = self.item_bias_ = self.item_counts_ = None
        self.item_factors_ = self.user_factors_ = self.user_bias_ = None
        #: the hyperparameters the fit ran with (:class:`ResolvedDPALS`)
        self.resolved_: ResolvedDPALS | None = None
        self.spectral_eigenvalues_ = self.spectral_weights_ = None

    mu_ = deprecated_alias("global_mean_", "mu_")
    bias_reg = deprecated_alias("bias_regularization", "bias_reg")
    item_bias_reg = deprecated_alias("item_bias_regularization", "item_bias_reg")

    # ------------------------------------------------------------------ fit
    def _fit(self, data, *, ledger=None):
        X = data.matrix
        k = int(self.max_ratings_per_user or default_k(self.epsilon))
        # every configuration the rules can choose once the DP counts are known, planned and checked before the
        # charge (each probe is one band's lower edge, for the count the rules of this unit read)
        if not self.private:
            probes = [float(data.n_users)]  # the ε = ∞ rules read no count
        else:
            bands = USER_BANDS if self.privacy_unit == "user" else RATING_BANDS
            probes = [0.0] + [edge / self.epsilon for edge in bands]
        candidates = [self._releases_for(self._resolve(n, data.n_items, k, n_ratings_est=n), data) for n in probes]
        mask = self._start_private_fit(data, candidates, ledger=ledger)
        n_ratings = self.dp_counts_.get(RatingCount.name)
        hp = self._resolve(
            self.n_users_dp_, int(mask.sum()) if mask is not None else data.n_items, k, n_ratings_est=n_ratings
        )
        hp = dataclasses.replace(
            hp,
            n_users_dp=self.n_users_dp_ if self.private else None,
            n_ratings_dp=n_ratings if self.private else None,
        )
        releases = self._releases_for(hp, data)
        plan = self._plan_releases(releases, n_items=data.n_items)
        self.resolved_ = hp
        d, T, m_spec = hp.factors, hp.iterations, hp.spectral_items

        if self.private:
            # the sampling stream only where it is used (weighting is deterministic: nothing random leaves)
            sampling = self._noise.generator("contribution_sampling") if self.contribution == "sample" else None
            mu, c, counts = release_biases(self, X, plan, prior_var=self.prior_var, rng=sampling)
        else:
            mu, c, counts = E.global_effects(X, self.prior_var, hp.bias_regularization)  # ALS's initial biases too
        if mask is not None:
            c, counts = np.where(mask, c, 0.0), np.where(mask, counts, 0.0)
        self.global_mean_, self.item_bias_, self.item_counts_ = float(mu), c, counts

        # data-independent start, from the stream ALS draws its start from (so ε = ∞ equals ALS)
        V = E.random_item_factors(self._streams.init_generator(), data.n_items, d, self.init_scale)
        if m_spec > 0:
            V = self._spectral_start(X, d, m_spec, plan, hp)
        if T > 0 and d > 0:
            res = self._iterate(X, V, plan, mask, hp)
            V, U, ub = res.item_factors, res.user_factors, res.user_bias
            self.item_bias_ = res.item_bias
        else:
            U, ub = E.user_solve(
                X, V, self.global_mean_, self.item_bias_, hp.user_regularization, hp.bias_regularization
            )
        self.item_factors_ = V
        self.user_factors_, self.user_bias_ = U.astype(np.float64), ub.astype(np.float64)

    def _releases_for(self, hp: ResolvedDPALS, data) -> list:
        """The releases of one configuration ``hp`` with their budget weights (biases, spectral start, iterations)."""
        share, ss = hp.factor_share, hp.spectral_share
        out = bias_releases(
            unit=self.privacy_unit,
            k=hp.k,
            rating_bounds=data.rating_bounds,
            residual_bound=hp.bias_residual_bound,
            bias_regularization=hp.bias_regularization,
            contribution=self.contribution,
            share=1 - share,
        )
        if hp.spectral_items > 0:
            out.append(
                (
                    SpectralMoment(
                        self.privacy_unit, k=hp.spectral_k, bound=hp.spectral_bound, n_selected=hp.spectral_items
                    ),
                    share * ss,
                )
            )
        if hp.iterations > 0 and hp.factors > 0:
            out.append(
                (
                    FactorStats(
                        self.privacy_unit,
                        k=hp.k,
                        residual_bound=hp.residual_bound,
                        clip_norm=hp.clip_norm,
                        factors=hp.factors,
                        iterations=hp.iterations,
                        contribution=self.contribution,
                    ),
                    share * (1 - ss),
                )
            )
        return out

    def _spectral_start(self, X, d, m, plan, hp: ResolvedDPALS):
        """Initial item factors from the DP residual second moment of the ``m`` items with the largest DP counts.

        The item choice and everything after the release are post-processing (:mod:`dprec.models._spectral`);
        the release is :class:`~dprec.models.releases.SpectralMoment`. Under the user unit users enter with their
        own local bias ``b_i = Σ_j (r_ij − μ − c_j) / (n_i + λ_b)`` removed; under the rating unit with none.
        """
        rel = self._releases[SpectralMoment.name]
        items = np.argsort(-self.item_counts_, kind="stable")[:m]
        items = items[self.item_counts_[items] > 0]
        ctx = {
            "mu": self.global_mean_,
            "item_bias": self.item_bias_,
            "items": items,
            "bias_reg": hp.bias_regularization,
        }
        sigma = plan.sigma(rel.name) if self.private else 0.0
        if self.private:
            C = np.zeros((len(items), len(items)))
            iu = np.triu_indices(len(items), 1)
            C[iu] = self._release(rel, user_sum(rel.statistic, X, **ctx), plan[rel.name])
            C = C + C.T
        else:
            C = user_sum(rel.matrix, X, **ctx)
        V, lam, wts = S.spectral_item_factors(C, items, X.shape[1], d, sigma=sigma, scale=S.SPECTRAL_SCALE)
        self.spectral_eigenvalues_, self.spectral_weights_ = lam, wts
        return V

    def _count_releases(self) -> list:
        # the rating-unit rules count protected units: the DP rating count beside the user count
        counts = super()._count_releases()
        return counts + [RatingCount("rating")] if self.privacy_unit == "rating" else counts

    def _resolve(self, n_users_est: float, n_items_pub: int, k: int, *, n_ratings_est=None) -> ResolvedDPALS:
        """The hyperparameters left as None, filled by the rules from public inputs (ε, the DP counts, the public
        item count)."""
        rules = default_hyperparameters(
            self.epsilon,
            n_users_est,
            n_items_pub,
            privacy_unit=self.privacy_unit,
            n_ratings_est=n_ratings_est or 0.0,
        )
        d = rules["factors"] if self.factors is None else self.factors
        T = rules["iterations"] if self.iterations is None else self.iterations
        share = rules["factor_share"] if self.factor_share is None else self.factor_share
        m = rules["spectral_items"] if self.spectral_items is None else self.spectral_items
        m = int(min(m, n_items_pub)) if d > 0 else 0
        ss = rules["spectral_share"] if self.spectral_share is None else self.spectral_share
        if m == 0:
            ss = 0.0
        elif T == 0:
            ss = 1.0  # nothing else to spend the factor budget on
        elif ss >= 1.0 or ss == 0.0:
            # iterations after a spectral start the rules did not plan (the spectral-only or biases-only band
            # with settings passed explicitly): the high band's split
            ss = _SPECTRAL_SHARE_WITH_ITERATIONS
        if self.private and (d == 0 or (T == 0 and m == 0)):
            share = 0.0
        elif self.private and share == 0.0:
            share = 0.5
        pick = lambda name: getattr(self, name) if getattr(self, name) is not None else rules[name]  # noqa: E731
        return ResolvedDPALS(
            factors=int(d),
            iterations=int(T),
            factor_share=float(share),
            spectral_items=m,
            spectral_share=float(ss),
            regularization=pick("regularization"),
            user_regularization=pick("user_regularization"),
            bias_regularization=pick("bias_regularization"),
            k=k,
            bias_residual_bound=BIAS_RESIDUAL_BOUND,
            residual_bound=self.residual_bound or FACTOR_RESIDUAL_BOUND,
            clip_norm=self.clip_norm,
            spectral_k=S.spectral_bounds(self.privacy_unit)[0],
            spectral_bound=S.spectral_bounds(self.privacy_unit)[1],
        )

    def _iterate(self, X, V, plan, mask, hp: ResolvedDPALS):
        """T noisy ALS iterations on the residuals of the released biases, on the shared engine
        (:func:`dprec.models._biased_als.run`): contribution weights, residual clipping at B, user-factor
        clipping at Γ and the noisy PSD item solve are plugged in when private; at ε = ∞ it is the exact solve
        of non-private ALS. Returns the engine's result (item side and the final user solve)."""
        # user-level weights under both units (see FactorStats), aligned once with the item-major CSR; on a
        # distributed backend's user blocks each block computes both itself (deterministic weighting only)
        rel = self._releases.get(FactorStats.name)
        if is_blocked(X):
            item_major_csr, w_t = None, (rel.item_major_weights if self.private else None)
        else:
            item_major_csr = E.item_major(X)
            w_t = (
                rel.item_major_weights(
                    X,
                    rng=self._noise.generator("factor_contribution_sampling"),
                    item_major_users=item_major_csr[0].indices,
                )
                if self.private
                else None
            )
        d = V.shape[1]
        counts = np.maximum(self.item_counts_, 0.0)
        if self.private:
            step = plan[rel.name]
            sigma = step.sigma
            # λ_j = λ·ñ_j + 2σ√(d+1) (+ λ_c on the bias correction)
            reg = E.item_ridge(
                hp.regularization * counts + 2.0 * sigma * math.sqrt(d + 1), d, self.item_bias_regularization
            )
            # the iteration, the noise buffers (reused across iterations) and the iteration they hold noise for
            t, bufs, drawn = [0], [], [-1]

            def draw(n_i, k1, index):
                bufs[:] = self._noise.draw_rows(
                    n_i, (k1 * (k1 + 1) // 2, k1), step=rel.name, sigma=sigma, index=index, out=bufs or None
                )
                drawn[0] = index

            def solve(A, b):
                # the Gaussian mechanism on the stacked (upper-triangle A_j, b_j), then PSD projection and the
                # ridge solve in one eigendecomposition per item (post-processing)
                n_i, k1 = b.shape
                if self.secure_noise:  # the statistic itself through OpenDP
                    A_n, b_n = rel.unpack(self._release(rel, rel.pack(A, b), step, index=t[0]), n_i, k1)
                    out = noisy_psd_solve(A_n, b_n, np.zeros((n_i, k1 * (k1 + 1) // 2)), np.zeros((n_i, k1)), reg)
                else:  # the kernel adds the noise (fused); drawn in parallel, one stream per row block
                    if drawn[0] != t[0]:  # never reuse a buffer drawn for another iteration
                        draw(n_i, k1, t[0])
                    noise_tri, noise_b = bufs
                    self._record(rel, step)
                    out = noisy_psd_solve(A, b, noise_tri, noise_b, reg)
                    if t[0] + 1 < hp.iterations:
                        # the next iteration's noise now (its own stream, index t + 1: the same values as drawn
                        # later). The draw is a numba prange pass, whose OpenMP workers spin for ~10 ms after it;
                        # here the user step's prange pass follows it, while right before the PSD solve (Python
                        # threads) the spinning workers took a core from it (rank 8: 20 ms instead of 11)
                        draw(n_i, k1, t[0] + 1)
                t[0] += 1
                return out
        else:
            solve = E.exact_item_solver(counts, d, hp.regularization, self.item_bias_regularization)
        return E.run(
            X,
            V,
            mu=self.global_mean_,
            item_bias=self.item_bias_,
            iterations=hp.iterations,
            user_reg=hp.user_regularization,
            bias_reg=hp.bias_regularization,
            solve=solve,
            weights=w_t,
            residual_bound=hp.residual_bound if self.private else np.inf,
            clip_norm=hp.clip_norm if self.private else None,
            mask=mask,
            item_major_csr=item_major_csr,
        )

    def _user_solve(self, X, V):
        """Each user's ``[u_i; b_i]`` from the released item side and the user's own ratings (exact, local;
        float32 kernels with float64 accumulation, returned as float64)."""
        hp = self.resolved_
        U, b = E.user_solve(X, V, self.global_mean_, self.item_bias_, hp.user_regularization, hp.bias_regularization)
        return U.astype(np.float64), b.astype(np.float64)

    # ------------------------------------------------------------------ reporting
    def _bounds_report(self) -> dict:
        return {
            **self.resolved_.to_dict(),
            "unit": self.privacy_unit,
            "rating_bounds": self.rating_bounds_,
            "contribution": self.contribution,
        }

    def _released_description(self) -> dict:
        return {
            "global_mean": "DP",
            "item_bias": "DP",
            "item_counts": "DP (noisy weighted counts)",
            "item_factors": "DP",
            "n_users": "DP count (used only to choose hyperparameters)",
            "user_factors": "per-user, never released",
            "user_bias": "per-user, never released",
        }

    # ------------------------------------------------------------------ serving
    def _clip(self, x):
        lo, hi = self.rating_bounds_
        return np.clip(x, lo, hi)

    def _scores(self, rows):
        # unclipped: clipping to the rating bounds would tie every item predicted above the top rating
        s = (
            self.global_mean_
            + self.user_bias_[rows][:, None]
            + self.item_bias_[None, :]
            + self.user_factors_[rows] @ self.item_factors_.T
        )
        return self._mask_unreleased(s)

    def _predict(self, rows, cols):
        known = rows >= 0
        r = np.maximum(rows, 0)
        out = self.global_mean_ + self.item_bias_[cols]
        if len(self.user_bias_):
            out = out + np.where(
                known, self.user_bias_[r] + np.einsum("ij,ij->i", self.user_factors_[r], self.item_factors_[cols]), 0.0
            )
        return self._clip(out)

    def _dot_scores(self):  # the fast top-k path of recommend (base.DotScores)
        return self._dot_form(biases=True)

    def _fallback_scores(self):
        return self._mask_unreleased(self.global_mean_ + self.item_bias_)

    def _reserve_users(self, n_new):
        self.user_factors_ = np.vstack([self.user_factors_, np.zeros((n_new, self.user_factors_.shape[1]))])
        self.user_bias_ = np.concatenate([self.user_bias_, np.zeros(n_new)])

    def _fold_in_rows(self, rows, X):
        # the user solve is per row of X already (one call for the whole batch)
        u, b = self._user_solve(sp.csr_matrix(X), self.item_factors_)
        self.user_factors_[rows], self.user_bias_[rows] = u, b

    def _fold_in(self, row, cols, vals):
        X1 = sp.csr_matrix((vals, cols, [0, len(cols)]), shape=(1, len(self._item_ids)))
        u, b = self._user_solve(X1, self.item_factors_)
        if row == len(self.user_bias_):
            self.user_factors_ = np.vstack([self.user_factors_, u])
            self.user_bias_ = np.append(self.user_bias_, b)
        else:
            self.user_factors_[row], self.user_bias_[row] = u[0], b[0]

    def _explain(self, row, col):
        """Contributions of each rated item j: the user solve is linear in the targets t_j = r_j − μ − c_j, so
        the score's user-dependent part ``[v_col; 1]ᵀ W⁻¹ Σ_j y_j t_j`` splits exactly over rated items."""
        s = slice(self._seen.indptr[row], self._seen.indptr[row + 1])
        cols, vals = self._seen.indices[s], self._seen.data[s]
        d = self.item_factors_.shape[1]
        Y = np.hstack([self.item_factors_[cols], np.ones((len(cols), 1))])
        reg = np.r_[
            np.full(d, self.resolved_.user_regularization * (len(cols) + 1.0)), self.resolved_.bias_regularization
        ]
        W = Y.T @ Y + np.diag(reg)
        q = np.linalg.solve(W, np.r_[self.item_factors_[col], 1.0])
        contrib = (Y @ q) * (vals - self.global_mean_ - self.item_bias_[cols])
        return cols, vals, contrib, self.global_mean_ + self.item_bias_[col]

    def _explain_baseline_words(self):
        return "the overall average rating and this item's average"

    def _item_vectors(self):
        return self.item_factors_ if self.item_factors_.shape[1] else None

    def _get_state(self):
        return {
            "mu": np.array(self.global_mean_),
            "item_bias": self.item_bias_,
            "item_counts": self.item_counts_,
            "item_factors": self.item_factors_,
            "user_factors": self.user_factors_,
            "user_bias": self.user_bias_,
        }

    def _set_state(self, s):
        self.global_mean_ = float(s["mu"])
        self.item_bias_, self.item_counts_, self.item_factors_ = s["item_bias"], s["item_counts"], s["item_factors"]
        self.user_factors_, self.user_bias_ = s["user_factors"], s["user_bias"]

    def _public_state(self):
        m = self._released_item_mask()
        return {
            "mu": np.array(self.global_mean_),
            "item_bias": self.item_bias_[m],
            "item_counts": self.item_counts_[m],
            "item_factors": self.item_factors_[m],
        }

    def _from_public_state(self, s):
        self.global_mean_ = float(s["mu"])
        self.item_bias_, self.item_counts_, self.item_factors_ = s["item_bias"], s["item_counts"], s["item_factors"]
        self.user_factors_ = np.zeros((0, self.item_factors_.shape[1]))
        self.user_bias_ = np.zeros(0)

    def _extra_manifest(self) -> dict:
        return {**super()._extra_manifest(), "hyperparameters": self.resolved_.to_dict()}

    def _restore_manifest(self, manifest):
        super()._restore_manifest(manifest)
        self.resolved_ = ResolvedDPALS.from_dict(manifest.get("hyperparameters"))
