"""Non-private alternating least squares: the ε = ∞ reference of DP-ALS.

``feedback="explicit"`` — ratings ``r_ui`` with global mean μ, user biases ``b_u`` and item biases ``c_i``::

    r̂_ui = μ + b_u + c_i + u_uᵀ v_i

  This is DP-ALS without noise: both models run the one engine :mod:`dprec.models._biased_als` (the same
  user solve, item statistics, bias correction and final user solve; DP-ALS plugs its noisy item solve,
  contribution weights and clipping into the item step, ALS the exact solve). So
  ``ALS(feedback="explicit", ...)`` equals ``DPALS(epsilon=math.inf, ...)`` for corresponding
  hyperparameters (table in :class:`ALS`). The fit:

  1. global effects: μ = mean rating, user offsets ``β_u = Σ_i (r_ui − μ)/(n_u + λ_b)``, item biases
     ``c_i = Σ_u (r_ui − μ − β_u)/(n_i + 1/τ²)``; random item factors ``V ~ N(0, (init_scale/√k)²)``;
  2. a user solve, then ``iterations`` sweeps of (item step, user step):

     * user step (exact): ``[u_u; b_u] = argmin Σ_i (r_ui − μ − c_i − b_u − u_uᵀ v_i)² + λ_u (n_u + 1) ‖u_u‖² + λ_b b_u²``;
     * item step (exact): ``[v_i; Δc_i] = argmin Σ_u (r_ui − μ − b_u − c_i − Δc_i − u_uᵀ v_i)²
       + (λ n_i + 10⁻⁶) ‖v_i‖² + λ_c Δc_i²``, then ``c_i ← c_i + Δc_i``.

  The item bias is refined by a damped correction (a proximal step anchored at the previous value; without
  it a rarely rated item's bias follows its few ratings and such items flood the top of every ranking). Each
  half-step is an exact (proximal) block minimisation, so the objective reported by :meth:`ALS.objective`,

      Σ_(u,i)∈Ω (r_ui − r̂_ui)² + Σ_u [λ_u (n_u + 1) ‖u_u‖² + λ_b b_u²] + Σ_i (λ n_i + 10⁻⁶) ‖v_i‖²,

  never increases. The ridges are weighted-λ (Zhou et al. 2008): they grow with the row's rating count.

``feedback="implicit"`` — Hu, Koren & Volinsky (2008): confidence ``c_ui = 1 + α r_ui``, preference 1 on
  observed entries and 0 elsewhere, ridge λ, solved with the YᵀY trick. ``solver="cg"`` (default) runs
  ``cg_steps`` warm-started conjugate-gradient steps per row on both sides (as ``implicit`` does);
  ``solver="cholesky"`` solves exactly, users by a fused Gram + Cholesky and items through the sufficient
  statistics path ``item_stats → reduce_stats → solve_batched`` that DP-ALS uses. Each iteration is an item
  step followed by a user step (random initial U and V).

In both modes the stored user factors are the user step's solution against the final item factors (what
:meth:`fold_in` and :meth:`explain` recompute).
"""

from __future__ import annotations

import numpy as np

from ..data import Interactions
from ..errors import CorruptFileError
from .._rng import as_generator
from ..kernels import als as K
from . import _biased_als as E
from .base import Recommender, register_model

__all__ = ["ALS"]

_FEEDBACK = ("explicit", "implicit")
_SOLVERS = ("auto", "cholesky", "cg")
_DTYPES = {"float32": np.float32, "float64": np.float64}

#: explicit: DP-ALS's ε = ∞ defaults (checked on MovieLens-100K, see :class:`ALS`); implicit: the usual HKV ones
_DEFAULT_REG = {"explicit": 0.1, "implicit": 0.01}
_DEFAULT_BIAS_REG = 5.0


@register_model
class ALS(Recommender):
    """Alternating least squares matrix factorisation (non-private; the ε = ∞ reference of DP-ALS).

    Parameters
    ----------
    factors : int
        Latent dimension k.
    iterations : int
        Number of sweeps. Explicit: (item step, user step) after an initial user step; implicit: (item step,
        user step).
    regularization : float, optional
        Ridge λ on the item factors. Explicit feedback: λ·n_i for an item with n_i training ratings (plus
        10⁻⁶), default 0.1 — DP-ALS's ``regularization``. Implicit feedback: plain λ on users and items,
        default 0.01.
    feedback : {"explicit", "implicit"}
    alpha : float
        Implicit confidence slope: ``c = 1 + alpha · r``.
    user_regularization : float
        Explicit only: ridge λ_u·(n_u + 1) on the factors of a user with n_u ratings, default 0.12.
    bias_regularization : float, optional
        Explicit only: ridge λ_b on every user bias, and the damping of the user offsets in the initial
        global effects; default 5.0 (``None`` = default).
    item_bias_regularization : float
        Explicit only: ridge λ_c on each item step's *correction* Δc_i of the item bias, default 100.
    prior_var : float
        Explicit only: τ² of the initial item biases ``Σ_u (r_ui − μ − β_u)/(n_i + 1/τ²)``, default 0.3.
    solver : {"auto", "cholesky", "cg"}
        Implicit only (explicit always solves exactly). ``"auto"`` = ``"cg"`` for float32 factors.
    cg_steps : int
        Conjugate-gradient steps per row and half-iteration (implicit, ``solver="cg"``).
    init_scale : float
        Standard deviation of the random initial factors (times 1/√k).
    num_threads : int
        0 = all cores.
    rng : int, numpy.random.Generator or None
        Seed of the random initialisation (``None`` = not reproducible). Explicit: the item factors are
        drawn from the third of ``rng.spawn(3)`` (DP-ALS's stream layout), so the same seed gives DP-ALS's
        initial V. Implicit: U then V straight from ``rng``.
    dtype : {"float32", "float64"}
        Factor precision in the kernels and of the stored factors (Gram matrices and solves always accumulate
        in float64). DP-ALS runs float32 kernels.

    Explicit feedback equals DP-ALS at ε = ∞
    ----------------------------------------
    ::

        ALS(feedback="explicit", factors=d, iterations=T, regularization=λ, user_regularization=λ_u,
            bias_regularization=λ_b, item_bias_regularization=λ_c, prior_var=τ², init_scale=s, rng=seed)
        ≡ DPALS(epsilon=math.inf, factors=d, iterations=T, regularization=λ, user_regularization=λ_u,
                bias_reg=λ_b, item_bias_reg=λ_c, prior_var=τ², init_scale=s, rng=seed)

    with ``dtype="float32"`` (the default): the same engine, the same initial V, the same float32 kernels;
    the fitted item factors, biases, user factors and predictions agree to float32 rounding (ALS stores
    ``dtype`` arrays, DP-ALS float64). The defaults are DP-ALS's ε = ∞ defaults (d = 64, T = 15, λ = 0.1,
    λ_u = 0.12, λ_b = 5, λ_c = 100, τ² = 0.3), so ``ALS()`` is ``DPALS(epsilon=math.inf)`` as long as those
    rules stay as they are. DP-ALS requires λ, λ_u, λ_b > 0; ALS also accepts 0.

    Tuning (explicit defaults): on MovieLens-100K, random 80/20 split with seed 0 (``dprec evaluate --dataset
    ml-100k --model als``), the defaults give test RMSE 0.9019 and NDCG@10 0.066 (the previous ALS — ridge
    λ·n^0.75 on users and items, λ = 0.36, from random U and V — gave 0.9001 and 0.077). A grid on that split
    only, λ ∈ {0.05, 0.1, 0.2} × λ_u ∈ {0.06, 0.12, 0.25} × λ_b ∈ {2, 5, 10} × λ_c ∈ {30, 100, 300} (d = 64,
    T = 15, seed 0), found nothing worth a change: best RMSE 0.9018 (λ = 0.05, λ_u = 0.25); RMSE depends
    mostly on the product λ·λ_u; λ_c = 300 raises NDCG@10 to 0.076–0.077 at RMSE +0.0003. So the defaults
    stay DP-ALS's.

    Changed in this version: ``regularization`` of explicit ALS now applies to the item factors only (λ·n_i;
    it was λ·n^γ on users and items, default 0.36), and ``weighted_regularization`` /
    ``regularization_exponent`` were removed (DP-ALS's ridges are λ·n and λ_u·(n + 1); models saved with them
    must be refitted).
    """

    def __init__(
        self,
        *,
        factors: int = 64,
        iterations: int = 15,
        regularization: float | None = None,
        feedback: str = "explicit",
        alpha: float = 40.0,
        user_regularization: float = 0.12,
        bias_regularization: float | None = None,
        item_bias_regularization: float = 100.0,
        prior_var: float = 0.3,
        solver: str = "auto",
        cg_steps: int = 3,
        init_scale: float = 0.1,
        num_threads: int = 0,
        rng=None,
        dtype: str = "float32",
    ):
        super().__init__(num_threads=num_threads, rng=rng)
        if not isinstance(factors, (int, np.integer)) or factors < 1:
            raise ValueError(f"factors must be a positive integer, got {factors!r}")
        if not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ValueError(f"iterations must be an integer ≥ 0, got {iterations!r}")
        if feedback not in _FEEDBACK:
            raise ValueError(f"feedback must be one of {_FEEDBACK}, got {feedback!r}")
        if solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {_SOLVERS}, got {solver!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, got {dtype!r}")
        if solver == "cg" and dtype != "float32":
            raise ValueError('solver="cg" runs in float32; use dtype="float32" or solver="cholesky"')
        for name, v, optional in (("regularization", regularization, True), ("user_regularization", user_regularization, False),
                                  ("bias_regularization", bias_regularization, True),
                                  ("item_bias_regularization", item_bias_regularization, False)):
            if v is None and optional:
                continue
            if not (isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {v!r}")
        if not (isinstance(prior_var, (int, float, np.integer, np.floating)) and np.isfinite(prior_var) and prior_var > 0):
            raise ValueError(f"prior_var must be a positive number, got {prior_var!r}")
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha!r}")
        if not isinstance(cg_steps, (int, np.integer)) or cg_steps < 1:
            raise ValueError(f"cg_steps must be a positive integer, got {cg_steps!r}")
        if not (np.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"init_scale must be a positive number, got {init_scale!r}")
        self.factors = int(factors)
        self.iterations = int(iterations)
        self.regularization = None if regularization is None else float(regularization)
        self.feedback = feedback
        self.alpha = float(alpha)
        self.user_regularization = float(user_regularization)
        self.bias_regularization = None if bias_regularization is None else float(bias_regularization)
        self.item_bias_regularization = float(item_bias_regularization)
        self.prior_var = float(prior_var)
        self.solver = solver
        self.cg_steps = int(cg_steps)
        self.init_scale = float(init_scale)
        self.dtype = dtype
        #: per-iteration training objective when ``fit(..., track_loss=True)``
        self.loss_history_: list[float] = []

    # ------------------------------------------------------------------ params
    def get_params(self) -> dict:
        p = super().get_params()
        p.update(
            factors=self.factors,
            iterations=self.iterations,
            regularization=self.regularization,
            feedback=self.feedback,
            alpha=self.alpha,
            user_regularization=self.user_regularization,
            bias_regularization=self.bias_regularization,
            item_bias_regularization=self.item_bias_regularization,
            prior_var=self.prior_var,
            solver=self.solver,
            cg_steps=self.cg_steps,
            init_scale=self.init_scale,
            dtype=self.dtype,
        )
        return p

    @property
    def reg_(self) -> float:
        return float(_DEFAULT_REG[self.feedback] if self.regularization is None else self.regularization)

    @property
    def bias_reg_(self) -> float:
        return float(_DEFAULT_BIAS_REG if self.bias_regularization is None else self.bias_regularization)

    @property
    def solver_(self) -> str:
        if self.feedback == "explicit":
            return "cholesky"
        if self.solver == "auto":
            return "cg" if self.dtype == "float32" else "cholesky"
        return self.solver

    # ------------------------------------------------------------------ regularisation
    def _user_ridge(self, counts: np.ndarray) -> np.ndarray:
        """Per-user ridge vector (n, k[+1]): explicit λ_u·(n+1) on the factors and λ_b on the bias; implicit λ."""
        counts = np.asarray(counts, dtype=np.float64)
        if self.feedback == "explicit":
            return E.user_ridge(counts, self.factors, self.user_regularization, self.bias_reg_)
        return np.full((len(counts), self.factors), self.reg_)

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Interactions, *, track_loss: bool = False) -> None:
        X = data.matrix
        Xt = X.T.tocsr()
        Xt.sort_indices()
        self._item_counts = np.diff(Xt.indptr).astype(np.float64)
        self.loss_history_ = []
        if self.feedback == "explicit":
            self._fit_explicit(X, Xt, track_loss)
        else:
            ft = _DTYPES[self.dtype]
            n_users, n_items = X.shape
            k = self.factors
            rng = as_generator(self.rng)
            scale = self.init_scale / np.sqrt(k)
            U = (rng.standard_normal((n_users, k)) * scale).astype(ft)
            V = (rng.standard_normal((n_items, k)) * scale).astype(ft)
            self._fit_implicit(X, Xt, U, V, np.diff(X.indptr).astype(np.float64), track_loss)

    def _fit_explicit(self, X, Xt, track_loss):
        """The shared biased-ALS engine with the exact item solve (DP-ALS at ε = ∞; module docstring)."""
        ft = _DTYPES[self.dtype]
        k = self.factors
        _, _, g_fac = as_generator(self.rng).spawn(3)  # DP-ALS's stream layout: the third stream → V
        V0 = E.random_item_factors(g_fac, X.shape[1], k, self.init_scale)
        mu, c0, _ = E.global_effects(X, self.prior_var, self.bias_reg_)
        solve = E.exact_item_solver(self._item_counts, k, self.reg_, self.item_bias_regularization)
        item_t = np.repeat(np.arange(X.shape[1]), np.diff(Xt.indptr))

        def record(t, state):
            self._store_explicit(state, mu)
            self.loss_history_.append(self.objective(X))

        res = E.run(X, V0, mu=mu, item_bias=c0, iterations=self.iterations, user_reg=self.user_regularization,
                    bias_reg=self.bias_reg_, solve=solve, dtype=ft, item_major_csr=(Xt, item_t),
                    callback=record if track_loss else None)
        self._store_explicit(res, mu)

    def _store_explicit(self, state, mu):
        ft = _DTYPES[self.dtype]
        self.user_factors = np.ascontiguousarray(state.user_factors, dtype=ft)
        self.item_factors = np.ascontiguousarray(state.item_factors, dtype=ft)
        self.user_bias = np.array(state.user_bias, dtype=ft)
        self.item_bias = np.array(state.item_bias, dtype=ft)
        self.global_mean = float(mu)

    def _fit_implicit(self, X, Xt, U, V, user_counts, track_loss):
        ft = _DTYPES[self.dtype]
        k = self.factors
        n_users, n_items = X.shape
        conf_u = (1.0 + self.alpha * X.data).astype(ft)
        conf_i = (1.0 + self.alpha * Xt.data).astype(ft)
        lam = self.reg_
        solver = self.solver_
        if solver == "cholesky":
            wA_u = (self.alpha * X.data).astype(ft)
            wA_i = (self.alpha * Xt.data).astype(ft)
            reg_u = np.full((n_users, k), lam)
            reg_i = np.full((n_items, k), lam)
            bufs = (np.empty((n_items, k, k)), np.empty((n_items, k)))
        for _ in range(self.iterations):
            UtU = K.gram(U)
            if solver == "cg":
                K.cg_rows(Xt.indptr, Xt.indices, conf_i, U, UtU, lam, V, self.cg_steps)
            else:
                A, b = K.item_stats(Xt.indptr, Xt.indices, wA_i, conf_i, U, 0, n_users, out=bufs)
                V, _ = K.solve_batched(A, b, reg_i, UtU, out=V)
            VtV = K.gram(V)
            if solver == "cg":
                K.cg_rows(X.indptr, X.indices, conf_u, V, VtV, lam, U, self.cg_steps)
            else:
                K.solve_rows(X.indptr, X.indices, wA_u, conf_u, V, VtV, reg_u, U)
            if track_loss:
                self.user_factors, self.item_factors = U, V
                self.loss_history_.append(self.objective(X))
        self.user_factors, self.item_factors = U, V
        self.user_bias = np.zeros(0, dtype=ft)
        self.item_bias = np.zeros(0, dtype=ft)
        self.global_mean = 0.0
        self._YtY = None

    def objective(self, X) -> float:
        """The training objective (see module docstring) of the fitted parameters on a user×item CSR ``X``.

        Explicit: the item ridge uses the training item counts; the item biases carry no penalty (they are
        damped per step by λ_c instead)."""
        if isinstance(X, Interactions):
            X = X.matrix
        U, V = self.user_factors, self.item_factors
        if self.feedback == "explicit":
            sq = K.explicit_sq_error(X.indptr, X.indices, X.data, U, V, self.global_mean,
                                     self.user_bias.astype(np.float64), self.item_bias.astype(np.float64))
            ru = self._user_ridge(np.diff(X.indptr))
            ri = self.reg_ * self._item_counts + E.ITEM_RIDGE_JITTER
            k = self.factors
            U64, V64 = U.astype(np.float64), V.astype(np.float64)
            pen = (ru[:, :k] * U64**2).sum() + (ri[:, None] * V64**2).sum()
            pen += (ru[:, k] * self.user_bias.astype(np.float64) ** 2).sum()
            return float(sq + pen)
        conf = 1.0 + self.alpha * X.data
        return float(K.implicit_loss(X.indptr, X.indices, conf, U, V, self.reg_))

    # ------------------------------------------------------------------ serving
    def _raw_scores(self, rows: np.ndarray) -> np.ndarray:
        s = self.user_factors[rows].astype(np.float64) @ self.item_factors.T.astype(np.float64)
        if self.feedback == "explicit":
            s += self.global_mean + self.user_bias[rows].astype(np.float64)[:, None] + self.item_bias.astype(np.float64)[None, :]
        return s

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return self._raw_scores(np.asarray(rows, dtype=np.int64))

    def _predict_raw(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        out = np.empty(len(rows))
        known = rows >= 0
        if (~known).any():
            out[~known] = self._fallback_scores()[cols[~known]]
        r, c = rows[known], cols[known]
        dots = np.einsum("ij,ij->i", self.user_factors[r].astype(np.float64), self.item_factors[c].astype(np.float64))
        if self.feedback == "explicit":
            dots += self.global_mean + self.user_bias[r].astype(np.float64) + self.item_bias[c].astype(np.float64)
        out[known] = dots
        return out

    def _predict(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = self._predict_raw(rows, cols)
        if self.feedback == "explicit" and self.rating_bounds is not None:
            np.clip(out, self.rating_bounds[0], self.rating_bounds[1], out=out)
        return out

    def _fallback_scores(self) -> np.ndarray:
        if self.feedback == "explicit":
            return self.global_mean + self.item_bias.astype(np.float64)
        return self._item_counts.astype(np.float64)

    def _item_vectors(self):
        return self.item_factors.astype(np.float64)

    # ------------------------------------------------------------------ per-user solves
    def _user_system(self, cols: np.ndarray, vals: np.ndarray):
        """(Y, wA, wb, G, reg) of one user's regularised least-squares problem (float64)."""
        cols = np.asarray(cols, dtype=np.int64)
        vals = np.asarray(vals, dtype=np.float64)
        k = self.factors
        if self.feedback == "explicit":
            Y = np.empty((self.n_items, k + 1))
            Y[:, :k] = self.item_factors
            Y[:, k] = 1.0
            wA = np.ones(len(cols))
            wb = vals - self.global_mean - self.item_bias[cols].astype(np.float64)
            G = np.zeros((k + 1, k + 1))
        else:
            Y = self.item_factors.astype(np.float64)
            wA = self.alpha * vals
            wb = 1.0 + self.alpha * vals
            G = self._gram_items()
        reg = self._user_ridge(np.array([len(cols)]))[0]
        return Y, wA, wb, G, reg

    def _gram_items(self) -> np.ndarray:
        if getattr(self, "_YtY", None) is None:
            V = self.item_factors.astype(np.float64)
            self._YtY = V.T @ V
        return self._YtY

    def _solve_user(self, cols, vals) -> np.ndarray:
        Y, wA, wb, G, reg = self._user_system(cols, vals)
        x = np.empty(Y.shape[1])
        n = max(len(cols), 1)
        ok = K.row_gram_solve(np.asarray(cols, dtype=np.int64), wA, wb, Y, G, reg, x,
                              np.empty((n, Y.shape[1])), np.empty((n, Y.shape[1])))
        if not ok:
            raise ValueError("fold_in: the user's system is singular (set regularization > 0)")
        return x

    def _fold_in(self, row: int, cols: np.ndarray, vals: np.ndarray) -> None:
        x = self._solve_user(cols, vals)
        k = self.factors
        ft = self.user_factors.dtype
        if row >= self.user_factors.shape[0]:
            self.user_factors = np.vstack([self.user_factors, np.zeros((1, k), ft)])
            if self.feedback == "explicit":
                self.user_bias = np.append(self.user_bias, ft.type(0))
        self.user_factors[row] = x[:k]
        if self.feedback == "explicit":
            self.user_bias[row] = x[k]

    def _explain(self, row: int, col: int):
        """Per-rated-item contributions: score = baseline + Σ_j contribution_j (before clipping).

        With ``W = (Ỹ_uᵀ C_u Ỹ_u + Λ)⁻¹`` the user's solved vector is ``W Σ_j wb_j ỹ_j``, so the item's score
        ``ṽ_iᵀ ũ`` splits into ``contribution_j = wb_j · ṽ_iᵀ W ỹ_j`` (explicit: ``wb_j = r_j − μ − c_j`` and
        ``ṽ_i = [v_i, 1]``; implicit: ``wb_j = 1 + α r_j``). ``baseline`` is the rest of the stored score:
        μ + c_i for explicit feedback (0 for implicit) plus the tiny difference between the stored user
        vector and the exact float64 re-solve (CG approximation / float32 rounding).
        """
        s, e = self._seen.indptr[row], self._seen.indptr[row + 1]
        cols = self._seen.indices[s:e].astype(np.int64)
        vals = self._seen.data[s:e].astype(np.float64)
        Y, wA, wb, G, reg = self._user_system(cols, vals)
        Yu = Y[cols]
        M = G + (Yu * wA[:, None]).T @ Yu + np.diag(reg)
        vi = Y[col]
        z = np.linalg.solve(M, vi)  # W ṽ_i (W symmetric)
        contrib = wb * (Yu @ z)
        score = float(self._predict_raw(np.array([row]), np.array([col]))[0])
        baseline = score - float(contrib.sum())
        return cols, vals, contrib, baseline

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict:
        return {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "user_bias": self.user_bias,
            "item_bias": self.item_bias,
            "global_mean": np.array([self.global_mean]),
            "item_counts": self._item_counts,
        }

    def _set_state(self, state: dict) -> None:
        n_u, n_i, k = len(self._user_ids), len(self._item_ids), self.factors
        ft = _DTYPES[self.dtype]
        expect = {
            "user_factors": ((n_u, k), ft),
            "item_factors": ((n_i, k), ft),
            "item_counts": ((n_i,), np.float64),
            "global_mean": ((1,), np.float64),
        }
        if self.feedback == "explicit":
            expect["user_bias"] = ((n_u,), ft)
            expect["item_bias"] = ((n_i,), ft)
        for name, (shape, dt) in expect.items():
            a = state.get(name)
            if a is None or a.shape != shape or a.dtype != dt:
                got = None if a is None else (a.shape, a.dtype)
                raise CorruptFileError(f"ALS state array {name!r}: expected {shape} {np.dtype(dt)}, got {got}")
            if not np.all(np.isfinite(a)):
                raise CorruptFileError(f"ALS state array {name!r} contains NaN or infinite values")
        self.user_factors = np.ascontiguousarray(state["user_factors"])
        self.item_factors = np.ascontiguousarray(state["item_factors"])
        self.user_bias = np.ascontiguousarray(state.get("user_bias", np.zeros(0, ft)))
        self.item_bias = np.ascontiguousarray(state.get("item_bias", np.zeros(0, ft)))
        self.global_mean = float(state["global_mean"][0])
        self._item_counts = np.ascontiguousarray(state["item_counts"])
        self._YtY = None
