"""The empirical privacy audit: the one-run p-value against an independent brute-force sum, the multi-run
Clopper–Pearson bound, canary insertion, and a broken (noise-off) mechanism caught."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dprec.audit import privacy as P
from dprec.datasets import synthetic
from dprec.errors import ConfigError
from dprec.models import DPALS, DPItemItem, DPPopularity
from dprec.privacy.noise import NoiseSource


# ---------------------------------------------------------------------------------------------- one run
def brute_force_p_value(m, r, v, eps, delta):
    """Independent implementation: explicit binomial pmf with math.comb, plain loops (no scipy)."""
    q = math.exp(eps) / (1 + math.exp(eps))
    pmf = [math.comb(r, j) * q**j * (1 - q) ** (r - j) for j in range(r + 1)]
    tail = sum(pmf[v:])
    best = 0.0
    for i in range(1, v + 1):
        window = sum(pmf[j] for j in range(v - i, v))  # P[v - i ≤ Bin < v]
        best = max(best, window / i)
    return min(1.0, tail + 2 * m * delta * best)


@pytest.mark.parametrize(
    "m,r,v,eps,delta",
    [
        (100, 100, 70, 0.5, 1e-5),
        (1000, 200, 180, 2.0, 1e-5),
        (1000, 50, 50, 3.0, 1e-6),
        (500, 500, 250, 0.0, 1e-3),
        (300, 40, 10, 1.0, 1e-2),
        (50, 50, 0, 1.0, 1e-5),
        (1000, 200, 190, 4.0, 0.0),
    ],
)
def test_one_run_p_value_matches_brute_force(m, r, v, eps, delta):
    assert P.one_run_p_value(m, r, v, eps, delta) == pytest.approx(brute_force_p_value(m, r, v, eps, delta), rel=1e-9)


def test_one_run_epsilon_is_the_largest_rejected_epsilon():
    m, r, v, delta, alpha = 1000, 200, 170, 1e-5, 0.05
    e = P.one_run_epsilon(m, r, v, delta, alpha=alpha)
    assert e > 0
    assert brute_force_p_value(m, r, v, e, delta) < alpha
    assert brute_force_p_value(m, r, v, e + 1e-3, delta) >= alpha


def test_one_run_epsilon_closed_form_all_correct_without_delta():
    # v = r and δ = 0: p = q^r, so ε̂ = logit(α^(1/r))
    for r in (20, 100, 500):
        q = 0.05 ** (1 / r)
        assert P.one_run_epsilon(r, r, r, 0.0, alpha=0.05) == pytest.approx(math.log(q / (1 - q)), abs=1e-5)


def test_one_run_epsilon_zero_for_chance_guesses_and_monotone_in_v():
    assert P.one_run_epsilon(1000, 200, 100, 1e-5) == 0.0
    es = [P.one_run_epsilon(1000, 200, v, 1e-5) for v in (120, 150, 180, 200)]
    assert all(a < b for a, b in zip(es, es[1:]))
    # the δ term costs something: more canaries at the same guesses → lower ε̂
    assert P.one_run_epsilon(100_000, 200, 190, 1e-5) < P.one_run_epsilon(200, 200, 190, 1e-5)


def test_one_run_bad_counts():
    with pytest.raises(ConfigError, match="v ≤ r ≤ m"):
        P.one_run_p_value(10, 20, 5, 1.0, 1e-5)
    with pytest.raises(ConfigError):
        P.one_run_epsilon(10, 5, 6, 1e-5)


# ---------------------------------------------------------------------------------------------- multi run
@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 200)])
def test_clopper_pearson_matches_scipy_exact(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
    assert P.clopper_pearson(k, n, 0.1) == pytest.approx((ci.low, ci.high), abs=1e-10)


def test_multi_run_bound_perfect_separation_and_no_signal():
    s_in, s_out = np.ones(400), np.zeros(400)
    res = P.multi_run_epsilon(s_in, s_out, delta=0.0, alpha=0.05)
    # on the 200 evaluation runs of each: TPR = 1 (lower bound (α/4)^(1/200)), FPR = 0 (upper 1 − (α/4)^(1/200))
    lo = (0.05 / 4) ** (1 / 200)
    assert res["n_in"] == res["n_out"] == 200 and res["tpr"] == 1.0 and res["fpr"] == 0.0
    assert res["epsilon_lower"] == pytest.approx(math.log(lo / (1 - lo)), rel=1e-6)
    rng = np.random.default_rng(0)
    noise = P.multi_run_epsilon(rng.normal(size=400), rng.normal(size=400), delta=1e-5)
    assert noise["epsilon_lower"] < 0.3
    # a Gaussian mechanism with Δ/σ = 1 is far from ε = 0: the bound finds some signal but stays below its true ε
    g = P.multi_run_epsilon(rng.normal(1, 1, 4000), rng.normal(0, 1, 4000), delta=1e-5)
    assert 0.3 < g["epsilon_lower"] < 5.0


def test_multi_run_fixed_threshold():
    res = P.multi_run_epsilon([1, 1, 1, 0], [0, 0, 0, 1], delta=0.0, threshold=0.5)
    assert res["tpr"] == 0.75 and res["fpr"] == 0.25 and res["n_in"] == 4


# ---------------------------------------------------------------------------------------------- canaries
@pytest.fixture(scope="module")
def small():
    return synthetic(400, 150, 4, mean_ratings_per_user=15, rng=3)


def test_canaries_inserted_with_public_catalog(small):
    design = P.make_canaries(small, 50, 3, rng=0)
    d = P.insert_canaries(small, design)
    assert d.public_items and d.n_items == small.n_items + 150
    assert d.n_users == small.n_users + design.included.sum()
    assert 10 < design.included.sum() < 40
    assert not np.isin(design.user_ids, small.user_ids).any() and not np.isin(design.item_ids, small.item_ids).any()
    for j in np.flatnonzero(design.included)[:5]:
        items, vals = d.user_ratings(design.user_ids[j])
        assert sorted(items.tolist()) == sorted(design.item_ids[j].tolist()) and (vals == 5.0).all()
    # the canary items of excluded canaries are in the catalog but nobody rated them
    out = design.item_ids[~design.included].ravel()
    assert d.matrix[:, d.item_inner(out)].nnz == 0


def test_audit_scores_guessing():
    inc = np.array([True, False] * 100)
    perfect = P.audit_scores(inc.astype(float), inc, claimed_epsilon=1.0, delta=1e-5)
    assert perfect.v == perfect.r and perfect.violation and "VIOLATION" in perfect.verdict
    rng = np.random.default_rng(1)
    blind = P.audit_scores(rng.normal(size=200), inc, claimed_epsilon=1.0, delta=1e-5)
    assert blind.epsilon_lower < 1.0 and not blind.violation and blind.verdict.startswith("consistent")
    with pytest.raises(ConfigError, match="one entry per canary"):
        P.audit_scores(np.zeros(3), inc, claimed_epsilon=1.0, delta=1e-5)


def _no_noise(self, values, *, step, sigma, sensitivity, index=0):
    """The broken mechanism: the exact statistic, while the model still claims its ε."""
    self.samplers.setdefault(step, "BROKEN: no noise")
    return np.asarray(values, dtype=np.float64).copy()


FACTORIES = {
    "dp-popularity": lambda: DPPopularity(epsilon=1.0, delta=1e-5, rng=0),
    "dp-als": lambda: DPALS(epsilon=1.0, delta=1e-5, rng=0),
    "dp-itemitem": lambda: DPItemItem(epsilon=1.0, delta=1e-5, n_selected=100, rng=0),
}


@pytest.mark.filterwarnings("ignore::dprec.privacy.units.PrivacyWarning")
@pytest.mark.parametrize("name", list(FACTORIES))
def test_broken_mechanism_is_caught(name, small, monkeypatch):
    monkeypatch.setattr(NoiseSource, "release", _no_noise)
    res = P.audit_model(FACTORIES[name](), small, n_canaries=300, items_per_canary=20, rng=0)
    assert res.claimed_epsilon == 1.0
    assert res.epsilon_lower > 1.0 and res.violation
    assert "VIOLATION" in res.verdict and "claims ε = 1" in res.verdict


@pytest.mark.filterwarnings("ignore::dprec.privacy.units.PrivacyWarning")
@pytest.mark.parametrize("name", list(FACTORIES))
def test_honest_mechanism_passes(name, small):
    res = P.audit_model(FACTORIES[name](), small, n_canaries=300, items_per_canary=20, rng=0)
    assert res.epsilon_lower <= 1.0 and not res.violation
    assert res.verdict.startswith("consistent")


@pytest.mark.filterwarnings("ignore::dprec.privacy.units.PrivacyWarning")
def test_audit_model_refuses_non_dp_and_fitted(small):
    from dprec.models import ALS

    with pytest.raises(ConfigError, match="not a DP model"):
        P.audit_model(ALS(), small, rng=0)
    fitted = DPPopularity(epsilon=1.0, delta=1e-5, rng=0).fit(small)
    with pytest.raises(ConfigError, match="unfitted"):
        P.audit_model(fitted, small, rng=0)


def test_canaries_with_string_ids(small_data):
    design = P.make_canaries(small_data, 6, 2, rng=1)
    assert all(str(u).startswith("__canary_user_") for u in design.user_ids)
    d = P.insert_canaries(small_data, design)
    assert d.n_items == small_data.n_items + 12 and d.public_items
    assert d.n_users == small_data.n_users + int(design.included.sum())


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore::dprec.privacy.units.PrivacyWarning")
def test_ml100k_audit_within_claim(ml100k_dir):
    from dprec.datasets import load_dataset

    data = load_dataset("ml-100k", data_home=ml100k_dir.parent)
    res = P.audit_model(DPPopularity(epsilon=1.0, delta=1e-5, rng=0), data, n_canaries=1000, rng=1000)
    assert res.m == 1000 and res.epsilon_lower <= 1.0 and not res.violation
