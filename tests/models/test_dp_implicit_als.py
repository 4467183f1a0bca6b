"""DPImplicitALS: ε = ∞ is ALS(feedback="implicit", solver="cholesky"), the releases and their noise, serving,
the shared model contract."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from dprec import Interactions
from dprec.datasets import synthetic
from dprec.errors import ConfigError
from dprec.models import ALS, DPImplicitALS
from dprec.models import dpimplicit as M
from dprec.privacy import PrivacyWarning
from dprec.testing import ModelContract, contract_data

DELTA = 1e-5


@pytest.fixture(scope="module")
def data():
    return synthetic(300, 80, 4, mean_ratings_per_user=15, rng=3)


def _binary(d: Interactions) -> Interactions:
    X = d.matrix.copy()
    X.data[:] = 1.0
    return Interactions(X, d.user_ids, d.item_ids)


@pytest.mark.parametrize("confidence", ["value", "binary"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_epsilon_inf_equals_nonprivate_implicit_als(data, confidence, dtype):
    d = data if confidence == "value" else _binary(data)
    kw = dict(factors=6, iterations=4, regularization=0.05, alpha=3.0, rng=7, dtype=dtype)
    ref = ALS(feedback="implicit", solver="cholesky", **kw).fit(d)
    m = DPImplicitALS(epsilon=math.inf, confidence=confidence, **kw).fit(d)
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(m.item_factors_, ref.item_factors_, rtol=0, atol=tol)
    np.testing.assert_allclose(m.user_factors_, ref.user_factors_, rtol=0, atol=tol)
    users = d.user_ids[:20]
    a, _ = m.recommend(users, n=10)
    b, _ = ref.recommend(users, n=10)
    assert (a == b).mean() > 0.99
    assert m.head_.all() and m.popularity_weight_ == 0.0
    assert m.privacy_report()["is_private"] is False


def test_epsilon_inf_defaults_are_als_benchmark_settings():
    m = DPImplicitALS(epsilon=math.inf)
    assert (m.factors_, m.iterations_) == (32, 15)
    p = DPImplicitALS(epsilon=1.0, delta=DELTA)
    assert (p.factors_, p.iterations_) == (16, 3)


def test_private_fit_releases_and_report(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        m = DPImplicitALS(epsilon=8.0, delta=DELTA, factors=4, iterations=3, head_threshold=5.0, rng=0).fit(data)
    rep = m.privacy_report()
    steps = {s["name"]: s for s in rep["steps"]}
    assert set(steps) == {"n_users", "item_counts", "implicit_gramian", "implicit_item_stats"}
    assert steps["implicit_gramian"]["count"] == 3 and steps["implicit_item_stats"]["count"] == 3
    g = steps["implicit_gramian"]
    assert g["sensitivity_l2"] == pytest.approx(0.3**2)
    s = steps["implicit_item_stats"]
    assert s["sensitivity_l2"] == pytest.approx(math.sqrt(60) * 0.3 * math.sqrt(0.09 + 4.0))
    assert rep["verified_epsilon"] <= 8.0 * (1 + 1e-9) and rep["verified_epsilon"] > 7.9
    # the head is the items with DP count ≥ τ; tail items have no factor
    np.testing.assert_array_equal(m.head_, m.item_counts_ >= 5.0)
    assert np.all(m.item_factors_[~m.head_] == 0) and np.any(m.item_factors_[m.head_] != 0)
    # unknown users get DP popularity
    np.testing.assert_array_equal(m._fallback_scores(), m.item_counts_)


def test_noise_is_fresh_without_a_seed(data):
    a = DPImplicitALS(epsilon=8.0, delta=DELTA, factors=4, iterations=2).fit(data)
    b = DPImplicitALS(epsilon=8.0, delta=DELTA, factors=4, iterations=2).fit(data)
    assert not np.array_equal(a.item_counts_, b.item_counts_)


def test_seeded_fit_is_reproducible(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        a = DPImplicitALS(epsilon=8.0, delta=DELTA, factors=4, iterations=2, rng=3).fit(data)
        b = DPImplicitALS(epsilon=8.0, delta=DELTA, factors=4, iterations=2, rng=3).fit(data)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)


def test_small_signal_falls_back_to_dp_popularity(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        m = DPImplicitALS(epsilon=1.0, delta=DELTA, rng=0).fit(data)  # ε·ñ ≈ 300 < 1500
    assert not m.head_.any() and m.popularity_weight_ == 1.0
    assert {s["name"] for s in m.privacy_report()["steps"]} == {"n_users", "item_counts"}
    ids, _ = m.recommend(data.user_ids[0], n=5, filter_seen=False)
    top = data.item_ids[np.argsort(-m.item_counts_, kind="stable")[:5]]
    np.testing.assert_array_equal(ids, top)


def _block_data(n_users=600, seed=0):
    """Two blocks of 12 items: each user interacts with most items of its own block only."""
    g = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        block = u % 2
        items = block * 12 + np.flatnonzero(g.random(12) < 0.8)
        rows += [u] * len(items)
        cols += items.tolist()
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, 24))
    return Interactions(X, np.arange(n_users), np.arange(24), public_items=True)


@pytest.mark.parametrize("epsilon", [math.inf, 20.0])
def test_withheld_item_is_recommended(epsilon):
    """A new user with 11 of block A's 12 items gets the 12th first, though block B's items are as popular."""
    d = _block_data()
    kw = {"delta": DELTA, "rng": 1} if math.isfinite(epsilon) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        m = DPImplicitALS(epsilon=epsilon, factors=4, iterations=3, **kw).fit(d)
    for withheld in (0, 5, 11):
        history = {j: 1.0 for j in range(12) if j != withheld}
        m.fold_in(history, user=10_000 + withheld)
        ids, _ = m.recommend(10_000 + withheld, n=1)
        assert ids[0] == withheld


def test_fold_in_of_a_training_user_reproduces_its_factor(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        m = DPImplicitALS(epsilon=8.0, delta=DELTA, factors=4, iterations=2, dtype="float64", rng=0).fit(data)
    u0 = m.user_factors_[3].copy()
    items, vals = data.user_ratings(data.user_ids[3])
    m.fold_in((items, vals), user=data.user_ids[3])
    np.testing.assert_allclose(m.user_factors_[3], u0, atol=1e-10)


def test_export_public_and_fold_in(data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        m = DPImplicitALS(epsilon=8.0, delta=DELTA, factors=4, iterations=2, rng=0).fit(data)
    pub = DPImplicitALS.load_public(m.export_public(tmp_path / "pub.npz"))
    items, vals = data.user_ratings(data.user_ids[0])
    pub.fold_in((items, vals), user=10_000)
    a, _ = pub.recommend(10_000, n=10)
    b, _ = m.recommend(data.user_ids[0], n=10)
    np.testing.assert_array_equal(a, b)
    assert pub.privacy_report()["steps"] == m.privacy_report()["steps"]


def test_value_confidence_needs_rating_bounds(data):
    X = Interactions(data.matrix, data.user_ids, data.item_ids)
    with pytest.raises(ValueError, match="rating bounds"):
        DPImplicitALS(epsilon=5.0, delta=DELTA, confidence="value").fit(X)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="bounding"):
        from dprec.models import validate_config

        validate_config(DPImplicitALS.Config, {"epsilon": 1.0, "delta": DELTA, "bounding": "random"})


def test_head_stats_equal_dense_reference():
    g = np.random.default_rng(0)
    X = sp.random(30, 12, density=0.4, random_state=1, format="csr")
    U = g.normal(size=(30, 3))
    w = g.uniform(0, 1, X.nnz)
    items = np.array([1, 4, 7, 11])
    A, b = M.head_stats(X, U, w, items, alpha=2.0, values=X.data)
    W = sp.csr_matrix((w, X.indices, X.indptr), shape=X.shape).toarray()
    P = X.toarray()
    for t, j in enumerate(items):
        wa = W[:, j] * 2.0 * P[:, j]
        wb = W[:, j] * (1 + 2.0 * P[:, j]) * (P[:, j] != 0)
        np.testing.assert_allclose(A[t], (U * wa[:, None]).T @ U, atol=1e-12)
        np.testing.assert_allclose(b[t], U.T @ wb, atol=1e-12)


# --------------------------------------------------------------------------- the shared contract
class TestDPImplicitALSContract(ModelContract):
    """At a finite ε on the contract data with a public catalog (every item released)."""

    supports_similar_items = True

    def make_data(self):
        d = contract_data()
        return Interactions(d.matrix, d.user_ids, d.item_ids, public_items=True, name="contract")

    def fit_model(self, model, data):
        if not isinstance(data, Interactions):
            data = Interactions.from_csr(data, public_items=True)
        return model.fit(data)

    def make_model(self):
        # ε·ñ = 40·50 passes the DP-popularity threshold; τ = 0 keeps every item in the head
        return DPImplicitALS(epsilon=50.0, delta=1e-5, factors=3, iterations=2, head_threshold=0.0, rng=0)

    def test_predict_shapes_and_scalar(self, fitted, data):
        """DPImplicitALS ranks and does not predict ratings: predict returns its ranking score, finite per pair."""
        assert fitted.predicts_ratings is False
        out = fitted.predict(data.user_ids[:3], data.item_ids[:3])
        assert out.shape == (3,) and np.all(np.isfinite(out))
