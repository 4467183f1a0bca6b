"""What runs on the Dask workers: building one block of whole users, and the per-block statistics.

Nothing here draws a random number, sees a noise stream, a seed, a ledger or the budget: every function takes
one block of users and public (declared or already released) values, and returns per-block sums that the
client adds up before it adds noise once (:mod:`dprec.distributed._dask`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError
from ..models import _biased_als as E
from ..models.releases import segment_sums

__all__ = ["Block", "EngineBlock", "add", "apply", "build_block", "n_users"]


@dataclass
class Block:
    """One partition after the shuffle: whole users (every rating of a user is in exactly one block).

    ``users`` are the block's raw user ids (sorted; they never leave the worker except in the per-user output
    table), ``X`` the (len(users) × n_items) CSR of their ratings over the declared item catalog.
    """

    users: np.ndarray
    X: sp.csr_matrix


def build_block(
    df: pd.DataFrame, catalog: pd.Index, *, user_col: str, item_col: str, rating_col: str | None, rating_bounds
) -> Block:
    """The block of one shuffled partition: rows → sorted users, items → their index in the public catalog.

    Raises :class:`~dprec.errors.DataError` (without any user's id or rating in the message) on an item
    outside the catalog, a missing id, a rating outside the declared bounds, or a repeated (user, item) pair.
    """
    n_items = len(catalog)
    if len(df) == 0:
        return Block(np.empty(0, dtype=df[user_col].dtype), sp.csr_matrix((0, n_items)))
    if df[user_col].isna().any() or df[item_col].isna().any():
        raise DataError(f"columns {user_col!r} and {item_col!r} must have no missing ids; drop those rows")
    cols = catalog.get_indexer(df[item_col].to_numpy())
    if (cols < 0).any():
        raise DataError(
            f"column {item_col!r} holds an item that is not in the declared public catalog (items=); the "
            "distributed fit needs the whole catalog declared up front"
        )
    r = np.ones(len(df)) if rating_col is None else pd.to_numeric(df[rating_col]).to_numpy(np.float64)
    lo, hi = rating_bounds
    if not (np.isfinite(r).all() and r.min() >= lo and r.max() <= hi):
        raise DataError(f"column {rating_col!r} holds a rating outside the declared rating_bounds=({lo}, {hi})")
    users, rows = np.unique(df[user_col].to_numpy(), return_inverse=True)
    key = rows.astype(np.int64) * n_items + cols
    if len(np.unique(key)) != len(key):
        raise DataError(
            f"repeated ({user_col!r}, {item_col!r}) pairs: the distributed fit needs one rating per pair "
            "(deduplicate upstream, as Interactions.from_pandas(duplicates=...) does)"
        )
    X = sp.csr_matrix((r, (rows, cols)), shape=(len(users), n_items))
    X.sort_indices()
    return Block(users, X)


def apply(fn, block: Block, /, *args, **kwargs):
    """``fn(X_block, ...)``: one block's term of an additive statistic."""
    return fn(block.X, *args, **kwargs)


def add(*parts):
    """The sum of per-block terms (arrays, floats, or tuples of them, element by element), in float64."""
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(add(*(p[i] for p in parts)) for i in range(len(first)))
    out = np.array(first, dtype=np.float64, copy=True)
    for p in parts[1:]:
        out += p
    return out


def n_users(X: sp.csr_matrix) -> np.ndarray:
    """The number of user rows of a block (the client learns only the total, as the local engine does)."""
    return np.array([float(X.shape[0])])


# ---------------------------------------------------------------------------------------------- ε = ∞ biases
def rating_sum_count(X: sp.csr_matrix) -> np.ndarray:
    """``(Σ r, n)``: the global mean's parts (the exact mean of the ε = ∞ global effects)."""
    return np.array([float(X.data.sum()), float(X.nnz)])


def item_residual_sums(X: sp.csr_matrix, mu: float, bias_regularization: float) -> np.ndarray:
    """``(S_j, N_j)`` of :func:`dprec.models.global_effects.nonprivate_biases` on one block (the same formula:
    ``β_u = Σ_j (r_uj − μ)/(n_u + λ_b)``, ``S_j = Σ_u (r_uj − μ − β_u)``, ``N_j`` the counts), stacked."""
    n_u = np.diff(X.indptr)
    offset = segment_sums(X.data - mu, X.indptr) / (n_u + bias_regularization)
    e = X.data - mu - np.repeat(offset, n_u)
    Sj = np.bincount(X.indices, weights=e, minlength=X.shape[1])
    Nj = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    return np.concatenate([Sj, Nj])


# ---------------------------------------------------------------------------------------------- the engine
class EngineBlock:
    """One block's side of :func:`dprec.models._biased_als.run`: its user solver, item-major CSR and weights,
    prepared once per fit where the block lives."""

    def __init__(self, block: Block, d: int, user_reg: float, bias_reg: float, dtype, weights):
        X = block.X
        self.block, self.dtype = block, np.dtype(dtype)
        self.users = E.UserSolver(X, d, user_reg, bias_reg, self.dtype)
        self.Xt, self.item_t = E.item_major(X)
        # exact 1 in any dtype: the user solver's ones, as the local engine (one nnz-sized array fewer, and the
        # item statistics kernel sees the same weight dtype as in a local fit); else the release's own weights
        self.w_t = self.users.ones if weights is None else weights(X)


def make_engine(block: Block, d: int, user_reg: float, bias_reg: float, dtype, weights) -> EngineBlock:
    return EngineBlock(block, d, user_reg, bias_reg, dtype, weights)


def engine_user_solve(eb: EngineBlock, mu: float, V: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``[U, b]`` of the block's users against the released ``(μ, V, c)`` (stays on the worker)."""
    return eb.users(mu, V, c)


def engine_item_stats(eb: EngineBlock, Ub: np.ndarray, mu: float, c: np.ndarray, residual_bound, clip_norm):
    """The block's term of the item statistics ``(A, β)`` (:func:`dprec.models._biased_als.item_statistics`)."""
    return E.item_statistics(
        eb.Xt, eb.item_t, mu, Ub, c, eb.w_t, residual_bound=residual_bound, clip_norm=clip_norm, dtype=eb.dtype
    )


def user_solve_block(block: Block, V, mu, c, user_reg, bias_reg, dtype) -> np.ndarray:
    """``[U, b]`` of the block's users (the serving solve after a fit without iterations)."""
    return E.UserSolver(block.X, V.shape[1], user_reg, bias_reg, dtype)(mu, V, np.asarray(c, np.float64))


def user_table(block: Block, Ub: np.ndarray, user_col: str, has_bias: bool = True) -> pd.DataFrame:
    """The block's per-user output ``(user[, bias], f0 … f{d-1})``, float64 (never gathered by the backend)."""
    d = Ub.shape[1] - 1 if has_bias else Ub.shape[1]
    out = pd.DataFrame({user_col: block.users})
    if has_bias:
        out["bias"] = Ub[:, d].astype(np.float64)
    for j in range(d):
        out[f"f{j}"] = Ub[:, j].astype(np.float64)
    return out


# ---------------------------------------------------------------------------------------------- DP implicit ALS
def sorted_users(*blocks: Block) -> np.ndarray:
    """Every user id, sorted: the local engine's row order (``Interactions`` sorts its users). Worker-side only."""
    return np.sort(np.concatenate([b.users for b in blocks]))


def user_rows(block: Block, all_users: np.ndarray) -> np.ndarray:
    """The rows of the block's users in the sorted order of all users (where the local engine has them)."""
    return np.searchsorted(all_users, block.users)


def take_rows(U: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The block's rows of the data-independent initial user factors."""
    return np.ascontiguousarray(U[rows])


def make_head(block: Block, weights, items, alpha: float, values, dtype):
    """The block's :class:`~dprec.models.dpimplicit.HeadCSR` with its users' contribution weights
    (``weights(X_block)``, a deterministic rule of the user's own row and released counts)."""
    from ..models.dpimplicit import HeadCSR

    w = None if weights is None else weights(block.X)
    return HeadCSR(block.X, w, items, alpha=alpha, values=values, dtype=dtype)


def clip_block(U: np.ndarray, clip_norm: float) -> np.ndarray:
    """``ū = u · min(1, Γ/‖u‖)`` per row (:func:`dprec.models._biased_als.clip_rows`, exact bound)."""
    return E.clip_rows(U, clip_norm, np.empty_like(U))


def gram_block(U: np.ndarray) -> np.ndarray:
    """The block's term ``Σ_u ū ūᵀ`` of the global Gramian (float64)."""
    from ..kernels import als as K

    return K.gram(U)


def head_stats_block(hc, U: np.ndarray):
    """The block's term of the head items' ``(A_j, b_j)``."""
    return hc.stats(U)


def head_stats_gram_block(hc, U: np.ndarray):
    """ε = ∞: the block's terms of ``(A_j, b_j)`` and of ``UᵀU``."""
    from ..kernels import als as K

    A, b = hc.stats(U)
    return A, b, K.gram(U)


def implicit_user_solve_block(block: Block, V: np.ndarray, U_prev, kw: dict) -> np.ndarray:
    """The block's users' implicit solve against the released ``V`` (warm start from ``U_prev`` for CG)."""
    from ..models.dpimplicit import user_solve

    out = None if U_prev is None else U_prev.copy()
    return user_solve(block.X, V, out=out, **kw)
