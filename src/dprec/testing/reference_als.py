"""Dense numpy reference (an oracle for tests) of biased explicit ALS, the algorithm of ``ALS(feedback="explicit")`` and of
``DPALS(epsilon=math.inf)`` (one engine: :mod:`dprec.models._biased_als`), written from the documented formulas:

1. μ = mean rating; user offsets β_u = Σ_j (r_uj − μ)/(n_u + λ_b); item biases c_j = Σ_u (r_uj − μ − β_u) / (n_j + 1/τ²);
   initial V from the third stream of ``default_rng(seed).spawn(3)``, scaled by ``init/√k``;
2. a user solve [u; b_u] = (YᵀY + R_u)⁻¹ Yᵀ(r_u − μ − c) with Y = [V_J, 1], R_u = diag(λ_u (n_u + 1), …, λ_b);
3. ``it`` times: item solve [v_j; Δc_j] = (ΣUaUaᵀ + R_j)⁻¹ Σ (r − μ − c_j − b_u) Ua with Ua = [u; 1] and
   R_j = diag(λ n_j + 10⁻⁶, …, λ n_j + 10⁻⁶ + λ_c); c_j += Δc_j; then the user solve again.
"""

import numpy as np

__all__ = ["numpy_biased_als"]


def numpy_biased_als(X, k, it, lam, lam_u, lam_b, lam_c, tau2, init, seed):
    """Dense numpy biased ALS from the documented formulas (module docstring of dprec.models._biased_als)."""
    R, M = X.toarray(), X.toarray() != 0
    n_u, n_i = R.shape
    n_user, n_item = M.sum(1), M.sum(0)
    mu = R[M].mean()
    beta = np.where(M, R - mu, 0).sum(1) / (n_user + lam_b)
    c = np.where(M, R - mu - beta[:, None], 0).sum(0) / (n_item + 1 / tau2)
    _, _, g_fac = np.random.default_rng(seed).spawn(3)
    V = g_fac.standard_normal((n_i, k)) / np.sqrt(k) * init

    def users(V, c):
        U, b = np.zeros((n_u, k)), np.zeros(n_u)
        for u in range(n_u):
            J = np.flatnonzero(M[u])
            Y = np.hstack([V[J], np.ones((len(J), 1))])
            reg = np.diag(np.r_[np.full(k, lam_u * (len(J) + 1)), lam_b])
            x = np.linalg.solve(Y.T @ Y + reg, Y.T @ (R[u, J] - mu - c[J]))
            U[u], b[u] = x[:k], x[k]
        return U, b

    U, b = users(V, c)
    for _ in range(it):
        Ua = np.hstack([U, np.ones((n_u, 1))])
        Va = np.zeros((n_i, k + 1))
        for j in range(n_i):
            I = np.flatnonzero(M[:, j])
            reg = np.diag(np.r_[np.full(k, lam * n_item[j] + 1e-6), lam * n_item[j] + 1e-6 + lam_c])
            Va[j] = np.linalg.solve(Ua[I].T @ Ua[I] + reg, Ua[I].T @ (R[I, j] - mu - c[j] - b[I]))
        V, c = Va[:, :k], c + Va[:, k]
        U, b = users(V, c)
    return mu, V, c, U, b
