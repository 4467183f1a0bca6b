r"""Empirical privacy audit: canary users, the one-run bound of Steinke, Nasr & Jagielski (2023) and the
multi-run Clopper–Pearson bound.

An audit gives a *lower* bound ε̂ on the privacy loss that a mechanism actually has, with confidence
``1 − α``. A correct (ε, δ)-DP mechanism must give ε̂ ≤ ε (up to the α chance of a false alarm); ε̂ > ε is
evidence of a bug (a missing noise term, a wrong sensitivity). ε̂ well below ε does **not** prove the
mechanism private: an audit only sees what its canaries and its score reveal.

Canaries (:func:`make_canaries`, :func:`insert_canaries`)
---------------------------------------------------------
``m`` synthetic users, each rating ``c`` items of its own that nobody else rates (new catalog entries, so
they are "rare items"), at the top of the rating scale. Each canary is inserted independently with
probability ½; the canary items are in the public catalog whether or not their canary was inserted (so the
released item side has a slot for each). A user whose ``c ≥ k`` items carry weight ``√(k/c)`` each (the
contribution bound ``Σ_j w_j² ≤ k`` of :func:`dprec.models.releases.contribution_weights`) moves the released
counts of its items by ``√(k c)`` in total, against noise of standard deviation ``σ√c``: the signal-to-noise
ratio ``√k/σ = Δ/σ`` of the worst case of the counts release, for every ``c ≥ k``.

Score (:func:`canary_scores`)
-----------------------------
Computed from the *released item side only*: the model is exported with ``export_public`` and read back with
``load_public`` (the DP artifact; no per-user state), and a canary's score is the sum over its items of a
released per-item statistic (by default ``item_counts_``, which every dprec DP model releases). The audit
therefore measures the counts release alone: a model that spends a share of its budget elsewhere can leak
more than this audit sees.

One-run audit (:func:`one_run_epsilon`, :func:`audit_scores`)
-------------------------------------------------------------
The auditor guesses "in" for the ``r/2`` highest scores, "out" for the ``r/2`` lowest, and abstains on the
other ``m − r``. With ``v`` correct guesses, Steinke, Nasr & Jagielski (NeurIPS 2023, Theorem 3.1 with the
δ term of their Proposition 5.2 / Algorithm 2) show that for an (ε, δ)-DP mechanism

.. math::
    \Pr[V \ge v] \le p(\varepsilon) = \Pr[\mathrm{Bin}(r, q) \ge v]
        + 2 m \delta \max_{1 \le i \le v} \frac{1}{i} \Pr[v - i \le \mathrm{Bin}(r, q) < v],
    \qquad q = \frac{e^{\varepsilon}}{1 + e^{\varepsilon}} .

``p`` increases with ε; ε̂ is the largest ε with ``p(ε) < α``, found by bisection (0 when even ``p(0) ≥ α``).
:func:`audit_scores` tries a few values of ``r`` and applies a Bonferroni correction (each at ``α / #r``),
so the reported ε̂ keeps its ``1 − α`` confidence.

Multi-run audit (:func:`multi_run_epsilon`)
-------------------------------------------
Many independent runs with the canary (scores ``s_in``) and without it (``s_out``); a threshold ``t`` says
"in" when ``s ≥ t``. (ε, δ)-DP implies ``TPR ≤ e^ε FPR + δ`` and ``1 − FPR ≤ e^ε (1 − TPR) + δ``, so with
two-sided Clopper–Pearson intervals at level ``1 − α/2`` each on TPR and FPR (jointly ``1 − α``)

.. math:: \hat\varepsilon = \max\Bigl(\log\frac{\underline{TPR} - \delta}{\overline{FPR}},\;
    \log\frac{1 - \overline{FPR} - \delta}{1 - \underline{TPR}}\Bigr)_+ .

The threshold is chosen on the first half of the runs and the bound computed on the second half, so that
choosing it does not bias the bound.

All audit figures use the private training data (the canaries are synthetic, the rest is real): they are
measurements, not DP releases.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .._rng import as_generator
from .._validation import check_fraction, check_int, check_number
from ..errors import ConfigError

__all__ = [
    "one_run_p_value",
    "one_run_epsilon",
    "clopper_pearson",
    "multi_run_epsilon",
    "CanaryDesign",
    "make_canaries",
    "insert_canaries",
    "canary_scores",
    "audit_scores",
    "OneRunAudit",
    "audit_model",
]


# ---------------------------------------------------------------------------------------------- one run
def _check_counts(m, r, v):
    m = check_int(m, "m", minimum=1)
    r = check_int(r, "r (number of guesses)")
    v = check_int(v, "v (correct guesses)")
    if not 0 <= v <= r <= m:
        raise ConfigError(f"need 0 ≤ v ≤ r ≤ m (correct ≤ guesses ≤ canaries), got v={v}, r={r}, m={m}")
    return m, r, v


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    r"""The p-value of "the mechanism is (ε, δ)-DP" after ``v`` correct guesses out of ``r`` among ``m`` canaries.

    .. math:: p = \Pr[\mathrm{Bin}(r,q) \ge v] + 2m\delta \max_{1\le i\le v} \tfrac{1}{i}
              \Pr[v-i \le \mathrm{Bin}(r,q) < v], \quad q = e^\varepsilon/(1+e^\varepsilon)

    (Steinke, Nasr & Jagielski 2023). Returns ``min(p, 1)``.
    """
    m, r, v = _check_counts(m, r, v)
    eps = check_number(epsilon, "epsilon", low_inclusive=True, allow_inf=True)
    delta = check_fraction(delta, "delta", zero=True, one=True)
    q = 1.0 / (1.0 + math.exp(-eps)) if math.isfinite(eps) else 1.0
    tail = float(stats.binom.sf(v - 1, r, q))  # P[Bin(r, q) ≥ v]
    extra = 0.0
    if v > 0 and delta > 0:
        # P[v − i ≤ Bin < v] = Σ_{j=1..i} pmf(v − j), for i = 1..v
        window = np.cumsum(stats.binom.pmf(np.arange(v - 1, -1, -1), r, q))
        extra = float(np.max(window / np.arange(1, v + 1)))
    return float(min(1.0, tail + 2.0 * m * delta * extra))


def one_run_epsilon(m: int, r: int, v: int, delta: float, *, alpha: float = 0.05, tol: float = 1e-6) -> float:
    """ε̂: the largest ε whose :func:`one_run_p_value` is below ``alpha`` (0 if none), by bisection.

    Parameters
    ----------
    m, r, v : int
        Canaries, guesses and correct guesses (``0 ≤ v ≤ r ≤ m``).
    delta : float
        The δ the mechanism claims.
    alpha : float, default 0.05
        Significance level: with probability ≥ ``1 − alpha`` an (ε, δ)-DP mechanism gives ε̂ ≤ ε.
    tol : float
        Absolute tolerance of the bisection (in ε units); the result errs low.
    """
    m, r, v = _check_counts(m, r, v)
    alpha = check_fraction(alpha, "alpha")
    if one_run_p_value(m, r, v, 0.0, delta) >= alpha:
        return 0.0
    lo, hi = 0.0, 1.0
    while one_run_p_value(m, r, v, hi, delta) < alpha:
        lo, hi = hi, 2.0 * hi
        if hi > 1e3:  # p stays below α: every guess right with δ = 0 and huge r is not reachable in practice
            return math.inf
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if one_run_p_value(m, r, v, mid, delta) < alpha else (lo, mid)
    return lo


# ---------------------------------------------------------------------------------------------- multi run
def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided Clopper–Pearson interval ``(lo, hi)`` for a binomial proportion, coverage ``≥ 1 − alpha``."""
    n = check_int(n, "n", minimum=1)
    k = check_int(k, "k")
    if k > n:
        raise ConfigError(f"k={k} successes out of n={n} trials is impossible")
    alpha = check_fraction(alpha, "alpha")
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def _eps_from_rates(tpr_lo, tpr_hi, fpr_lo, fpr_hi, delta) -> float:
    cands = [0.0]
    if fpr_hi > 0 and tpr_lo - delta > 0:
        cands.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1 - tpr_lo > 0 and 1 - fpr_hi - delta > 0:
        cands.append(math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    return max(cands)


def multi_run_epsilon(scores_in, scores_out, *, delta: float, alpha: float = 0.05, threshold=None) -> dict:
    """Lower bound on ε from independent runs with (``scores_in``) and without (``scores_out``) the canary.

    Parameters
    ----------
    scores_in, scores_out : array-like of float
        The attack's score in each run (higher = "the canary was in").
    delta : float
        The δ the mechanism claims.
    alpha : float, default 0.05
        The bound holds with probability ≥ ``1 − alpha`` (``alpha/2`` for each Clopper–Pearson interval).
    threshold : float, optional
        Say "in" when ``score ≥ threshold``. Default: chosen on the first half of each array (the threshold
        with the largest Clopper–Pearson bound there), and the bound computed on the second half only.

    Returns
    -------
    dict
        ``epsilon_lower``, ``threshold``, ``tpr``, ``fpr`` (point estimates on the evaluation runs),
        ``tpr_interval``, ``fpr_interval``, ``n_in``, ``n_out`` (evaluation runs), ``alpha``, ``delta``.
    """
    s_in = np.asarray(scores_in, dtype=np.float64).ravel()
    s_out = np.asarray(scores_out, dtype=np.float64).ravel()
    delta = check_fraction(delta, "delta", zero=True, one=True)
    alpha = check_fraction(alpha, "alpha")
    if threshold is None:
        if s_in.size < 4 or s_out.size < 4:
            raise ConfigError("choosing the threshold needs at least 4 runs with and 4 without the canary")
        a_in, s_in = s_in[: s_in.size // 2], s_in[s_in.size // 2 :]
        a_out, s_out = s_out[: s_out.size // 2], s_out[s_out.size // 2 :]
        # the threshold whose Clopper–Pearson bound is best on the selection half (robust to lucky tails)
        best, threshold = -math.inf, None
        for t in np.unique(np.concatenate([a_in, a_out])):
            ti = clopper_pearson(int(np.sum(a_in >= t)), a_in.size, alpha / 2)
            fo = clopper_pearson(int(np.sum(a_out >= t)), a_out.size, alpha / 2)
            e = _eps_from_rates(ti[0], ti[1], fo[0], fo[1], delta)
            if e > best:
                best, threshold = e, float(t)
    elif s_in.size < 1 or s_out.size < 1:
        raise ConfigError("need at least one run with and one without the canary")
    threshold = float(threshold)
    k_in, k_out = int(np.sum(s_in >= threshold)), int(np.sum(s_out >= threshold))
    tpr_ci = clopper_pearson(k_in, s_in.size, alpha / 2)
    fpr_ci = clopper_pearson(k_out, s_out.size, alpha / 2)
    eps = _eps_from_rates(tpr_ci[0], tpr_ci[1], fpr_ci[0], fpr_ci[1], delta)
    return {
        "epsilon_lower": eps,
        "threshold": threshold,
        "tpr": k_in / s_in.size,
        "fpr": k_out / s_out.size,
        "tpr_interval": tpr_ci,
        "fpr_interval": fpr_ci,
        "n_in": int(s_in.size),
        "n_out": int(s_out.size),
        "alpha": alpha,
        "delta": delta,
    }


# ---------------------------------------------------------------------------------------------- canaries
@dataclass
class CanaryDesign:
    """``m`` canary users, each with its own ``c`` items, and which of them are inserted.

    Attributes
    ----------
    user_ids : ndarray, shape (m,)
        Raw ids of the canary users (not in the data).
    item_ids : ndarray, shape (m, c)
        Raw ids of each canary's own items (not in the data; added to the public catalog).
    included : ndarray of bool, shape (m,)
        Whether each canary is inserted (independent fair coins).
    rating : float
        The rating every canary gives its items.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    included: np.ndarray
    rating: float

    @property
    def m(self) -> int:
        return int(self.user_ids.size)


def _fresh_ids(existing: np.ndarray, n: int, prefix: str) -> np.ndarray:
    if existing.size and existing.dtype.kind in "iu":
        start = int(existing.max()) + 1
        return np.arange(start, start + n, dtype=existing.dtype)
    return np.array([f"{prefix}{j}" for j in range(n)], dtype=object)


def make_canaries(data, n_canaries: int, items_per_canary: int = 20, *, rng, rating=None) -> CanaryDesign:
    """Draw a canary design for ``data``: fresh user and item ids, inclusion by fair coins from ``rng``.

    Parameters
    ----------
    data : Interactions
        The dataset the canaries go into (only its id vocabularies and rating bounds are read).
    n_canaries : int
        ``m``; the one-run audit needs a few hundred to certify ε̂ of a few units.
    items_per_canary : int, default 20
        ``c``; ``c ≥ k`` (the models' ``max_ratings_per_user``, 20 by default) attains the counts release's
        sensitivity, smaller ``c`` gives weaker canaries.
    rng : seed or Generator
        The audit's randomness (which canaries are in). Required.
    rating : float, optional
        The canaries' rating; default the top of ``data.rating_bounds`` (1.0 for implicit data).
    """
    m = check_int(n_canaries, "n_canaries", minimum=1)
    c = check_int(items_per_canary, "items_per_canary", minimum=1)
    gen = as_generator(rng)
    if rating is None:
        rating = float(data.rating_bounds[1]) if data.rating_bounds is not None else 1.0
    users = _fresh_ids(np.asarray(data.user_ids), m, "__canary_user_")
    items = _fresh_ids(np.asarray(data.item_ids), m * c, "__canary_item_").reshape(m, c)
    included = gen.random(m) < 0.5
    return CanaryDesign(users, items, included, float(rating))


def insert_canaries(data, design: CanaryDesign):
    """``data`` plus the included canaries; the catalog is ``data``'s items plus *every* canary item (public).

    The catalog is declared public (``public_items=True``): the audit treats it as the auditor's input, so the
    released item side has an entry for each canary item whether or not its canary is in.
    """
    from ..data import Interactions

    base = data.to_pandas()[["user", "item", "rating"]]
    inc = np.flatnonzero(design.included)
    c = design.item_ids.shape[1]
    extra = pd.DataFrame(
        {
            "user": np.repeat(design.user_ids[inc], c),
            "item": design.item_ids[inc].ravel(),
            "rating": np.full(inc.size * c, design.rating),
        }
    )
    df = pd.concat([base, extra], ignore_index=True)
    catalog = np.concatenate([np.asarray(data.item_ids, dtype=object), design.item_ids.ravel().astype(object)])
    users = np.concatenate([np.asarray(data.user_ids, dtype=object), design.user_ids[inc].astype(object)])
    if np.asarray(data.item_ids).dtype.kind in "iu":
        catalog, users = catalog.astype(np.int64), users.astype(np.int64)
    return Interactions.from_pandas(
        df,
        rating_bounds=data.rating_bounds,
        item_catalog=catalog,
        users=users,
        name=f"{data.name}+canaries",
    )


def canary_scores(public_model, design: CanaryDesign, *, statistic: str = "item_counts_") -> np.ndarray:
    """Each canary's score: the sum of a released per-item statistic over its items.

    Parameters
    ----------
    public_model : Recommender
        A model read with ``load_public`` (or any model whose ``statistic`` attribute is released; only the
        item side is used). Items it did not release (not selected, ``-inf``) count as 0.
    design : CanaryDesign
    statistic : str, default "item_counts_"
        Name of the released per-item array, aligned with ``public_model.item_ids``.

    Returns
    -------
    ndarray, shape (m,)
    """
    values = getattr(public_model, statistic, None)
    if values is None:
        raise ConfigError(
            f"{type(public_model).__name__} has no released per-item statistic {statistic!r}; pass "
            "statistic= naming one (e.g. 'item_counts_')"
        )
    values = np.asarray(values, dtype=np.float64)
    values = np.where(np.isfinite(values), values, 0.0)
    index = pd.Index(public_model.item_ids)
    pos = index.get_indexer(design.item_ids.ravel())
    per_item = np.where(pos >= 0, values[np.maximum(pos, 0)], 0.0)
    return per_item.reshape(design.item_ids.shape).sum(axis=1)


# ---------------------------------------------------------------------------------------------- the audit
@dataclass
class OneRunAudit:
    """Result of a one-run audit (:func:`audit_scores`, :func:`audit_model`).

    ``epsilon_lower`` is ε̂ (confidence ``1 − alpha``, Bonferroni over ``guesses``); ``violation`` is
    ``ε̂ > claimed_epsilon``; ``verdict`` says it in words.
    """

    claimed_epsilon: float
    delta: float
    alpha: float
    m: int
    n_included: int
    epsilon_lower: float
    r: int
    v: int
    guesses: list = field(default_factory=list)
    model: str | None = None
    statistic: str | None = None
    notes: list = field(default_factory=list)

    @property
    def violation(self) -> bool:
        return bool(self.epsilon_lower > self.claimed_epsilon)

    @property
    def verdict(self) -> str:
        what = f"{self.model} " if self.model else ""
        if self.violation:
            return (
                f"VIOLATION: {what}claims ε = {self.claimed_epsilon:g} (δ = {self.delta:g}) but the audit certifies "
                f"ε ≥ {self.epsilon_lower:.3f} with confidence {1 - self.alpha:g} ({self.v}/{self.r} guesses right "
                f"over {self.m} canaries): the mechanism leaks more than it claims"
            )
        return (
            f"consistent: {what}empirical ε̂ = {self.epsilon_lower:.3f} ≤ claimed ε = {self.claimed_epsilon:g} "
            f"({self.v}/{self.r} guesses right over {self.m} canaries, confidence {1 - self.alpha:g}); a lower "
            "bound only, not a proof of privacy"
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(violation=self.violation, verdict=self.verdict)
        return d


#: the fractions of canaries guessed on (half "in", half "out"); Bonferroni over them
DEFAULT_GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def audit_scores(
    scores,
    included,
    *,
    claimed_epsilon: float,
    delta: float,
    alpha: float = 0.05,
    guess_fractions=DEFAULT_GUESS_FRACTIONS,
) -> OneRunAudit:
    """The one-run audit from canary scores (higher = more likely inserted) and the true inclusions.

    For each fraction ``f`` of ``guess_fractions`` the auditor guesses on ``r = 2·⌊f·m/2⌋`` canaries (the
    ``r/2`` highest scores "in", the ``r/2`` lowest "out"; ties broken at random by a fixed permutation) and
    ε̂(f) is :func:`one_run_epsilon` at level ``alpha / len(guess_fractions)``; the result is the largest.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    inc = np.asarray(included, dtype=bool).ravel()
    if s.shape != inc.shape:
        raise ConfigError(f"scores ({s.size}) and included ({inc.size}) must have one entry per canary")
    if not np.isfinite(s).all():
        raise ConfigError("canary scores must be finite")
    m = s.size
    alpha = check_fraction(alpha, "alpha")
    eps_claim = check_number(claimed_epsilon, "claimed_epsilon", allow_inf=True)
    fracs = [check_fraction(f, "guess fraction", one=True) for f in guess_fractions]
    if not fracs:
        raise ConfigError("guess_fractions is empty")
    level = alpha / len(fracs)
    # ties (e.g. exact zeros of a noiseless release) are broken by a permutation independent of the inclusions
    tiebreak = np.random.default_rng(0).permutation(m)
    order = np.lexsort((tiebreak, -s))  # best first
    rows, best = [], None
    for f in fracs:
        half = int(f * m) // 2
        if half == 0:
            continue
        top, bottom = order[:half], order[m - half :]
        v = int(inc[top].sum() + (~inc[bottom]).sum())
        r = 2 * half
        e = one_run_epsilon(m, r, v, delta, alpha=level)
        rows.append({"fraction": f, "r": r, "v": v, "epsilon_lower": e})
        if best is None or e > best["epsilon_lower"]:
            best = rows[-1]
    if best is None:
        raise ConfigError(f"with {m} canaries no guess fraction gives a guess; use more canaries")
    return OneRunAudit(
        claimed_epsilon=eps_claim,
        delta=float(delta),
        alpha=alpha,
        m=m,
        n_included=int(inc.sum()),
        epsilon_lower=float(best["epsilon_lower"]),
        r=best["r"],
        v=best["v"],
        guesses=rows,
    )


def audit_model(
    model,
    data,
    *,
    n_canaries: int = 1000,
    items_per_canary: int = 20,
    rng,
    alpha: float = 0.05,
    statistic: str = "item_counts_",
    guess_fractions=DEFAULT_GUESS_FRACTIONS,
    workdir=None,
) -> OneRunAudit:
    """One-run audit of a DP model class on ``data``: insert canaries, fit once, score the public artifact.

    Parameters
    ----------
    model : Recommender
        An *unfitted* DP model (``is_private``, with ``epsilon`` and ``delta``): its claim is audited. It is
        fitted here on ``data`` plus the inserted canaries (with its own noise configuration: fresh entropy,
        or its ``rng`` seed in reproducibility mode).
    data : Interactions
        The real data (private); canaries are added to it.
    n_canaries, items_per_canary : int
        ``m`` and ``c`` of :func:`make_canaries`.
    rng : seed or Generator
        The audit's randomness (canary inclusions). Required.
    alpha : float, default 0.05
        Significance level.
    statistic : str
        The released per-item array scored (:func:`canary_scores`).
    workdir : path-like, optional
        Where the public artifact is written (a temporary directory by default, removed afterwards).

    Returns
    -------
    OneRunAudit
        With ``violation`` / ``verdict``. The figures are measurements on private data, not DP releases.
    """
    if not getattr(model, "is_private", False) or not hasattr(model, "export_public"):
        raise ConfigError(
            f"{type(model).__name__} is not a DP model (no export_public): audit its served scores with "
            "dprec.audit.membership instead"
        )
    if getattr(model, "_fitted", False):
        raise ConfigError("audit_model needs an unfitted model: it fits it on the data with canaries")
    design = make_canaries(data, n_canaries, items_per_canary, rng=rng)
    with_canaries = insert_canaries(data, design)
    model.fit(with_canaries)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = model.export_public(os.path.join(tmp, "public.npz"))
        public = type(model).load_public(path)
    scores = canary_scores(public, design, statistic=statistic)
    res = audit_scores(
        scores,
        design.included,
        claimed_epsilon=model.epsilon,
        delta=model.delta,
        alpha=alpha,
        guess_fractions=guess_fractions,
    )
    res.model, res.statistic = type(model).__name__, statistic
    res.notes.append(
        f"score: sum of the released {statistic} over each canary's {items_per_canary} own items, read from the "
        "export_public artifact; the audit sees that release only"
    )
    return res
