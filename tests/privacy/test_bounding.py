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
    weighted_item_counts,
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
    assert sel.delta == 1e-6 and sel.rho <= 0.5 and sel.sensitivity == 1.0
    assert sel.threshold == pytest.approx(selection_threshold(sel.sigma, 3, 1e-6))
    # the threshold bounds the release probability of a new unit's n <= k items: n * P(1/√n + N > tau) <= delta_sel
    from scipy.stats import norm

    worst = max(n * norm.sf((sel.threshold - n**-0.5) / sel.sigma) for n in (1, 2, 3))
    assert worst == pytest.approx(1e-6, rel=1e-6)
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


def test_weighted_item_counts_have_unit_norm_rows():
    X = sample_per_user(sp.random(40, 30, density=0.3, format="csr", random_state=0), 5, 0)
    c = weighted_item_counts(X)
    n = np.diff(X.indptr)
    np.testing.assert_allclose(c.sum(), np.sqrt(n).sum())  # n entries of 1/√n per row
    for i in range(X.shape[0]):  # each row's contribution has L2 norm exactly 1
        if n[i]:
            assert np.linalg.norm(c - weighted_item_counts(X[np.arange(X.shape[0]) != i])) == pytest.approx(1.0)


def test_selection_threshold_is_the_exact_worst_case_and_monotone():
    """τ = max_n [1/√n + σ Φ⁻¹(1 − δ/n)]: every n ≤ k satisfies n Φ̄((τ − 1/√n)/σ) ≤ δ, one with equality;
    τ increases in σ and k and decreases in δ."""
    from scipy.stats import norm

    for sigma in (0.3, 1.0, 5.0, 40.0):
        for k in (1, 2, 7, 256):
            for d in (1e-9, 1e-5, 0.05):
                t = selection_threshold(sigma, k, d)
                p = np.array([n * norm.sf((t - n**-0.5) / sigma) for n in range(1, k + 1)])
                assert p.max() <= d * (1 + 1e-9) and p.max() >= d * (1 - 1e-6), (sigma, k, d)
    assert selection_threshold(2.0, 1, 1e-5) == pytest.approx(1 + 2.0 * norm.isf(1e-5))
    sig = [0.1, 0.5, 1, 2, 10, 100]
    assert np.all(np.diff([selection_threshold(s, 50, 1e-5) for s in sig]) > 0)
    assert np.all(np.diff([selection_threshold(3.0, k, 1e-5) for k in (1, 2, 10, 100, 1000)]) > 0)
    assert np.all(np.diff([selection_threshold(3.0, 50, d) for d in (1e-9, 1e-6, 1e-3, 0.1)]) < 0)


@pytest.mark.parametrize("n_new", [1, 2, 8])
def test_selection_delta_bound_holds_for_a_user_whose_items_are_all_new(n_new):
    """The worst case: the added user owns ``n_new`` items nobody else has (count 1/√n_new each). Over T runs the
    fraction in which any of them is released must be ≤ δ_sel = 0.05: checked at δ_sel + 4 standard errors
    (one-sided false-failure rate ≈ 3e-5 per case; the seeds are fixed, so the test is deterministic). At the
    n that attains the maximum in τ the empirical rate must also be ≥ half of δ_sel (τ is not loose)."""
    from scipy.stats import norm

    k, d, rho, T = 8, 0.05, 2.0, 4000
    base = sp.csr_matrix((np.ones(60), (np.repeat(np.arange(20), 3), np.tile([0, 1, 2], 20))), shape=(21, 12))
    rows = np.full(n_new, 20)
    cols = 3 + np.arange(n_new)
    X = (base + sp.csr_matrix((np.ones(n_new), (rows, cols)), shape=(21, 12))).tocsr()
    g = np.random.default_rng(12345 + n_new)
    hits = 0
    for _ in range(T):
        sel = dp_item_selection(X, rho=rho, delta_sel=d, k=k, rng=g)
        hits += bool(np.isin(cols, sel.items).any())
    rate = hits / T
    assert rate <= d + 4 * np.sqrt(d * (1 - d) / T), rate
    t, s = sel.threshold, sel.sigma
    terms = [n * norm.sf((t - n**-0.5) / s) for n in range(1, k + 1)]
    exact = 1 - norm.cdf((t - n_new**-0.5) / s) ** n_new  # P(any of the n_new independent items passes)
    assert exact <= terms[n_new - 1] <= d * (1 + 1e-9)
    if n_new == int(np.argmax(terms)) + 1:
        assert rate >= d / 2, rate
