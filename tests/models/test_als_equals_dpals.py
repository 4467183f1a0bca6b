"""ε = ∞ equals ALS: ``ALS(feedback="explicit")`` and ``DPALS(epsilon=math.inf)`` are one algorithm.

Both run the engine :mod:`dprec.models._biased_als` (DP-ALS with its noisy item solve, contribution weights
and clipping switched off at ε = ∞; ALS with the exact item solve), from the same initial item factors (the
third stream of ``rng.spawn(3)``) and the same global-effects biases. For corresponding hyperparameters (the
table in the :class:`dprec.models.ALS` docstring) every fitted quantity must agree. ALS stores float32 arrays
and DP-ALS float64 ones of the same float32-kernel computation, so the tolerance is float32 rounding
(~1e-7 relative; asserted at 1e-6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from dprec import Interactions
from dprec.datasets import synthetic
from dprec.models import ALS, DPALS
from dprec.testing import contract_data

RTOL, ATOL = 1e-6, 1e-6


def _pair(d, T, lam, lam_u, lam_b, lam_c, tau2=0.3, init=0.1, seed=0):
    als = ALS(
        feedback="explicit",
        factors=d,
        iterations=T,
        regularization=lam,
        user_regularization=lam_u,
        bias_regularization=lam_b,
        item_bias_regularization=lam_c,
        prior_var=tau2,
        init_scale=init,
        rng=seed,
    )
    dp = DPALS(
        epsilon=math.inf,
        factors=d,
        iterations=T,
        regularization=lam,
        user_regularization=lam_u,
        bias_regularization=lam_b,
        item_bias_regularization=lam_c,
        prior_var=tau2,
        init_scale=init,
        rng=seed,
    )
    return als, dp


def _with_unrated_items(n_extra=7):
    """Synthetic ratings declared with a public catalog that also lists items nobody rated."""
    base = synthetic(150, 60, 3, mean_ratings_per_user=12, rng=4)
    X = sp.hstack([base.matrix, sp.csr_matrix((base.n_users, n_extra))]).tocsr()
    items = np.concatenate([base.item_ids, np.arange(10_000, 10_000 + n_extra)])
    return Interactions(X, base.user_ids, items, rating_bounds=(1.0, 5.0), public_items=True, name="unrated")


def _contract():
    d = contract_data(n_users=60, n_items=40, seed=2)
    return Interactions(d.matrix, d.user_ids, d.item_ids, rating_bounds=(1.0, 5.0), public_items=True, name="contract")


DATA = {
    "synthetic": lambda: synthetic(300, 120, 4, mean_ratings_per_user=20, rng=1),
    "unrated_items": _with_unrated_items,
    "contract": _contract,
}

CONFIGS = [
    # data,            d,  T,  λ,    λ_u,  λ_b, λ_c,   τ²,  init, seed
    ("synthetic", 4, 3, 0.1, 0.12, 5.0, 100.0, 0.3, 0.1, 0),
    ("synthetic", 8, 5, 0.02, 0.03, 1.0, 10.0, 1.0, 0.5, 7),
    ("synthetic", 1, 1, 0.5, 0.5, 0.5, 0.0, 0.1, 0.1, 3),
    ("unrated_items", 6, 4, 0.05, 0.1, 2.0, 50.0, 0.3, 0.2, 11),
    ("unrated_items", 3, 0, 0.1, 0.12, 5.0, 100.0, 0.3, 0.1, 2),
    ("contract", 16, 6, 0.3, 0.01, 10.0, 1.0, 0.5, 0.1, 5),
]


@pytest.fixture(scope="module")
def datasets():
    return {name: make() for name, make in DATA.items()}


@pytest.mark.parametrize("name,d,T,lam,lam_u,lam_b,lam_c,tau2,init,seed", CONFIGS)
def test_als_explicit_equals_dpals_at_infinity(datasets, name, d, T, lam, lam_u, lam_b, lam_c, tau2, init, seed):
    data = datasets[name]
    als, dp = _pair(d, T, lam, lam_u, lam_b, lam_c, tau2, init, seed)
    als.fit(data)
    dp.fit(data)
    assert als.global_mean_ == dp.global_mean_
    np.testing.assert_allclose(als.item_factors_, dp.item_factors_, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(als.item_bias_, dp.item_bias_, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(als.user_factors_, dp.user_factors_, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(als.user_bias_, dp.user_bias_, rtol=RTOL, atol=ATOL)
    # predictions (clipped to the rating bounds) on every (user, item) pair, including unrated items
    rows = np.repeat(data.user_ids, data.n_items)
    cols = np.tile(data.item_ids, data.n_users)
    np.testing.assert_allclose(als.predict(rows, cols), dp.predict(rows, cols), rtol=RTOL, atol=ATOL)
    # and a new user folded in from the same ratings gets the same parameters
    items, ratings = data.user_ratings(data.user_ids[0])
    new = ("new" if data.user_ids.dtype.kind not in "iu" else int(data.user_ids.max()) + 1,)
    for m in (als, dp):
        assert m.fold_in((items, ratings), user=new[0]) == new[0]
    np.testing.assert_allclose(
        als.predict(new * data.n_items, data.item_ids),
        dp.predict(new * data.n_items, data.item_ids),
        rtol=RTOL,
        atol=ATOL,
    )


def test_unrated_items_keep_zero_factors_and_initial_bias(datasets):
    """Items in the public catalog with no ratings: no statistics, so V = 0 and c = the global-effects 0."""
    data = datasets["unrated_items"]
    als = ALS(factors=4, iterations=3, rng=0).fit(data)
    unrated = np.asarray(data.matrix.sum(0)).ravel() == 0
    assert unrated.sum() == 7
    assert np.all(als.item_factors_[unrated] == 0) and np.all(als.item_bias_[unrated] == 0)


def test_same_seed_same_initial_item_factors(datasets):
    """T = 0: the fitted item factors are the initial ones, drawn identically by both models."""
    data = datasets["synthetic"]
    als, dp = _pair(5, 0, 0.1, 0.12, 5.0, 100.0, seed=123)
    als.fit(data)
    dp.fit(data)
    np.testing.assert_array_equal(als.item_factors_, dp.item_factors_.astype(np.float32))
    _, _, g_fac = np.random.default_rng(123).spawn(3)
    np.testing.assert_allclose(
        als.item_factors_, g_fac.standard_normal((data.n_items, 5)) / math.sqrt(5) * 0.1, rtol=1e-6
    )


def test_defaults_coincide_with_dpals_infinity_rules(datasets):
    """The ALS explicit defaults are DP-ALS's ε = ∞ defaults; compared only while those rules are unchanged."""
    from dprec.models.dpals import default_hyperparameters

    rules = default_hyperparameters(math.inf, 1000.0, 100)
    als = ALS()
    dp = DPALS(epsilon=math.inf)
    ours = dict(
        factors=als.factors,
        iterations=als.iterations,
        regularization=als.regularization_,
        user_regularization=als.user_regularization,
        bias_regularization=als.bias_regularization_,
    )
    theirs = {k: rules[k] for k in ours}
    if ours != theirs or (als.item_bias_regularization, als.prior_var, als.init_scale) != (
        dp.item_bias_regularization,
        dp.prior_var,
        dp.init_scale,
    ):
        pytest.skip(f"DP-ALS's ε = ∞ rules changed ({theirs}); ALS keeps its own defaults {ours}")
    data = datasets["synthetic"]
    a = ALS(rng=1).fit(data)
    b = DPALS(epsilon=math.inf, rng=1).fit(data)
    np.testing.assert_allclose(a.item_factors_, b.item_factors_, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(a.user_factors_, b.user_factors_, rtol=RTOL, atol=ATOL)
