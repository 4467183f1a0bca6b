"""Non-private alternating least squares: the ε = ∞ reference of DP-ALS.

Two feedback modes share the kernels of :mod:`dprec.kernels.als`:

``feedback="explicit"`` — ratings ``r_ui`` with global mean μ, user biases ``b_u`` and item biases ``c_i``::

    r̂_ui = μ + b_u + c_i + u_uᵀ v_i

    minimise  Σ_(u,i)∈Ω (r_ui − r̂_ui)²  +  Σ_u λ n_u^γ ‖u_u‖² + λ_b b_u²  +  Σ_i λ n_i^γ ‖v_i‖² + λ_b c_i²

  (weighted-λ regularisation, Zhou et al. 2008, generalised by an exponent γ: each factor ridge scales
  with the row's number of training ratings n (floored at one) to the power γ; the biases have their own
  constant ridge λ_b). Biases are fitted jointly with the factors by augmenting the vectors with a constant column:
  the user step solves ``[u_u, b_u]`` against ``[v_i, 1]`` with target ``r − μ − c_i``, the item step solves
  ``[v_i, c_i]`` against ``[u_u, 1]`` with target ``r − μ − b_u``. μ is the training mean and stays fixed,
  so every half-step is an exact block minimisation and the objective never increases.

``feedback="implicit"`` — Hu, Koren & Volinsky (2008): confidence ``c_ui = 1 + α r_ui``, preference 1 on
  observed entries and 0 elsewhere, ridge λ, solved with the YᵀY trick. ``solver="cg"`` (default) runs
  ``cg_steps`` warm-started conjugate-gradient steps per row on both sides (as ``implicit`` does);
  ``solver="cholesky"`` solves exactly, users by a fused Gram + Cholesky and items through the sufficient
  statistics path ``item_stats → reduce_stats → solve_batched`` that DP-ALS uses.

Each iteration is an item step followed by a user step, so the stored user factors are always the user
step's solution against the final item factors (what :meth:`fold_in` and :meth:`explain` recompute).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..data import Interactions
from ..errors import CorruptFileError
from .._rng import as_generator
from ..kernels import als as K
from .base import Recommender, register_model

__all__ = ["ALS"]

_FEEDBACK = ("explicit", "implicit")
_SOLVERS = ("auto", "cholesky", "cg")
_DTYPES = {"float32": np.float32, "float64": np.float64}

#: defaults tuned on MovieLens-100K (random 80/20 split, seed 0) for explicit, and the usual HKV ones for implicit
_DEFAULT_REG = {"explicit": 0.36, "implicit": 0.01}
_DEFAULT_BIAS_REG = 1.0


@register_model
class ALS(Recommender):
    """Alternating least squares matrix factorisation (non-private; the ε = ∞ reference).

    Parameters
    ----------
    factors : int
        Latent dimension k.
    iterations : int
        Number of (item step, user step) sweeps.
    regularization : float, optional
        Ridge λ on the factors. Explicit feedback: weighted-λ (λ·n^γ for a user or item with n training
        ratings), default 0.36. Implicit feedback: plain λ, default 0.01.
    feedback : {"explicit", "implicit"}
    alpha : float
        Implicit confidence slope: ``c = 1 + alpha · r``.
    bias_regularization : float, optional
        Explicit only: constant ridge λ_b on every user and item bias, default 1.0.
    weighted_regularization : bool
        Explicit only: scale λ by the number of ratings (ALS-WR). Default True.
    regularization_exponent : float
        Explicit only: γ in λ·n^γ (1 = ALS-WR of Zhou et al.; default 0.75, tuned on MovieLens-100K).
    solver : {"auto", "cholesky", "cg"}
        Implicit only (explicit always solves exactly). ``"auto"`` = ``"cg"`` for float32 factors.
    cg_steps : int
        Conjugate-gradient steps per row and half-iteration (implicit, ``solver="cg"``).
    init_scale : float
        Standard deviation of the random initial factors (times 1/√k).
    num_threads : int
        0 = all cores.
    rng : int, numpy.random.Generator or None
        Seed of the random initialisation (``None`` = not reproducible).
    dtype : {"float32", "float64"}
        Factor precision (Gram matrices and solves are always accumulated in float64).
    """

    def __init__(
        self,
        *,
        factors: int = 64,
        iterations: int = 15,
        regularization: float | None = None,
        feedback: str = "explicit",
        alpha: float = 40.0,
        bias_regularization: float | None = None,
        weighted_regularization: bool = True,
        regularization_exponent: float = 0.75,
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
        if regularization is not None and not (np.isfinite(regularization) and regularization >= 0):
            raise ValueError(f"regularization must be a finite number ≥ 0, got {regularization!r}")
        if bias_regularization is not None and not (np.isfinite(bias_regularization) and bias_regularization >= 0):
            raise ValueError(f"bias_regularization must be a finite number ≥ 0, got {bias_regularization!r}")
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha!r}")
        if not isinstance(cg_steps, (int, np.integer)) or cg_steps < 1:
            raise ValueError(f"cg_steps must be a positive integer, got {cg_steps!r}")
        if not (np.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"init_scale must be a positive number, got {init_scale!r}")
        self.factors = int(factors)
        self.iterations = int(iterations)
        self.regularization = regularization
        self.feedback = feedback
        self.alpha = float(alpha)
        self.bias_regularization = bias_regularization
        self.weighted_regularization = bool(weighted_regularization)
        self.regularization_exponent = float(regularization_exponent)
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
            bias_regularization=self.bias_regularization,
            weighted_regularization=self.weighted_regularization,
            regularization_exponent=self.regularization_exponent,
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
    def _ridge(self, counts: np.ndarray) -> np.ndarray:
        """Per-row ridge vector (n, k[+1]): λ·max(n,1)^γ on the factors (or λ), λ_b on the bias column."""
        k = self.factors
        counts = np.asarray(counts, dtype=np.float64)
        if self.feedback == "explicit":
            scale = np.maximum(counts, 1.0) ** self.regularization_exponent if self.weighted_regularization \
                else np.ones_like(counts)
            reg = np.empty((len(counts), k + 1))
            reg[:, :k] = (self.reg_ * scale)[:, None]
            reg[:, k] = self.bias_reg_
            return reg
        return np.full((len(counts), k), self.reg_)

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Interactions, *, track_loss: bool = False) -> None:
        ft = _DTYPES[self.dtype]
        X = data.matrix
        n_users, n_items = X.shape
        k = self.factors
        rng = as_generator(self.rng)
        Xt = X.T.tocsr()
        Xt.sort_indices()
        self._item_counts = np.diff(Xt.indptr).astype(np.float64)
        user_counts = np.diff(X.indptr).astype(np.float64)
        scale = self.init_scale / np.sqrt(k)
        U = (rng.standard_normal((n_users, k)) * scale).astype(ft)
        V = (rng.standard_normal((n_items, k)) * scale).astype(ft)
        self.loss_history_ = []
        if self.feedback == "explicit":
            self._fit_explicit(X, Xt, U, V, user_counts, track_loss)
        else:
            self._fit_implicit(X, Xt, U, V, user_counts, track_loss)

    def _fit_explicit(self, X, Xt, U, V, user_counts, track_loss):
        ft = _DTYPES[self.dtype]
        k = self.factors
        n_users, n_items = X.shape
        mu = float(X.data.mean()) if X.nnz else 0.0
        bu = np.zeros(n_users, dtype=ft)
        bi = np.zeros(n_items, dtype=ft)
        reg_u = self._ridge(user_counts)
        reg_i = self._ridge(self._item_counts)
        ones_u = np.ones(X.nnz, dtype=ft)
        Uaug = np.empty((n_users, k + 1), dtype=ft)
        Vaug = np.empty((n_items, k + 1), dtype=ft)
        Uaug[:, :k] = U
        Uaug[:, k] = 1.0
        Vaug[:, :k] = V  # only kept when iterations == 0
        Vaug[:, k] = 0.0
        G0 = np.zeros((k + 1, k + 1))
        r_u = X.data.astype(ft) - ft(mu)
        r_i = Xt.data.astype(ft) - ft(mu)
        bufs = (np.empty((n_items, k + 1, k + 1)), np.empty((n_items, k + 1))) if self.iterations else None
        for _ in range(self.iterations):
            # item step: [v_i, c_i] from [u, 1] and r − μ − b_u  (stats over one user block → solve; DP-ALS
            # adds noise to (A, b) and reduces several blocks at this point)
            A, b = K.item_stats(Xt.indptr, Xt.indices, ones_u, r_i - bu[Xt.indices], Uaug, 0, n_users, out=bufs)
            Vaug, _ = K.solve_batched(A, b, reg_i, G0, out=Vaug)
            bi = np.ascontiguousarray(Vaug[:, k])
            # user step: [u, b_u] from [v, 1] and r − μ − c_i
            Vaug[:, k] = 1.0
            K.solve_rows(X.indptr, X.indices, ones_u, r_u - bi[X.indices], Vaug, G0, reg_u, Uaug)
            bu = np.ascontiguousarray(Uaug[:, k])
            Uaug[:, k] = 1.0
            if track_loss:
                self._store_explicit(Uaug, Vaug, bu, bi, mu)
                self.loss_history_.append(self.objective(X))
        self._store_explicit(Uaug, Vaug, bu, bi, mu)

    def _store_explicit(self, Uaug, Vaug, bu, bi, mu):
        k = self.factors
        self.user_factors = np.ascontiguousarray(Uaug[:, :k])
        self.item_factors = np.ascontiguousarray(Vaug[:, :k])
        self.user_bias = np.asarray(bu).copy()
        self.item_bias = np.asarray(bi).copy()
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
        """The training objective this model minimises, on a user×item CSR ``X`` (see module docstring)."""
        if isinstance(X, Interactions):
            X = X.matrix
        U, V = self.user_factors, self.item_factors
        if self.feedback == "explicit":
            sq = K.explicit_sq_error(X.indptr, X.indices, X.data, U, V, self.global_mean,
                                     self.user_bias.astype(np.float64), self.item_bias.astype(np.float64))
            ru = self._ridge(np.diff(X.indptr))
            ri = self._ridge(self._item_counts)
            k = self.factors
            U64, V64 = U.astype(np.float64), V.astype(np.float64)
            pen = (ru[:, :k] * U64**2).sum() + (ri[:, :k] * V64**2).sum()
            pen += (ru[:, k] * self.user_bias.astype(np.float64) ** 2).sum()
            pen += (ri[:, k] * self.item_bias.astype(np.float64) ** 2).sum()
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
        reg = self._ridge(np.array([len(cols)]))[0]
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
