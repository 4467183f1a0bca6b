"""Non-private alternating least squares: the ε = ∞ reference of DP-ALS.

``feedback="explicit"`` — ratings ``r_ui`` with global mean μ, user biases ``b_u`` and item biases ``c_i``::

    r̂_ui = μ + b_u + c_i + u_uᵀ v_i

  This is DP-ALS without noise: both models run the one engine :mod:`dprec.models._biased_als`, whose
  docstring is the description of the fit (global effects, user step, damped item step, the objective that
  :meth:`ALS.objective` reports and that never increases). So ``ALS(feedback="explicit", ...)`` equals
  ``DPALS(epsilon=math.inf, ...)`` for the same hyperparameters (same names; table in :class:`ALS`) with the
  default exact ``solver="cholesky"``. ``solver="cg"`` is the fast path: the same sweeps and objective, each
  half-step ``cg_steps`` warm-started matrix-free CG steps per row (:mod:`dprec.kernels.cg`; the engine's
  "Conjugate-gradient mode"), float32.

``feedback="implicit"`` — Hu, Koren & Volinsky (2008): confidence ``c_ui = 1 + α r_ui``, preference 1 on
  observed entries and 0 elsewhere, ridge λ, solved with the YᵀY trick. ``solver="cg"`` (default) runs
  ``cg_steps`` warm-started conjugate-gradient steps per row on both sides (as ``implicit`` does);
  ``solver="cholesky"`` solves exactly, users by a fused Gram + Cholesky and items through the sufficient
  statistics path ``item_stats → reduce_stats → solve_batched`` that DP-ALS uses. Each iteration is an item
  step followed by a user step (random initial U and V).

In both modes the stored user factors are the user step's solution against the final item factors (what
:meth:`fold_in` and :meth:`explain` recompute exactly; with ``solver="cg"`` the stored ones are the CG iterate).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from .._rng import as_generator
from ..data import Interactions
from ..errors import CorruptFileError
from ..kernels import als as K
from . import _biased_als as E
from ._blocks import is_blocked, user_sum
from .base import Recommender, deprecated_alias
from .config import Int, ModelConfig, Real
from .registry import register_model

__all__ = ["ALS", "ALSConfig"]

_DTYPES = {"float32": np.float32, "float64": np.float64}

#: explicit: DP-ALS's ε = ∞ defaults (checked on MovieLens-100K, see :class:`ALS`); implicit: the usual HKV ones
_DEFAULT_REG = {"explicit": 0.1, "implicit": 0.01}
_DEFAULT_BIAS_REG = 5.0
#: what ``solver="auto"`` means for explicit feedback (float32)
_EXPLICIT_AUTO = "cholesky"


class ALSConfig(ModelConfig):
    """Parameters of :class:`ALS` (the explicit-feedback ones carry DP-ALS's names and ε = ∞ defaults)."""

    factors: Int = Field(64, ge=1, description="latent dimension d")
    iterations: Int = Field(15, ge=0, description="number of sweeps (item step, user step)")
    regularization: Real | None = Field(
        None,
        ge=0,
        description="ridge λ on the item factors (explicit: λ·n_i + "
        "1e-6, default 0.1; implicit: plain λ on users and items, default 0.01)",
    )
    feedback: Literal["explicit", "implicit"] = Field(
        "explicit", description="explicit ratings (biased ALS) or implicit feedback (Hu, Koren & Volinsky 2008)"
    )
    alpha: Real = Field(40.0, ge=0, description="implicit confidence slope: c = 1 + alpha·r")
    user_regularization: Real = Field(0.12, ge=0, description="explicit: ridge λ_u·(n_u + 1) on the user factors")
    bias_regularization: Real | None = Field(
        None,
        ge=0,
        description="explicit: ridge λ_b on the user biases and damping of the initial user offsets; None = 5",
    )
    item_bias_regularization: Real = Field(
        100.0, ge=0, description="explicit: ridge λ_c on each item step's correction of the item bias"
    )
    prior_var: Real = Field(0.3, gt=0, description="explicit: τ² of the initial item biases")
    solver: Literal["auto", "cholesky", "cg"] = Field(
        "auto",
        description="warm-started conjugate gradient or exact Cholesky; auto = implicit: cg for float32, "
        "explicit: cholesky",
    )
    cg_steps: Int = Field(3, ge=1, description="solver='cg': CG steps per row and half-iteration")
    init_scale: Real = Field(0.1, gt=0, description="standard deviation × √d of the random initial factors")
    dtype: Literal["float32", "float64"] = Field(
        "float32",
        description="factor precision in the kernels and of "
        "the stored factors (Gram matrices and solves accumulate in float64)",
    )

    @model_validator(mode="after")
    def _cg_is_float32(self):
        if self.solver == "cg" and self.dtype != "float32":
            raise ValueError('solver="cg" runs in float32; use dtype="float32" or solver="cholesky"')
        return self


@register_model("als")
class ALS(Recommender):
    """Alternating least squares matrix factorisation (non-private; the ε = ∞ reference of DP-ALS).

    ``feedback`` is a parameter here, so the class-level capability is ``ALS.feedback == "any"`` (an instance
    reports its own ``feedback``, and ``predicts_ratings`` is True only for explicit feedback).

    Parameters (keyword-only; :class:`ALSConfig` documents each)
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
        ``"cg"``: ``cg_steps`` warm-started conjugate-gradient steps per row and half-step, float32 only;
        ``"cholesky"``: exact solves. ``"auto"`` = ``"cg"`` for implicit feedback with float32 factors,
        ``"cholesky"`` for explicit feedback (the exact solves DP-ALS runs, so ``ALS()`` stays
        ``DPALS(epsilon=math.inf)``; how explicit CG compares: docs/tuning.md).
    cg_steps : int
        Conjugate-gradient steps per row and half-iteration (``solver="cg"``).
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

    Fitted attributes: ``user_factors_``, ``item_factors_``, ``user_bias_``, ``item_bias_``, ``global_mean_``
    (explicit; empty/0 for implicit), ``item_counts_`` (training counts), ``loss_history_``.

    Explicit feedback equals DP-ALS at ε = ∞
    ----------------------------------------
    ::

        ALS(feedback="explicit", factors=d, iterations=T, regularization=λ, user_regularization=λ_u,
            bias_regularization=λ_b, item_bias_regularization=λ_c, prior_var=τ², init_scale=s, rng=seed)
        ≡ DPALS(epsilon=math.inf, factors=d, iterations=T, regularization=λ, user_regularization=λ_u,
                bias_regularization=λ_b, item_bias_regularization=λ_c, prior_var=τ², init_scale=s, rng=seed)

    with ``dtype="float32"`` (the default): the same engine, the same initial V, the same float32 kernels;
    the fitted item factors, biases, user factors and predictions agree to float32 rounding (ALS stores
    ``dtype`` arrays, DP-ALS float64). The defaults are DP-ALS's ε = ∞ defaults (d = 64, T = 15, λ = 0.1,
    λ_u = 0.12, λ_b = 5, λ_c = 100, τ² = 0.3), so ``ALS()`` is ``DPALS(epsilon=math.inf)`` as long as those
    rules stay as they are. DP-ALS requires λ, λ_u, λ_b > 0; ALS also accepts 0. How the defaults were checked:
    docs/tuning.md.
    """

    is_private = False
    feedback = "any"  # the class serves both; an instance's feedback (and so its predicts_ratings) is its own
    Config = ALSConfig

    def __init__(self, **params):
        super().__init__(**params)
        self.user_factors_ = self.item_factors_ = self.user_bias_ = self.item_bias_ = None
        self.global_mean_ = None
        #: training rating count of each item
        self.item_counts_ = None
        #: per-iteration training objective when ``fit(..., track_loss=True)``
        self.loss_history_: list[float] = []
        self._YtY = None  # cached VᵀV of the implicit user solve

    def _ignored_parameters(self) -> dict[str, str]:
        """Each mode's parameters that the other mode ignores (set to a non-default value, they warn)."""
        if self.feedback == "explicit":
            why = 'it is an implicit-feedback parameter and ALS(feedback="explicit") does not use it'
            return {"alpha": why}
        why = 'it is an explicit-feedback parameter and ALS(feedback="implicit") does not use it'
        return {k: why for k in ("user_regularization", "bias_regularization", "item_bias_regularization", "prior_var")}

    user_factors = deprecated_alias("user_factors_", "user_factors")
    item_factors = deprecated_alias("item_factors_", "item_factors")
    user_bias = deprecated_alias("user_bias_", "user_bias")
    item_bias = deprecated_alias("item_bias_", "item_bias")
    global_mean = deprecated_alias("global_mean_", "global_mean")

    reg_ = deprecated_alias("regularization_", "reg_")
    bias_reg_ = deprecated_alias("bias_regularization_", "bias_reg_")

    @property
    def regularization_(self) -> float:
        """The ridge λ in use (``regularization``, or the default of the feedback mode)."""
        return float(_DEFAULT_REG[self.feedback] if self.regularization is None else self.regularization)

    @property
    def bias_regularization_(self) -> float:
        """The user-bias ridge λ_b in use (``bias_regularization``, or 5)."""
        return float(_DEFAULT_BIAS_REG if self.bias_regularization is None else self.bias_regularization)

    @property
    def solver_(self) -> str:
        """The solver in use: ``solver``, or for ``"auto"`` the mode's default (implicit: CG for float32;
        explicit: ``_EXPLICIT_AUTO``)."""
        if self.solver == "auto":
            if self.feedback == "explicit":
                return _EXPLICIT_AUTO if self.dtype == "float32" else "cholesky"
            return "cg" if self.dtype == "float32" else "cholesky"
        return self.solver

    # ------------------------------------------------------------------ regularisation
    def _user_ridge(self, counts: np.ndarray) -> np.ndarray:
        """Per-user ridge vector (n, k[+1]): explicit λ_u·(n+1) on the factors and λ_b on the bias; implicit λ."""
        counts = np.asarray(counts, dtype=np.float64)
        if self.feedback == "explicit":
            return E.user_ridge(counts, self.factors, self.user_regularization, self.bias_regularization_)
        return np.full((len(counts), self.factors), self.regularization_)

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Interactions, *, track_loss: bool = False) -> None:
        X = data.matrix
        if is_blocked(X):  # a distributed backend's user blocks (dprec.distributed): explicit feedback only
            Xt, self.item_counts_ = None, user_sum(E.item_rating_counts, X)
        else:
            Xt = X.T.tocsr()
            Xt.sort_indices()
            self.item_counts_ = np.diff(Xt.indptr).astype(np.float64)
        self.loss_history_ = []
        if self.feedback == "explicit":
            self._fit_explicit(X, Xt, track_loss)
        else:
            ft = _DTYPES[self.dtype]
            n_users, n_items = X.shape
            k = self.factors
            rng = as_generator(self.rng)
            scale = self.init_scale / np.sqrt(k)
            U = rng.standard_normal((n_users, k)) * scale
            V = rng.standard_normal((n_items, k)) * scale
            # float32 factors 64-byte aligned: the CG passes read them in place (an unaligned one is copied per pass)
            cast = K.aligned_float32 if ft == np.float32 else (lambda a: a.astype(ft))
            U, V = cast(U), cast(V)
            self._fit_implicit(X, Xt, U, V, np.diff(X.indptr).astype(np.float64), track_loss)

    def _fit_explicit(self, X, Xt, track_loss):
        """The shared biased-ALS engine with the exact item solve (DP-ALS at ε = ∞; module docstring)."""
        ft = _DTYPES[self.dtype]
        k = self.factors
        _, _, g_fac = as_generator(self.rng).spawn(3)  # DP-ALS's stream layout: the third stream → V
        V0 = E.random_item_factors(g_fac, X.shape[1], k, self.init_scale)
        mu, c0, _ = E.global_effects(X, self.prior_var, self.bias_regularization_)
        solve = cg = None
        if self.solver_ == "cg":
            cg = E.cg_solver(self.item_counts_, k, self.regularization_, self.item_bias_regularization, self.cg_steps)
        else:
            solve = E.exact_item_solver(self.item_counts_, k, self.regularization_, self.item_bias_regularization)
        item_major_csr = (
            None if Xt is None else (Xt, np.repeat(np.arange(X.shape[1], dtype=Xt.indices.dtype), np.diff(Xt.indptr)))
        )

        def record(t, state):
            self._store_explicit(state, mu)
            self.loss_history_.append(self.objective(X))

        res = E.run(
            X,
            V0,
            mu=mu,
            item_bias=c0,
            iterations=self.iterations,
            user_reg=self.user_regularization,
            bias_reg=self.bias_regularization_,
            solve=solve,
            dtype=ft,
            item_major_csr=item_major_csr,
            callback=record if track_loss else None,
            cg=cg,
        )
        self._store_explicit(res, mu)

    def _store_explicit(self, state, mu):
        ft = _DTYPES[self.dtype]
        self.user_factors_ = np.ascontiguousarray(state.user_factors, dtype=ft)
        self.item_factors_ = np.ascontiguousarray(state.item_factors, dtype=ft)
        self.user_bias_ = np.array(state.user_bias, dtype=ft)
        self.item_bias_ = np.array(state.item_bias, dtype=ft)
        self.global_mean_ = float(mu)

    def _fit_implicit(self, X, Xt, U, V, user_counts, track_loss):
        ft = _DTYPES[self.dtype]
        k = self.factors
        n_users, n_items = X.shape
        conf_u = (1.0 + self.alpha * X.data).astype(ft)
        conf_i = (1.0 + self.alpha * Xt.data).astype(ft)
        lam = self.regularization_
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
                self.user_factors_, self.item_factors_ = U, V
                self.loss_history_.append(self.objective(X))
        self.user_factors_, self.item_factors_ = U, V
        self.user_bias_ = np.zeros(0, dtype=ft)
        self.item_bias_ = np.zeros(0, dtype=ft)
        self.global_mean_ = 0.0
        self._YtY = None

    def objective(self, X) -> float:
        """The training objective (see module docstring) of the fitted parameters on a user×item CSR ``X``.

        Explicit: the item ridge uses the training item counts; the item biases carry no penalty (they are
        damped per step by λ_c instead)."""
        if isinstance(X, Interactions):
            X = X.matrix
        U, V = self.user_factors_, self.item_factors_
        if self.feedback == "explicit":
            sq = K.explicit_sq_error(
                X.indptr,
                X.indices,
                X.data,
                U,
                V,
                self.global_mean_,
                self.user_bias_.astype(np.float64),
                self.item_bias_.astype(np.float64),
            )
            ru = self._user_ridge(np.diff(X.indptr))
            ri = self.regularization_ * self.item_counts_ + E.ITEM_RIDGE_JITTER
            k = self.factors
            U64, V64 = U.astype(np.float64), V.astype(np.float64)
            pen = (ru[:, :k] * U64**2).sum() + (ri[:, None] * V64**2).sum()
            pen += (ru[:, k] * self.user_bias_.astype(np.float64) ** 2).sum()
            return float(sq + pen)
        conf = 1.0 + self.alpha * X.data
        return float(K.implicit_loss(X.indptr, X.indices, conf, U, V, self.regularization_))

    # ------------------------------------------------------------------ serving
    def _raw_scores(self, rows: np.ndarray) -> np.ndarray:
        s = self.user_factors_[rows].astype(np.float64) @ self.item_factors_.T.astype(np.float64)
        if self.feedback == "explicit":
            s += (
                self.global_mean_
                + self.user_bias_[rows].astype(np.float64)[:, None]
                + self.item_bias_.astype(np.float64)[None, :]
            )
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
        dots = np.einsum("ij,ij->i", self.user_factors_[r].astype(np.float64), self.item_factors_[c].astype(np.float64))
        if self.feedback == "explicit":
            dots += self.global_mean_ + self.user_bias_[r].astype(np.float64) + self.item_bias_[c].astype(np.float64)
        out[known] = dots
        return out

    def _predict(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = self._predict_raw(rows, cols)
        if self.feedback == "explicit" and self.rating_bounds_ is not None:
            np.clip(out, self.rating_bounds_[0], self.rating_bounds_[1], out=out)
        return out

    def _dot_scores(self):  # the fast top-k path of recommend (base.DotScores)
        return self._dot_form(biases=self.feedback == "explicit")

    def _fallback_scores(self) -> np.ndarray:
        if self.feedback == "explicit":
            return self.global_mean_ + self.item_bias_.astype(np.float64)
        return self.item_counts_.astype(np.float64)

    def _item_vectors(self):
        return self.item_factors_.astype(np.float64)

    # ------------------------------------------------------------------ per-user solves
    def _user_system(self, cols: np.ndarray, vals: np.ndarray):
        """(Y, wA, wb, G, reg) of one user's regularised least-squares problem (float64)."""
        cols = np.asarray(cols, dtype=np.int64)
        vals = np.asarray(vals, dtype=np.float64)
        k = self.factors
        if self.feedback == "explicit":
            Y = np.empty((self.n_items, k + 1))
            Y[:, :k] = self.item_factors_
            Y[:, k] = 1.0
            wA = np.ones(len(cols))
            wb = vals - self.global_mean_ - self.item_bias_[cols].astype(np.float64)
            G = np.zeros((k + 1, k + 1))
        else:
            Y = self.item_factors_.astype(np.float64)
            wA = self.alpha * vals
            wb = 1.0 + self.alpha * vals
            G = self._gram_items()
        reg = self._user_ridge(np.array([len(cols)]))[0]
        return Y, wA, wb, G, reg

    def _gram_items(self) -> np.ndarray:
        if self._YtY is None:
            V = self.item_factors_.astype(np.float64)
            self._YtY = V.T @ V
        return self._YtY

    def _solve_user(self, cols, vals) -> np.ndarray:
        Y, wA, wb, G, reg = self._user_system(cols, vals)
        x = np.empty(Y.shape[1])
        if not self._row_gram_solve(cols, wA, wb, Y, G, reg, x):
            raise ValueError("fold_in: the user's system is singular (set regularization > 0)")
        return x

    def _row_gram_solve(self, cols, wA, wb, Y, G, reg, x) -> bool:
        """:func:`~dprec.kernels.als.row_gram_solve` of one user into ``x``, its inputs typed as in the float64
        user step's own calls (read-only int32 columns and float64 arrays): one compiled specialisation serves
        the fold-in and ``solve_rows``."""
        ro = K._ro
        n, k = max(len(cols), 1), Y.shape[1]
        cols = np.asarray(cols, dtype=np.int32 if self.n_items < 2**31 else np.int64)
        Y, G = np.ascontiguousarray(Y, np.float64), np.ascontiguousarray(G, np.float64)
        wA, wb = np.ascontiguousarray(wA, np.float64), np.ascontiguousarray(wb, np.float64)
        reg = np.ascontiguousarray(reg, np.float64)
        return K.row_gram_solve(ro(cols), ro(wA), ro(wb), ro(Y), ro(G), ro(reg), x, np.empty((n, k)), np.empty((n, k)))

    def _reserve_users(self, n_new: int) -> None:
        ft = self.user_factors_.dtype
        self.user_factors_ = np.vstack([self.user_factors_, np.zeros((n_new, self.factors), ft)])
        if self.feedback == "explicit":
            self.user_bias_ = np.concatenate([self.user_bias_, np.zeros(n_new, ft)])

    def _fold_in_rows(self, rows: np.ndarray, X) -> None:
        """Batch fold-in: the item-side system (Y, G) is built once, then one small solve per user."""
        k = self.factors
        Y, _, _, G, _ = self._user_system(np.empty(0, np.int64), np.empty(0))
        for i, row in enumerate(rows):
            s, e = X.indptr[i], X.indptr[i + 1]
            cols, vals = X.indices[s:e].astype(np.int64), X.data[s:e].astype(np.float64)
            if self.feedback == "explicit":
                wA, wb = np.ones(len(cols)), vals - self.global_mean_ - self.item_bias_[cols].astype(np.float64)
            else:
                wA, wb = self.alpha * vals, 1.0 + self.alpha * vals
            reg = self._user_ridge(np.array([len(cols)]))[0]
            x = np.empty(Y.shape[1])
            if not self._row_gram_solve(cols, wA, wb, Y, G, reg, x):
                raise ValueError("fold_in: the user's system is singular (set regularization > 0)")
            self.user_factors_[row] = x[:k]
            if self.feedback == "explicit":
                self.user_bias_[row] = x[k]

    def _fold_in(self, row: int, cols: np.ndarray, vals: np.ndarray) -> None:
        x = self._solve_user(cols, vals)
        k = self.factors
        ft = self.user_factors_.dtype
        if row >= self.user_factors_.shape[0]:
            self.user_factors_ = np.vstack([self.user_factors_, np.zeros((1, k), ft)])
            if self.feedback == "explicit":
                self.user_bias_ = np.append(self.user_bias_, ft.type(0))
        self.user_factors_[row] = x[:k]
        if self.feedback == "explicit":
            self.user_bias_[row] = x[k]

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

    @property
    def explain_exact(self) -> bool:
        """False with ``solver="cg"`` (either feedback): its user vectors are a few warm-started CG steps,
        not the exact solve the decomposition expands, so the baseline (the remainder) also holds the CG error
        (measured on ML-100K, 32 factors: median 0.004, max 0.08, against a median Σ|contribution| of 1.8).
        The shares are then those of the exact solve: their ranks hold, their sum only approximately."""
        return self.solver_ == "cholesky"

    def _explain_baseline_words(self) -> str:
        if self.feedback == "explicit":
            return "the overall average rating and this item's average"
        return "a small numerical remainder of the model's solver"

    # ------------------------------------------------------------------ state
    def _get_state(self) -> dict:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "user_bias": self.user_bias_,
            "item_bias": self.item_bias_,
            "global_mean": np.array([self.global_mean_]),
            "item_counts": self.item_counts_,
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
        self.user_factors_ = np.ascontiguousarray(state["user_factors"])
        self.item_factors_ = np.ascontiguousarray(state["item_factors"])
        self.user_bias_ = np.ascontiguousarray(state.get("user_bias", np.zeros(0, ft)))
        self.item_bias_ = np.ascontiguousarray(state.get("item_bias", np.zeros(0, ft)))
        self.global_mean_ = float(state["global_mean"][0])
        self.item_counts_ = np.ascontiguousarray(state["item_counts"])
        self._YtY = None
