"""Contribution bounding helpers (sample_per_user, clip_*, effective_k) and DP item selection.

The sensitivity of every release is declared beside its statistic in ``dprec.models.releases`` and checked on
neighbouring datasets in tests/privacy/test_releases.py."""

import numpy as np
import pytest
import scipy.sparse as sp

from dprec.privacy.bounding import (
    clip_rows_l2,
    clip_values,
    dp_item_selection,
    effective_k,
    sample_per_user,
    selection_threshold,
)

K, B, GAMMA, D = 7, 2.0, 1.5, 5
REL = 1e-9  # floating-point slack on the comparisons


def make_data(seed=0, n_users=120, n_items=60):
    rng = np.random.default_rng(seed)
    X = sp.random(
        n_users, n_items, density=0.15, format="csr", random_state=rng, data_rvs=lambda n: rng.uniform(-4, 4, n)
    )
    X = X.tolil()
    X[0, :] = 4.0  # adversarial heavy user: rates every item with an out-of-bound value
    X[1, :5] = -4.0
    return X.tocsr()


@pytest.mark.parametrize("method", ["uniform", "least_popular"])
def test_bounding_helpers_bound_every_user(method):
    """sample_per_user keeps ≤ k ratings per user, clip_values bounds |r| ≤ B, clip_rows_l2 bounds ‖u‖ ≤ Γ.
    (The sensitivities built on these bounds are declared and checked per release: tests/privacy/test_releases.py.)"""
    rng = np.random.default_rng(42)
    X = make_data()
    noisy_counts = np.bincount(X.indices, minlength=X.shape[1]) + rng.normal(0, 2, X.shape[1])
    Xb = sample_per_user(X, K, rng, method=method, item_counts=noisy_counts if method == "least_popular" else None)
    assert np.diff(Xb.indptr).max() <= K
    assert (np.diff(Xb.indptr) == np.minimum(np.diff(X.indptr), K)).all()
    Xc = clip_values(Xb, B)
    assert np.abs(Xc.data).max() <= B
    assert np.abs(Xc.data).max() == B  # the adversarial user's out-of-bound values are clipped to the bound
    np.testing.assert_array_equal(Xc.data, np.clip(Xb.data, -B, B))
    U = clip_rows_l2(rng.normal(0, 3, (X.shape[0], D)), GAMMA)
    assert np.linalg.norm(U, axis=1).max() <= GAMMA * (1 + REL)


def test_rating_level_k_is_one():
    assert effective_k("rating", 50) == 1
    assert effective_k("user", 50) == 50
    with pytest.raises(ValueError):
        effective_k("user", None)


def test_sample_per_user_properties():
    X = make_data(1)
    Y = sample_per_user(X, 3, 0)
    assert (np.diff(Y.indptr) == np.minimum(np.diff(X.indptr), 3)).all()
    # subset of the original entries with the original values
    Xd, Yd = X.toarray(), Y.toarray()
    mask = Yd != 0
    assert np.array_equal(Yd[mask], Xd[mask])
    assert np.array_equal(sample_per_user(X, 3, 5).toarray(), sample_per_user(X, 3, 5).toarray())
    # uniform: each of user 0's 60 items is kept with probability 3/60
    hits = np.zeros(X.shape[1])
    for s in range(300):
        hits[sample_per_user(X[:1], 3, s).indices] += 1
    assert hits.sum() == 900 and hits.max() < 60  # expectation 15 per item
    # least popular first, ties broken at random
    counts = np.arange(X.shape[1], dtype=float)
    Z = sample_per_user(X[:1], 3, 0, method="least_popular", item_counts=counts)
    assert list(Z.indices) == [0, 1, 2]
    tie = np.zeros(X.shape[1])
    picks = {tuple(sample_per_user(X[:1], 3, s, method="least_popular", item_counts=tie).indices) for s in range(5)}
    assert len(picks) > 1
    with pytest.raises(ValueError, match="item_counts"):
        sample_per_user(X, 3, 0, method="least_popular")
    with pytest.raises(ValueError, match="method"):
        sample_per_user(X, 3, 0, method="popular")
    with pytest.raises(ValueError, match="k"):
        sample_per_user(X, 0, 0)


def test_clip_rows_l2_float32():
    U = np.random.default_rng(0).normal(0, 10, (1000, 16)).astype(np.float32)
    C = clip_rows_l2(U, 1.0)
    assert C.dtype == np.float32
    assert np.linalg.norm(C.astype(np.float64), axis=1).max() <= 1.0
    small = U / 1000
    assert np.array_equal(clip_rows_l2(small, 1.0), small)


def test_dp_item_selection():
    rng = np.random.default_rng(0)
    # 30 popular items rated by everyone (count 500), 30 items each rated by one user only
    n_users = 500
    rows, cols = [], []
    for u in range(n_users):
        its = list(rng.choice(30, 2, replace=False))
        rows += [u] * 2
        cols += its
    for j in range(30, 60):
        rows.append(j)
        cols.append(j)
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, 60))
    X = sample_per_user(X, 3, 0)
    sel = dp_item_selection(X, rho=0.5, delta_sel=1e-6, k=3, rng=1)
    assert set(sel.items.tolist()) == set(range(30))  # popular items survive, singletons do not
    assert sel.delta == 1e-6 and sel.rho <= 0.5
    assert sel.threshold == pytest.approx(selection_threshold(sel.sigma, 3, 1e-6))
    # the threshold bounds the release probability of a singleton item: k * P(1 + N > tau) = delta_sel
    from scipy.stats import norm

    assert 3 * norm.sf((sel.threshold - 1) / sel.sigma) == pytest.approx(1e-6, rel=1e-6)
    with pytest.raises(ValueError, match="sample_per_user"):
        dp_item_selection(sp.csr_matrix(np.ones((2, 5))), rho=1.0, delta_sel=1e-6, k=3)


def test_dp_item_selection_through_the_noise_source():
    """With the fit's NoiseSource the counts go through its ``item_selection`` stream (reproducible per seed)
    and the same items survive; in secure mode OpenDP's sampler is recorded."""
    from dprec.privacy import NoiseSource, NoiseStreams, PrivacyWarning

    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(300), 2)
    cols = np.concatenate([rng.choice(20, 2, replace=False) for _ in range(300)])
    X = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(300, 40))
    X = sample_per_user(
        sp.vstack([X, sp.csr_matrix((np.ones(20), (np.arange(20), np.arange(20, 40))), shape=(20, 40))]).tocsr(), 3, 0
    )

    def run(secure=False):
        with pytest.warns(PrivacyWarning):  # a caller-given seed: reproducibility mode
            src = NoiseSource(NoiseStreams(7, model="T"), secure=secure)
        return dp_item_selection(X, rho=0.5, delta_sel=1e-6, k=3, noise=src), src

    a, src = run()
    b, _ = run()
    assert set(a.items.tolist()) == set(range(20))
    np.testing.assert_array_equal(a.items, b.items)
    assert "numpy" in src.samplers["item_selection"]
    s, src_s = run(secure=True)
    assert set(s.items.tolist()) == set(range(20))
    assert "opendp" in src_s.samplers["item_selection"]
