"""DP-ALS at ε = ∞ is plain (non-private) biased ALS: checked exactly against a dense numpy reference.

With ``epsilon=math.inf`` DP-ALS runs the same code path as under DP with σ = 0 and no clipping or contribution
weighting. This test re-implements that algorithm directly from the documented formulas, per user and per
item with ``numpy.linalg.solve``, and requires the fitted model to agree:

1. μ = mean rating; user offsets β_u = Σ_j (r_uj − μ)/(n_u + λ_b); item biases
   c_j = Σ_u (r_uj − μ − β_u) / (n_j + 1/τ²);
2. T iterations of: user solve [u; b_u] = (YᵀY + R_u)⁻¹ Yᵀ(r_u − μ − c) with Y = [V_J, 1] and
   R_u = diag(λ_u (n_u + 1), …, λ_b); item solve [v_j; Δc_j] = (ΣUaUaᵀ + R_j)⁻¹ Σ (r − μ − c_j − b_u) Ua with
   Ua = [u; 1] and R_j = diag(λ n_j, …, λ n_j + λ_c); c_j += Δc_j;
3. a final user solve.
"""

import math

import numpy as np
import pytest

from dprec.datasets import synthetic
from dprec.models import DPALS

D, T, LAM, UREG, BREG, TAU2, CREG, INIT, SEED = 3, 2, 0.2, 0.15, 4.0, 0.3, 7.0, 0.5, 11


def _reference(R, M):
    n_u, n_i = R.shape
    n_user, n_item = M.sum(1), M.sum(0)
    mu = R[M].mean()
    beta = np.where(M, R - mu, 0).sum(1) / (n_user + BREG)
    c = np.where(M, R - mu - beta[:, None], 0).sum(0) / (n_item + 1 / TAU2)
    _, _, g_fac = np.random.default_rng(SEED).spawn(3)
    V = g_fac.standard_normal((n_i, D)) / math.sqrt(D) * INIT

    def users(V, c):
        U, b = np.zeros((n_u, D)), np.zeros(n_u)
        for u in range(n_u):
            J = np.flatnonzero(M[u])
            Y = np.hstack([V[J], np.ones((len(J), 1))])
            Rg = np.diag(np.r_[np.full(D, UREG * (len(J) + 1)), BREG])
            x = np.linalg.solve(Y.T @ Y + Rg, Y.T @ (R[u, J] - mu - c[J]))
            U[u], b[u] = x[:D], x[D]
        return U, b

    for _ in range(T):
        U, b = users(V, c)
        Ua = np.hstack([U, np.ones((n_u, 1))])
        Va = np.zeros((n_i, D + 1))
        for j in range(n_i):
            I = np.flatnonzero(M[:, j])
            A = Ua[I].T @ Ua[I]
            rhs = Ua[I].T @ (R[I, j] - mu - c[j] - b[I])
            Rg = np.diag(np.r_[np.full(D, LAM * n_item[j] + 1e-6), LAM * n_item[j] + 1e-6 + CREG])
            Va[j] = np.linalg.solve(A + Rg, rhs)
        V, c = Va[:, :D], c + Va[:, D]
    U, b = users(V, c)
    return mu, c, V, U, b


@pytest.fixture(scope="module")
def data():
    return synthetic(120, 60, 3, mean_ratings_per_user=15, rng=3)


def test_dpals_at_infinity_is_exact_biased_als(data):
    R, M = data.matrix.toarray(), data.matrix.toarray() != 0
    model = DPALS(epsilon=math.inf, factors=D, iterations=T, regularization=LAM, user_regularization=UREG,
                  bias_reg=BREG, prior_var=TAU2, item_bias_reg=CREG, init_scale=INIT, rng=SEED).fit(data)
    mu, c, V, U, b = _reference(R, M)
    assert model.mu_ == pytest.approx(mu, rel=1e-12)
    # the user step runs in float32 kernels (float64 accumulation): agreement to ~1e-5 relative
    np.testing.assert_allclose(model.item_factors_, V, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.item_bias_, c, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.user_factors_, U, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(model.user_bias_, b, rtol=1e-3, atol=1e-4)
    # and nothing was released with noise: the report says so
    rep = model.privacy_report()
    assert rep["is_private"] is False and all(s["sigma"] == 0 for s in rep["steps"])
