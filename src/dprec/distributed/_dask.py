"""The Dask backend: user blocks on the workers, noise, ledger and item solves on the client.

See :mod:`dprec.distributed` for the protocol and ``docs/scaling.md`` for what each side sees and trusts.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ConfigError, DataError
from ..models._biased_als import BiasedALSResult
from . import _worker as W

__all__ = ["DaskBackend", "DaskFit", "DaskRatings", "UserBlocks", "check_public"]

#: class names of the objects that must never reach a worker: noise, seeds, budget, ledger, a model (which holds them)
_SECRET_CLASSES = frozenset(
    {"NoiseStreams", "NoiseSource", "Ledger", "Generator", "BitGenerator", "SeedSequence", "Recommender"}
)
#: scatter arrays above this size once (broadcast) instead of embedding them in every task
_SCATTER_BYTES = 100_000


def check_public(obj, _seen=None) -> None:
    """Raise ``RuntimeError`` if ``obj`` (a task's function or arguments) holds a noise stream, a random
    generator or seed, a ledger or a model: what a worker may receive is data-independent or released.

    Walks tuples, lists, dicts, dataclass fields, partials, bound methods' instances and functions' closures.
    """
    _seen = set() if _seen is None else _seen
    if id(obj) in _seen or obj is None or isinstance(obj, (str, bytes, int, float, np.ndarray, np.generic)):
        return
    _seen.add(id(obj))
    names = {c.__name__ for c in type(obj).__mro__}
    if names & _SECRET_CLASSES or type(obj).__module__.startswith("dprec.privacy.ledger"):
        raise RuntimeError(
            f"internal error: a {type(obj).__name__} was about to be sent to a Dask worker; workers never see "
            "noise, seeds, the budget or the ledger. Please report"
        )
    if isinstance(obj, (list, tuple, set, frozenset)):
        for x in obj:
            check_public(x, _seen)
    elif isinstance(obj, dict):
        for x in obj.values():
            check_public(x, _seen)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            check_public(getattr(obj, f.name), _seen)
    elif isinstance(obj, functools.partial):
        check_public((obj.func, obj.args, obj.keywords), _seen)
    elif inspect.ismethod(obj):
        check_public(obj.__self__, _seen)
    elif inspect.isfunction(obj):
        for cell in obj.__closure__ or ():
            check_public(cell.cell_contents, _seen)


class UserBlocks:
    """The rating matrix as it lives on the cluster: one future per block of whole users.

    It stands where a local fit has its CSR matrix ``X``; the engines reach it only through the hooks of
    :mod:`dprec.models._blocks` and :mod:`dprec.models._biased_als`, so a model runs one code path on both.
    Client-side it holds the futures, the public item count and the exact user count (a single number the
    local engine also sees) — never a user id, a rating or a per-user value.
    """

    is_user_blocks = True

    def __init__(self, backend: DaskBackend, blocks: list, n_items: int, user_col: str):
        self.backend, self.blocks, self.n_items, self.user_col = backend, blocks, n_items, user_col
        self.n_users = int(round(float(self.map_sum(W.n_users)[0])))
        #: the final per-user solves of the last fit (futures, one per block; ``[U, b]`` or, implicit, ``U``)
        self.final_users: list | None = None
        self.final_has_bias = True

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    # ------------------------------------------------------------------ additive statistics
    def map_sum(self, fn, /, *args, **kwargs):
        """``Σ_b fn(X_b, *args, **kwargs)``: evaluated where each block lives, summed by a tree on the workers."""
        b = self.backend
        args, kwargs = b._public(args), b._public(kwargs)
        parts = [b._submit(W.apply, fn, blk, *args, **kwargs) for blk in self.blocks]
        return b._tree_sum(parts)

    def global_effects(self, prior_var: float, bias_reg: float):
        """ε = ∞ global effects ``(μ, c⁰, n_j)`` (:func:`dprec.models._biased_als.global_effects`), two passes."""
        s, n = self.map_sum(W.rating_sum_count)
        mu = float(s / n)
        stats = self.map_sum(W.item_residual_sums, mu, bias_reg)
        Sj, Nj = stats[: self.n_items], stats[self.n_items :]
        return mu, Sj / (Nj + 1.0 / prior_var), Nj

    # ------------------------------------------------------------------ the engine
    def user_solve(self, V, mu, item_bias, user_reg, bias_reg, dtype):
        """Every block solves its users against ``(μ, c, V)``; the results stay on the workers."""
        b = self.backend
        Vf, cf = b._public((np.asarray(V), np.asarray(item_bias, np.float64)))
        self.final_has_bias = True
        self.final_users = [
            b._submit(W.user_solve_block, blk, Vf, float(mu), cf, user_reg, bias_reg, np.dtype(dtype))
            for blk in self.blocks
        ]
        d = V.shape[1]
        return np.zeros((0, d), dtype=dtype), np.zeros(0, dtype=dtype)

    def run(self, V, *, mu, item_bias, iterations, user_reg, bias_reg, solve, weights, residual_bound, clip_norm,
            mask, dtype, callback):  # fmt: skip
        """:func:`dprec.models._biased_als.run` on the blocks: user solves and per-block statistics on the workers,
        the tree-summed ``(A, β)`` handed to ``solve`` (noise and item solve) on the client, the released item
        side broadcast back. Returns the item side; the user rows stay on the workers (:attr:`final_users`)."""
        b, dtype, d = self.backend, np.dtype(dtype), V.shape[1]
        if iterations > 0 and solve is None:
            raise ValueError("run: an item solve is required when iterations > 0")
        engines = [b._submit(W.make_engine, blk, d, user_reg, bias_reg, dtype, weights) for blk in self.blocks]
        c = np.asarray(item_bias, dtype=np.float64)
        mu = float(mu)

        def users(V, c):
            Vf, cf = b._public((np.asarray(V), c))
            return [b._submit(W.engine_user_solve, e, mu, Vf, cf) for e in engines], cf

        ub, cf = users(V, c)
        for t in range(iterations):
            parts = [
                b._submit(W.engine_item_stats, e, u, mu, cf, residual_bound, clip_norm) for e, u in zip(engines, ub)
            ]
            A, beta = b._tree_sum(parts)
            Va = solve(A, beta)  # the client: noise (once, after the global sum) and the item solve
            if mask is not None:
                Va[~mask] = 0.0
            V = Va[:, :d]
            c = c + Va[:, d]
            ub, cf = users(V, c)
            if callback is not None:
                callback(t, BiasedALSResult(V, c, np.zeros((0, d), dtype), np.zeros(0, dtype)))
        self.final_users, self.final_has_bias = ub, True
        return BiasedALSResult(V, c, np.zeros((0, d), dtype), np.zeros(0, dtype))

    # ------------------------------------------------------------------ DP implicit ALS
    def implicit_user_solve(self, V, *, alpha, regularization, values, solver, cg_steps, dtype):
        """:func:`dprec.models.dpimplicit.user_solve` on every block; the results stay on the workers."""
        b = self.backend
        kw = dict(alpha=alpha, regularization=regularization, values=values, solver=solver, cg_steps=cg_steps)
        kw["dtype"] = dtype
        Vf = b._public(np.asarray(V))
        self.final_users = [b._submit(W.implicit_user_solve_block, blk, Vf, None, kw) for blk in self.blocks]
        self.final_has_bias = False
        return np.zeros((0, V.shape[1]), dtype=V.dtype if dtype is None else dtype)

    def implicit_iterate(self, model, U, V, items, counts, p, plan, gram_rel, stats_rel):
        """:meth:`dprec.models.dpimplicit.DPImplicitALS._iterate` on the blocks: clipping, the Gramian's and the
        head statistics' terms and the user solves on the workers; the model's own releases, PSD projection and
        noisy solve on the client. ``U`` is the data-independent start (rows in sorted user order, as locally).
        Returns ``(V, U)`` with ``U`` empty (the users' rows stay on the workers)."""
        from ..kernels import als as K
        from ..kernels.psd import psd_project
        from ..models.releases import ImplicitGramian, implicit_weights

        b, ft, d = self.backend, U.dtype, U.shape[1]
        lam = float(model.regularization)
        all_users = b._submit(W.sorted_users, *self.blocks)  # worker-side: the client never holds the ids
        Uf = b._public(U)
        ub = [b._submit(W.take_rows, Uf, b._submit(W.user_rows, blk, all_users)) for blk in self.blocks]
        items_f = b._public(np.asarray(items))
        if model.private:
            weights = functools.partial(
                implicit_weights, k=model._k(), method=model.bounding, counts=counts, power=model.adaptive_power
            )
            hcs = [b._submit(W.make_head, blk, weights, items_f, model.alpha, p, np.float64) for blk in self.blocks]
            gstep, sstep = plan[gram_rel.name], plan[stats_rel.name]
            reg, floor = model._item_ridge(counts[items], sstep.sigma, d)
            iu = np.triu_indices(d)
            noise_bufs = model._noise_buffers(len(items), d)
        else:
            hcs = [b._submit(W.make_head, blk, None, items_f, model.alpha, p, ft) for blk in self.blocks]
            reg = np.full((len(items), d), lam)
        Vh = np.empty((len(items), d), dtype=ft)
        user_kw = dict(alpha=model.alpha, regularization=lam, values=p, solver=model.solver, cg_steps=model.cg_steps)
        for t in range(model.iterations_):
            if model.private:
                ucs = [b._submit(W.clip_block, u, model.clip_norm) for u in ub]
                Gv = model._release(
                    gram_rel, b._tree_sum([b._submit(W.gram_block, u) for u in ucs])[iu], gstep, index=t
                )
                G = psd_project(ImplicitGramian.unpack(Gv, d))
                A, bb = b._tree_sum([b._submit(W.head_stats_block, hc, u) for hc, u in zip(hcs, ucs)])
                # as the local loop: G̃ and the ridge go in with the solve (before the projection)
                Vh[:] = model._noisy_item_solve(A, bb, G, reg, floor, stats_rel, sstep, t, noise_bufs)
            else:
                A, bb, UtU = b._tree_sum([b._submit(W.head_stats_gram_block, hc, u) for hc, u in zip(hcs, ub)])
                Vh, _ = K.solve_batched(A, bb, reg, UtU, out=Vh)
            V[items] = Vh
            Vf = b._public(V.copy())
            ub = [b._submit(W.implicit_user_solve_block, blk, Vf, u, user_kw) for blk, u in zip(self.blocks, ub)]
        self.final_users, self.final_has_bias = ub, False
        return V, np.zeros((0, d), dtype=ft)


@dataclasses.dataclass
class DaskRatings:
    """A (user, item, rating) table on the cluster with its declared public facts — what a distributed fit takes.

    Build it with :meth:`DaskBackend.ratings`. The attributes a model's fit reads are those of
    :class:`dprec.data.Interactions` that a client may know: the public item catalog (``item_ids``,
    ``n_items``, ``public_items`` = True), ``rating_bounds``, ``dataset_id`` and the exact user count.
    """

    matrix: UserBlocks
    item_ids: np.ndarray
    rating_bounds: tuple[float, float] | None
    dataset_id: str
    public_items: bool = True

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return self.matrix.n_users


@dataclasses.dataclass
class DaskFit:
    """A distributed fit: the client-side ``model`` (the released item side; it knows no user and serves users
    through ``fold_in``) and the per-user solves, which stay on the cluster."""

    model: object
    ratings: DaskRatings
    _users: list
    _user_col: str
    _has_bias: bool = True

    def user_factors(self):
        """Every user's ``(user, bias, f0 …)`` as a Dask DataFrame (one partition per block; not computed)."""
        dd = _dask_dataframe()
        if self._users is None:
            raise ValueError("this fit solved no user factors (iterations=0): users are served by fold_in only")
        b = self.ratings.matrix.backend
        parts = [
            b._submit(W.user_table, blk, u, self._user_col, self._has_bias)
            for blk, u in zip(self.ratings.matrix.blocks, self._users)
        ]
        return dd.from_delayed(parts, verify_meta=False)


class DaskBackend:
    """Run ``ALS(feedback="explicit")``, ``DPALS`` and ``DPImplicitALS`` fits on a ``dask.distributed`` cluster.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster. The process that holds it is the *client* of the privacy protocol: it
        charges the ledger, draws all noise and solves the item side; the workers hold the ratings.
    npartitions : int, optional
        Number of user blocks after the shuffle (default: the input's partitions).
    fan_in : int
        Per-block terms summed per task of the tree reduction (default 8).
    """

    def __init__(self, client, *, npartitions: int | None = None, fan_in: int = 8):
        if fan_in < 2:
            raise ConfigError(f"fan_in must be at least 2, got {fan_in}")
        self.client, self.npartitions, self.fan_in = client, npartitions, int(fan_in)

    # ------------------------------------------------------------------ task plumbing (one choke point)
    def _submit(self, fn, *args, **kwargs):
        check_public((fn, args, kwargs))
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def _public(self, obj):
        """``obj`` with large arrays scattered once to every worker (futures in their place), checked first."""
        check_public(obj)
        if isinstance(obj, np.ndarray) and obj.nbytes > _SCATTER_BYTES:
            return self.client.scatter(obj, broadcast=True, hash=False)
        if isinstance(obj, tuple):
            return tuple(self._public(x) for x in obj)
        if isinstance(obj, dict):
            return {k: self._public(v) for k, v in obj.items()}
        return obj

    def _tree_sum(self, parts: list):
        while len(parts) > 1:
            parts = [self._submit(W.add, *parts[i : i + self.fan_in]) for i in range(0, len(parts), self.fan_in)]
        return parts[0].result()

    # ------------------------------------------------------------------ input
    def ratings(
        self,
        source,
        *,
        items: Sequence,
        rating_bounds: tuple[float, float],
        dataset_id: str,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str | None = "rating",
    ) -> DaskRatings:
        """Shuffle a partitioned Parquet dataset (a path) or a Dask DataFrame into blocks of whole users.

        Parameters
        ----------
        source : str, os.PathLike or dask.dataframe.DataFrame
            The (user, item, rating) table; it is read and shuffled by user on the workers (one shuffle) and
            never collected into one process.
        items : sequence of raw item ids
            The declared public item catalog (its order is the model's item order). Every item must be in it.
        rating_bounds : (lo, hi)
            The declared public bounds of the rating scale.
        dataset_id : str
            The dataset's identity for the privacy ledger (declared: a fingerprint would need every rating).
        user_col, item_col, rating_col : str
            Column names (``rating_col=None``: every row is a 1).
        """
        dd = _dask_dataframe()

        if not isinstance(dataset_id, str) or not dataset_id:
            raise ConfigError("dataset_id must be a non-empty string: the ledger's name for this dataset")
        lo, hi = _bounds(rating_bounds)
        catalog = pd.Index(np.asarray(items))
        if len(catalog) == 0 or not catalog.is_unique:
            raise ConfigError("items must be a non-empty sequence of distinct item ids (the public catalog)")
        cols = [c for c in (user_col, item_col, rating_col) if c is not None]
        if isinstance(source, (str, os.PathLike)):
            ddf = dd.read_parquet(os.fspath(source), columns=cols)
        elif isinstance(source, dd.DataFrame):
            missing = [c for c in cols if c not in source.columns]
            if missing:
                raise DataError(f"column(s) {missing} not found; the table has {list(source.columns)}")
            ddf = source[cols]
        else:
            raise TypeError(f"source must be a Parquet path or a dask DataFrame, got {type(source).__name__}")
        # the one shuffle: every rating of a user lands in the same partition (the per-user bound needs it)
        ddf = ddf.shuffle(on=user_col, npartitions=self.npartitions or ddf.npartitions)
        build = dict(user_col=user_col, item_col=item_col, rating_col=rating_col, rating_bounds=(lo, hi))
        check_public(build)
        cat = self.client.scatter(catalog, broadcast=True, hash=False)
        parts = self.client.compute(ddf.to_delayed())
        blocks = [self._submit(W.build_block, p, cat, **build) for p in parts]
        um = UserBlocks(self, blocks, len(catalog), user_col)
        return DaskRatings(um, catalog.to_numpy(), (lo, hi), dataset_id)

    # ------------------------------------------------------------------ fit
    def fit(self, model, data: DaskRatings, **kwargs) -> DaskFit:
        """Fit ``model`` (``ALS(feedback="explicit")``, ``DPALS`` or ``DPImplicitALS``) on ``data``; ``kwargs`` go to
        its fit (``ledger=`` for the DP models: charged here, on the client, before any noise)."""
        from ..models import ALS, DPALS, DPImplicitALS

        if not isinstance(data, DaskRatings):
            raise TypeError(f"data must come from DaskBackend.ratings(...), got {type(data).__name__}")
        if type(model) not in (ALS, DPALS, DPImplicitALS):  # subclasses (DPSGD) fit by other kernels
            raise ConfigError(f"the Dask backend runs ALS, DPALS and DPImplicitALS, not {type(model).__name__}")
        if isinstance(model, ALS):
            if model.feedback != "explicit":
                raise ConfigError('the Dask backend runs ALS(feedback="explicit") only')
            if kwargs.get("track_loss"):
                raise ConfigError("track_loss=True needs the ratings in one process; not on the Dask backend")
            if model.solver_ == "cg":
                raise ConfigError(
                    'the Dask backend runs explicit ALS with the exact solves only: use ALS(solver="cholesky")'
                )
        elif isinstance(model, DPALS):
            if model.contribution != "weight":
                raise ConfigError(
                    'the Dask backend bounds contributions by weighting only (contribution="weight"): '
                    "sampling would need a random stream on the workers, and workers never see one"
                )
        elif isinstance(model, DPImplicitALS):
            if model.private and model.bounding != "adaptive":
                raise ConfigError(
                    'the Dask backend bounds DP implicit ALS contributions with bounding="adaptive" only: '
                    f'bounding="{model.bounding}" samples, which would need a random stream on the workers, and '
                    "workers never see one"
                )
        else:
            raise ConfigError(f"the Dask backend runs ALS, DPALS and DPImplicitALS, not {type(model).__name__}")
        model._check_fit_data(data)
        # the bookkeeping of Recommender.fit, without the user list: the client model knows no user
        model._user_ids = np.asarray(data.item_ids[:0])
        model._item_ids = data.item_ids.copy()
        model._user_index_cache = model._item_index_cache = None
        model.rating_bounds_ = data.rating_bounds
        model._seen = sp.csr_matrix((0, data.n_items))
        data.matrix.final_users = None  # the blocks are reused across fits: no user rows of an earlier fit
        with model._thread_limits():
            model._fit(data, **kwargs)
        model._fitted = True
        m = data.matrix
        return DaskFit(model, data, m.final_users, m.user_col, m.final_has_bias)


def _dask_dataframe():
    try:
        import dask.dataframe as dd
    except ImportError as exc:
        raise ImportError(f'the Dask backend needs dask: pip install "dprec[dask]" ({exc})') from None
    return dd


def _bounds(rating_bounds) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in rating_bounds)
    except (TypeError, ValueError):
        raise ConfigError(f"rating_bounds must be a pair (lo, hi), got {rating_bounds!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"rating_bounds must be finite with lo < hi, got {rating_bounds!r}")
    return lo, hi
