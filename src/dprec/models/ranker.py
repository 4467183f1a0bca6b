"""The default DP ranker: a rule on public inputs and the DP user count picks the ranker and its hyperparameters.

:class:`DPRanker` (``"dp-ranker"``) does not release anything of its own. It runs the DP fit protocol of
:class:`~dprec.models._dp.DPModelMixin` once — every release list that any candidate could run is validated
before the ledger is charged, once, for the whole fit; then DP item selection (without a public catalog) and the
DP user count ñ — and then :func:`default_ranker` chooses, from ``(ε, δ, ñ, n_items)`` only, which candidate
model fits the rest and with which hyperparameters. The chosen model (the *delegate*) draws its releases from the
ranker's noise streams, inside the budget already charged, and serves every call. The privacy report is the
delegate's releases plus a ``"ranker"`` entry: the choice, its hyperparameters and the rule's reason.

Candidates (:data:`CANDIDATES`):

- ``"dp-popularity"`` (:class:`~dprec.models.baselines.DPPopularity`), where ``ε·ñ`` is too small for a
  personalised ranker to beat it;
- ``"dp-itemitem"`` (:class:`~dprec.models.itemitem.DPItemItem`) with the blend weight ``α`` and the noise
  ridge ``c`` of the rule.

A candidate is a registered DP model class with the two fit hooks ``_private_candidates(data)`` (its release
lists) and ``_fit_after_start(data)``. Adding one (e.g. a DP implicit ALS) is one entry in :data:`CANDIDATES`
and one branch in :func:`default_ranker`.

The rule's constants were chosen on synthetic data only (``dprec.datasets.synthetic(..., exposure="affinity")``,
1,000 to 10,000 users); ``docs/tuning.md`` ("The default DP ranker") has the grid and the held-out MovieLens
numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field

from ..errors import CorruptFileError
from ._dp import DPModelMixin
from .base import Recommender
from .baselines import DPPopularity
from .config import PrivateConfig
from .itemitem import DPItemItem
from .registry import register_model

__all__ = ["DPRanker", "DPRankerConfig", "RankerChoice", "default_ranker", "ranker_signal", "CANDIDATES"]

#: the candidate models by registered name
CANDIDATES: dict[str, type] = {"dp-popularity": DPPopularity, "dp-itemitem": DPItemItem}
#: below this signal s = ε·ñ the ranker is DP popularity (personalisation cannot pay)
RANKER_MIN_SIGNAL = 1500.0
#: α = min(1, s / RANKER_ALPHA_SCALE): the blend weight of DP item-item's personalised term
RANKER_ALPHA_SCALE = 5000.0
#: c = clip(RANKER_RIDGE · √(RANKER_ALPHA_SCALE / s), RANKER_RIDGE_RANGE): the noise ridge λ = c·σ√M + λ₀
RANKER_RIDGE = 8.0
RANKER_RIDGE_RANGE = (4.0, 16.0)


def ranker_signal(epsilon: float, n_users_dp: float) -> float:
    """The rule's one input besides the item count: ``s = ε·ñ`` (∞ at ε = ∞)."""
    return math.inf if math.isinf(epsilon) else float(epsilon) * max(float(n_users_dp), 0.0)


@dataclass(frozen=True)
class RankerChoice:
    """The rule's output: the candidate's registered ``name``, its hyperparameters ``params`` (keyword arguments
    of that model, besides the privacy parameters) and the ``reason`` in words (for the privacy report)."""

    name: str
    params: dict = field(default_factory=dict)
    reason: str = ""


def default_ranker(epsilon: float, delta: float, n_users_dp: float, n_items: int) -> RankerChoice:
    """The ranker and its hyperparameters from public inputs only: ``ε``, ``δ``, the DP user count ``ñ`` and the
    (public or DP-selected) item count.

    With the signal ``s = ε·ñ`` (:func:`ranker_signal`; the noise of every release scales as ``1/ε`` and the
    statistics as ``ñ``):

    - ``ε = ∞``: DP item-item at ε = ∞, the non-private EASE (``α = 1``);
    - ``s < RANKER_MIN_SIGNAL`` (1,500), or fewer than 2 items: DP popularity (the whole budget on the counts);
    - otherwise DP item-item with the blend weight ``α = min(1, s/5000)`` and the noise ridge
      ``c = clip(8·√(5000/s), 4, 16)`` (more shrinkage of the noisy Gram matrix when the signal is weak);
      ``M = min(n_items, 2000)``, ``k = 20`` and the counts' share 0.2 are DP item-item's own defaults, so the
      release lists do not depend on ñ.

    ``δ`` enters only through the accounting of the chosen model. The constants were chosen on synthetic data
    (``docs/tuning.md``, "The default DP ranker").
    """
    if math.isinf(epsilon):
        return RankerChoice("dp-itemitem", {"alpha": 1.0}, "ε = ∞: the non-private item-item (EASE) ranker")
    s = ranker_signal(epsilon, n_users_dp)
    if s < RANKER_MIN_SIGNAL or n_items < 2:
        return RankerChoice(
            "dp-popularity",
            {},
            f"ε·ñ = {s:.0f} < {RANKER_MIN_SIGNAL:.0f}: too little signal for a personalised ranker to beat DP "
            "popularity",
        )
    alpha = float(min(1.0, s / RANKER_ALPHA_SCALE))
    lo, hi = RANKER_RIDGE_RANGE
    ridge = float(min(hi, max(lo, RANKER_RIDGE * math.sqrt(RANKER_ALPHA_SCALE / s))))
    return RankerChoice(
        "dp-itemitem",
        {"alpha": alpha, "noise_regularization": ridge},
        f"ε·ñ = {s:.0f} ≥ {RANKER_MIN_SIGNAL:.0f}: DP item-item with blend α = min(1, ε·ñ/{RANKER_ALPHA_SCALE:.0f}) "
        f"and noise ridge c = clip({RANKER_RIDGE:g}·√({RANKER_ALPHA_SCALE:.0f}/(ε·ñ)), {lo:g}, {hi:g})",
    )


class DPRankerConfig(PrivateConfig):
    """Parameters of :class:`DPRanker`."""

    ranker: Literal["auto", "dp-popularity", "dp-itemitem"] = Field(
        "auto", description='the ranker: "auto" = the rule default_ranker(ε, δ, ñ, n_items); or force one'
    )


@register_model("dp-ranker")
class DPRanker(DPModelMixin, Recommender):
    """The default DP ranker; see the module docstring. Parameters: :class:`DPRankerConfig`.

    Fitted attributes: ``choice_`` (:class:`RankerChoice`), ``delegate_`` (the fitted candidate model).
    """

    is_private = True
    predicts_ratings = False
    feedback = "implicit"
    Config = DPRankerConfig

    def __init__(self, **params):
        super().__init__(**params)
        self._init_private_state()
        self.choice_: RankerChoice | None = None
        self.delegate_ = None

    def _check_fit_data(self, data):
        """Rankings need no rating bounds."""

    # ------------------------------------------------------------------ fit
    def _make_delegate(self, name: str, params: dict):
        cls = CANDIDATES.get(name)
        if cls is None:
            raise CorruptFileError(f"unknown DP ranker candidate {name!r}; known: {sorted(CANDIDATES)}")
        common = {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "privacy_unit": self.privacy_unit,
            "secure_noise": self.secure_noise,
            "num_threads": self.num_threads,
        }
        return cls(**common, **params)

    def _fit(self, data, *, ledger=None):
        names = list(CANDIDATES) if self.ranker == "auto" else [self.ranker]
        # every release list of every candidate is validated before the one charge; the rule then picks one after
        # ñ. The rule sets only post-processing hyperparameters (α, c), so these lists are the ones that can run;
        # a rule branch that changes a candidate's releases (k, M, shares) must list those variants here too.
        candidate_lists = []
        for name in names:
            candidate_lists += self._make_delegate(name, {})._private_candidates(data)
        mask = self._start_private_fit(data, candidate_lists, ledger=ledger)
        if self.ranker == "auto":
            choice = default_ranker(self.epsilon, self.delta, self.n_users_dp_, data.n_items)
        else:
            choice = RankerChoice(self.ranker, {}, "chosen by the caller (ranker=...)")
            if self.ranker == "dp-itemitem" and math.isinf(self.epsilon):
                choice = RankerChoice(self.ranker, {"alpha": 1.0}, choice.reason)
        d = self._make_delegate(choice.name, choice.params)
        # the delegate continues this fit: same noise streams, budget, selection, ñ and report
        for attr in (
            "_streams",
            "_noise",
            "_noise_origin",
            "_count_plan",
            "_rest_budget",
            "_selection",
            "_catalog_public",
            "_ledger_state",
            "_report_steps",
            "n_users_dp_",
        ):
            setattr(d, attr, getattr(self, attr))
        d._item_mask = mask
        self._share_base_state(d)
        d._fit_after_start(data)
        d._fitted = True
        self._releases = d._releases
        self._item_mask = mask
        self.choice_, self.delegate_ = choice, d

    def _share_base_state(self, d):
        """The delegate sees this model's ids, history and mask (fold-in grows them here)."""
        d._user_ids, d._item_ids = self._user_ids, self._item_ids
        d._user_index_cache = d._item_index_cache = None
        d._seen, d.rating_bounds_ = self._seen, self.rating_bounds_
        d._item_mask = self._item_mask

    def _d(self):
        self._share_base_state(self.delegate_)
        return self.delegate_

    # ------------------------------------------------------------------ report
    def privacy_report(self) -> dict:
        """The DP fit's report (:meth:`DPModelMixin.privacy_report`) plus ``"ranker"``: the choice and why."""
        rep = super().privacy_report()
        rep["ranker"] = {
            "chosen": self.choice_.name,
            "params": dict(self.choice_.params),
            "reason": self.choice_.reason,
            "rule": "dprec.models.ranker.default_ranker (public inputs ε, δ, n_items and the DP user count ñ; "
            "constants chosen on synthetic data)",
        }
        return rep

    def _bounds_report(self):
        return dict(self.delegate_._bounds_report(), ranker=self.choice_.name)

    def _released_description(self):
        return self.delegate_._released_description()

    # ------------------------------------------------------------------ serving
    def _scores(self, rows):
        return self._d()._scores(rows)

    def _predict(self, rows, cols):
        return self._d()._predict(rows, cols)

    def _fallback_scores(self):
        return self._d()._fallback_scores()

    def _fold_in(self, row, cols, vals):
        self._d()._fold_in(row, cols, vals)

    def _reserve_users(self, n_new):
        self._d()._reserve_users(n_new)

    def _fold_in_rows(self, rows, X):
        self._d()._fold_in_rows(rows, X)

    def _drop_users(self, keep, n_before):
        self._d()._drop_users(keep, n_before)  # the per-user state lives in the delegate

    def _explain(self, row, col):
        """The delegate's decomposition (exact when the delegate's is)."""
        return self._d()._explain(row, col)

    def _explain_baseline_words(self):
        return self._d()._explain_baseline_words()

    @property
    def explain_exact(self) -> bool:
        d = getattr(self, "delegate_", None)
        return True if d is None else d.explain_exact

    @property
    def explain_uses_ratings(self) -> bool:
        d = getattr(self, "delegate_", None)
        return True if d is None else d.explain_uses_ratings

    def _item_vectors(self):
        return self._d()._item_vectors()

    @property
    def item_counts_(self) -> np.ndarray:
        """The chosen model's released DP item counts (both candidates release them)."""
        return self._d().item_counts_

    # ------------------------------------------------------------------ state
    def _choice_array(self) -> np.ndarray:
        return np.array(json.dumps(asdict(self.choice_)))

    def _restore_choice(self, s: dict) -> dict:
        try:
            c = json.loads(str(s.pop("__ranker")))
            self.choice_ = RankerChoice(c["name"], dict(c["params"]), str(c["reason"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptFileError(f"the DP ranker's choice is missing or malformed ({exc})") from None
        self.delegate_ = self._make_delegate(self.choice_.name, self.choice_.params)
        return {k[2:]: v for k, v in s.items() if k.startswith("d.")}

    def _get_state(self):
        return {"__ranker": self._choice_array(), **{f"d.{k}": v for k, v in self._d()._get_state().items()}}

    def _set_state(self, s):
        inner = self._restore_choice(dict(s))
        self.delegate_._set_state(inner)
        self.delegate_._fitted = True

    def _public_state(self):
        return {"__ranker": self._choice_array(), **{f"d.{k}": v for k, v in self._d()._public_state().items()}}

    def _from_public_state(self, s):
        inner = self._restore_choice(dict(s))
        self.delegate_._from_public_state(inner)
        self.delegate_._fitted = True
