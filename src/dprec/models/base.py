"""The protocol every dprec model follows, and the machinery they share.

A model is a thin Python class over fast kernels, registered by name (:func:`dprec.models.registry.register_model`)
with a frozen pydantic config class (``Config``, :mod:`dprec.models.config`). The base class owns what is
common: the parameters (``Model(**params)`` validates them through ``Config``; each parameter is an attribute;
:meth:`Recommender.get_params` is the config's dump), raw↔inner id mapping, seen-item filtering, top-k
selection, the unknown-user fallback, fold-in bookkeeping, thread control, and saving/loading
(:mod:`dprec.models.io`). A subclass implements a handful of ``_private`` hooks over inner ids:

``_fit(data)``                         learn from an :class:`~dprec.data.Interactions`
``_scores(rows)``                      dense scores, shape ``(len(rows), n_items)``
``_predict(rows, cols)``               element-wise scores; ``rows == -1`` marks an unknown user
``_fallback_scores()``                 item scores for users the model does not know (popularity-like)
``_dot_scores()``                      optional: ``_scores`` as factor dot products (:class:`DotScores`), served
                                       without dense scores
``_fold_in(row, cols, values)``        a user's state from the user's own ratings only
``_explain(row, col)``                 per-rated-item contributions to one score
``_item_vectors()``                    item embeddings for :meth:`similar_items` (or ``None``)
``_get_state()`` / ``_set_state(d)``   arrays to save / restore
``_drop_users(keep, n_before)``        keep only rows ``keep`` of per-user state (:meth:`Recommender.forget`)

Fitted attributes end in ``_`` and are declared (as ``None``) in the model's ``__init__``.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings

import numpy as np
import scipy.sparse as sp

from ..data import Interactions, _coerce_user_ids, _key, as_interactions, lookup
from ..errors import (
    ConfigError,
    CorruptFileError,
    DataError,
    DataWarning,
    IgnoredParameterWarning,
    NotFittedError,
    RankingWarning,
    UnknownIdError,
)
from . import registry as _registry
from .config import ModelConfig, validate_config
from .io import (
    FORMAT_VERSION,
    dprec_version,
    ids_for_npz,
    ids_from_npz,
    read_npz_with_manifest,
    write_npz_with_manifest,
)

__all__ = ["DotScores", "Recommender", "load_model", "topk_rows"]


def deprecated_alias(new: str, old: str):
    """A read-only property ``old`` that returns attribute ``new`` with a DeprecationWarning (one release)."""

    def get(self):
        warnings.warn(f"{type(self).__name__}.{old} is deprecated; use .{new}", DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return property(get, doc=f"Deprecated alias of :attr:`{new}`.")


class _RatingsUnlessImplicit:
    """Default ``predicts_ratings``: True on a class; on an instance, False when its ``feedback`` is "implicit"."""

    def __get__(self, obj, owner=None):
        return True if obj is None else obj.feedback != "implicit"


def _append_id(ids: np.ndarray, new) -> np.ndarray:
    """``ids`` with one more raw id, in the vocabulary's own kind (never silently mixing ints and strings)."""
    from ..data import _id_kinds

    kind = "int" if ids.dtype.kind in "iu" else "str" if ids.dtype.kind == "U" else None
    new_kind = _id_kinds([new]).pop()
    if kind is not None and len(ids) and new_kind != kind:
        raise DataError(
            f"fold_in: user={new!r} is a {new_kind} id but the model's user ids are {kind}s; "
            f"pass an {kind} id{' (or leave user=None for the next integer)' if kind == 'int' else ''}"
        )
    if kind == "int":
        info = np.iinfo(ids.dtype)
        if not info.min <= int(new) <= info.max:
            return np.append(ids.astype(object), np.asarray([int(new)], dtype=object))
        return np.append(ids, np.asarray([new], dtype=ids.dtype))
    return np.append(ids, [new])


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside the dprec package (the caller's line),
    whatever the depth of constructors in between."""
    import os
    import sys

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1  # the function that calls warnings.warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _signature(config_cls) -> inspect.Signature:
    """The keyword-only constructor signature of a config class (for help() and introspection)."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    for name, field in config_cls.model_fields.items():
        default = inspect.Parameter.empty if field.is_required() else field.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
    return inspect.Signature(params)


def config_from_file(cls, params: dict, path) -> ModelConfig:
    """A model file's ``params`` validated through ``cls.Config`` (deprecated names mapped silently);
    CorruptFileError with the ConfigError message when this dprec refuses them."""
    if not isinstance(params, dict):
        raise CorruptFileError(f"{path}: the manifest's params are not a mapping")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return validate_config(cls.Config, params)
    except ConfigError as exc:
        raise CorruptFileError(
            f"{path}: the saved {cls.__name__} parameters are not accepted by this dprec version "
            f"({exc}); refit the model"
        ) from None


def topk_rows(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``n`` largest entries of each row, best first.

    One rule for a single row and for batches: order by score descending, ties broken by the smaller item
    index — also at the cut-off, so the kept set is exactly the first ``n`` items of
    ``sorted(range(m), key=lambda j: (-s[j], j))``. ``-inf`` entries rank last (rows with fewer than ``n``
    finite entries end in ``-inf`` scores, lower indices first). Vectorised: ``argpartition`` for the
    candidate set, a repair only of rows with ties straddling the cut-off, then a stable sort of the ``n``.
    """
    scores = np.atleast_2d(scores)
    m, N = scores.shape
    n = min(n, N)
    if n <= 0:
        return np.empty((m, 0), np.int64), np.empty((m, 0), dtype=scores.dtype)
    if n < N:
        part = np.argpartition(scores, N - n, axis=1)[:, N - n :]  # the n largest, up to ties at the cut-off
        v = np.take_along_axis(scores, part[:, :1], axis=1)  # the cut-off value (n-th largest) of each row
        ge = scores >= v
        count = ge.sum(axis=1)
        fix = np.flatnonzero(count > n)  # rows where more than n entries reach the cut-off (tied at it)
        if fix.size:
            # the entries ≥ cut-off of those rows, row by row in index order: keep every one above the cut-off
            # and the first (smallest-index) tied ones up to n per row
            rr, cc = np.nonzero(ge[fix])
            tie = scores[fix[rr], cc] == v[fix[rr], 0]
            start = np.concatenate(([0], np.cumsum(count[fix])[:-1]))  # each row's first entry in rr, cc
            cs = np.cumsum(tie)
            rank = cs - (cs[start] - tie[start])[rr]  # 1-based rank of a tied entry within its row
            need = n - (count[fix] - np.add.reduceat(tie, start))  # tied entries kept: n minus those above
            keep = ~tie | (rank <= need[rr])
            part[fix] = cc[keep].reshape(len(fix), n)
        part.sort(axis=1)
    else:
        part = np.broadcast_to(np.arange(N), (m, N)).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    # best first, ties by smaller index: a stable ascending sort of the columns reversed (indices descending),
    # read backwards (no negation, so any dtype works)
    order = (n - 1) - np.argsort(vals[:, ::-1], axis=1, kind="stable")[:, ::-1]
    return np.take_along_axis(part, order, axis=1).astype(np.int64), np.take_along_axis(vals, order, axis=1)


def _int32_csr(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` with int32 ``indptr`` / ``indices`` (scipy's default) when they fit, else unchanged (int64)."""
    if m.nnz >= 2**31 or max(m.shape) >= 2**31:
        return m
    m = m.copy()
    m.indptr, m.indices = m.indptr.astype(np.int32), m.indices.astype(np.int32)
    return m


#: users per call of the factor kernel (it scores 16 rows at a time per thread; the block bounds the copies)
_DOT_BLOCK = 8192
#: users per dense ``_scores`` batch of the other models (a float64 block × n_items)
_DENSE_BLOCK = 1024


class DotScores:
    """The factor form of a model's scores, which :meth:`Recommender.recommend` serves without dense float64 scores.

    ``t_uj = (μ + b_u + c_j) + u·v_j`` (with ``biases``; else ``t_uj = u·v_j``), or, with a popularity weight
    ``β > 0``, ``t_uj = (1 − β)·u·v_j / max_l |u·v_l| + β·p_j``; items outside ``item_mask`` are never
    recommended. The float64 value is the model's ``_scores``; selection is exact on it (float32 ``sgemm``
    only filters, :mod:`dprec.kernels.topk`), and the returned scores are these float64 values.

    Build it with :meth:`of` from a model's fitted attributes (``user_factors_``, ``item_factors_``,
    ``global_mean_``, ``user_bias_``, ``item_bias_``, the DP item mask).
    """

    def __init__(
        self, U, V, *, global_mean=0.0, user_bias=None, item_bias=None, item_mask=None, beta=0.0, popularity=None
    ):
        # C-contiguous item factors (a copy only of a strided view): the factor kernel compiles for one layout
        self.U, self.V = U, np.ascontiguousarray(V)
        self.global_mean, self.user_bias = float(global_mean), user_bias
        self.item_mask, self.beta = item_mask, float(beta)
        if self.beta > 0:
            self.item_off = self.beta * np.asarray(popularity, np.float64)
        elif item_bias is not None:
            self.item_off = np.asarray(item_bias).astype(np.float64)
        else:
            self.item_off = np.zeros(V.shape[0])

    @classmethod
    def of(cls, model, *, biases: bool, popularity_weight: float = 0.0, popularity=None) -> DotScores | None:
        """From ``model``'s fitted attributes; ``None`` when it has no user factors."""
        U, V = model.user_factors_, model.item_factors_
        if U is None or V is None or U.ndim != 2 or V.ndim != 2:
            return None
        bias = {}
        if biases:
            bias = {"global_mean": model.global_mean_, "user_bias": model.user_bias_, "item_bias": model.item_bias_}
        return cls(
            U,
            V,
            **bias,
            item_mask=getattr(model, "_item_mask", None),
            beta=popularity_weight,
            popularity=popularity,
        )

    def topk(self, rows, allowed, seen_indptr, seen_indices, seen_rows, n, out_idx, out_val) -> None:
        """Top ``n`` of users ``rows`` (one block) into ``out_idx`` / ``out_val`` (see :func:`topk_factors`)."""
        from ..kernels.topk import topk_factors

        V = self.V
        k = V.shape[1]
        if self.item_mask is not None:
            allowed = allowed & self.item_mask
        V32 = np.ascontiguousarray(V, dtype=np.float32)  # no copy of float32 factors
        Ub = np.ascontiguousarray(self.U[rows])
        Ub32 = np.ascontiguousarray(Ub, dtype=np.float32)
        vmax = float(np.sqrt(np.max(np.einsum("ij,ij->i", V, V, dtype=np.float64)))) if V.size else 0.0
        unorm = np.sqrt(np.einsum("ij,ij->i", Ub, Ub, dtype=np.float64))
        cmax = float(np.max(np.abs(self.item_off))) if len(self.item_off) else 0.0
        # |float32 − float64| of the dot (factor casts, k-term sum, output rounding): (k + 4)·2⁻²⁴·‖u‖‖v‖, ×2
        dot = 2.0 * (k + 4) * 2.0**-24 * unorm * vmax
        if self.beta > 0:
            row_off, err, norm_err = np.zeros(len(rows)), dot, 2.0**-21 * (1.0 + cmax)
        else:
            row_off = np.full(len(rows), self.global_mean)
            if self.user_bias is not None:
                row_off = self.global_mean + self.user_bias[rows].astype(np.float64)
            # + the float32 offsets and sum, and the float64 rounding of adding o_u (ranked on, not filtered on)
            err = 2.0 * (k + 8) * 2.0**-24 * (unorm * vmax + cmax) + 2.0**-50 * (np.abs(row_off) + cmax + unorm * vmax)
            norm_err = 0.0
        c32 = self.item_off.astype(np.float32)
        topk_factors(
            Ub32, V32, Ub, V, row_off, self.item_off, c32, allowed, seen_indptr, seen_indices,
            np.asarray(seen_rows, np.int64), err, norm_err, n, self.beta > 0, self.beta, out_idx, out_val,
        )  # fmt: skip


class Recommender:
    """Base class of dprec models (see module docstring for the hooks a subclass implements)."""

    #: True for models whose released item side is differentially private.
    is_private: bool = False
    #: False for ranking-only models (``evaluate`` reports RMSE as NaN); by default True unless the instance's
    #: ``feedback`` is "implicit" (as for ``ALS(feedback="implicit")``).
    predicts_ratings = _RatingsUnlessImplicit()
    #: which data the model is meant for: "explicit", "implicit" or "any".
    feedback: str = "any"
    #: the frozen configuration class of the model's parameters
    Config: type[ModelConfig] = ModelConfig
    #: for models that rank worse than DP popularity on the committed top-N benchmarks: the advice that
    #: ``recommend()`` gives (a :class:`~dprec.errors.RankingWarning`, once per calling line); empty for models that rank well
    ranking_advice: str = ""
    #: whether the fit runs threaded (numba) kernels; when False an explicit ``num_threads`` warns that it is ignored
    uses_threads: bool = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "Config" in cls.__dict__:  # the constructor's signature is the config's fields (keyword-only)
            init = cls.__dict__.get("__init__")
            if init is None:

                def init(self, **params):
                    super(cls, self).__init__(**params)

                init.__qualname__ = f"{cls.__name__}.__init__"
                cls.__init__ = init
            init.__signature__ = _signature(cls.Config)

    def __init__(self, **params):
        config = validate_config(self.Config, params)
        object.__setattr__(self, "config", config)
        self.__dict__.update(dict(config))  # sklearn style: each parameter is an attribute
        self._warn_ignored_parameters()
        self._fitted = False
        self._user_ids = self._item_ids = None
        self._user_index_cache = self._item_index_cache = None
        self._seen = None
        # erasure: the note saved with the model, and (in memory only, never saved) the ids forgotten here
        self._erasure = None
        self._forgotten: set = set()
        #: the public rating bounds of the training data (None for implicit data without bounds)
        self.rating_bounds_ = None

    def __setattr__(self, name, value):
        fields = type(self).Config.model_fields
        if name in fields:  # setting a parameter re-validates the whole config
            config = validate_config(self.Config, {**dict(self.config), name: value})
            object.__setattr__(self, "config", config)
            self.__dict__.update(dict(config))
            return
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ params
    def _ignored_parameters(self) -> dict[str, str]:
        """Parameter name → why this configured model ignores it (a subclass adds its own, e.g. ALS's ``alpha``
        with ``feedback="explicit"``). An ignored parameter set to a non-default value warns."""
        if self.uses_threads:
            return {}
        return {"num_threads": f"{type(self).__name__} runs no threaded kernel, so num_threads has no effect"}

    def _warn_ignored_parameters(self) -> None:
        fields = type(self).Config.model_fields
        for name, why in self._ignored_parameters().items():
            if name in fields and getattr(self.config, name) != fields[name].default:
                warnings.warn(
                    f"{name}={getattr(self.config, name)!r} is ignored: {why}; drop it",
                    IgnoredParameterWarning,
                    stacklevel=_caller_stacklevel(),
                )

    def get_params(self) -> dict:
        """The parameters as JSON-able values (``rng`` as an int seed or None): the config's dump."""
        return self.config.model_dump()

    def _manifest_params(self) -> dict:
        """:meth:`get_params` as written to files (DP models leave out ``rng``: a noise seed is never written)."""
        return self.get_params()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    @property
    def is_fitted(self) -> bool:
        """Whether the model was fitted (or loaded)."""
        return self._fitted

    rating_bounds = deprecated_alias("rating_bounds_", "rating_bounds")

    # ------------------------------------------------------------------ fit
    def fit(self, data, *, user_axis=None, rating_bounds=None, **kwargs) -> Recommender:
        """Learn from a user×item :class:`~dprec.data.Interactions`, or a raw scipy.sparse matrix.

        Parameters
        ----------
        data : Interactions or matrix
            A raw matrix is wrapped with ids ``0..n-1``.
        user_axis : {0, 1}, optional
            For a raw matrix: 0 when rows are users (user×item), 1 when columns are (item×user, transposed
            here). **Required for DP models** given a raw matrix: the user axis is the privacy unit.
        rating_bounds : (lo, hi), optional
            For a raw matrix: the public bounds of the rating scale (an Interactions carries its own).
        **kwargs
            Passed to the model's fit (DP models: ``ledger=``).
        """
        if rating_bounds is not None and not sp.issparse(data):
            raise DataError(
                "rating_bounds= applies to a raw matrix; an Interactions declares its own "
                "(Interactions.from_pandas(df, rating_bounds=(lo, hi)))"
            )
        data = as_interactions(
            data,
            rating_bounds=rating_bounds,
            what=f"{type(self).__name__}.fit data",
            user_axis=user_axis,
            require_user_axis=self.is_private,
            warn_transposed=True,
        )
        self._check_fit_data(data)
        self._warn_fit_data(data)
        self._user_ids = data.user_ids.copy()
        self._item_ids = data.item_ids.copy()
        self._user_index_cache = None
        self._item_index_cache = None
        self.rating_bounds_ = data.rating_bounds
        self._seen = None
        with self._thread_limits():
            self._fit(data, **kwargs)
        # Each user's own history is kept only to serve that user (filter seen items, explain, fold-in); copied
        # after the fit so that the copy (12 bytes per rating) is not live beside the fit's own temporaries.
        self._seen = data.matrix.copy()
        self._fitted = True
        return self

    def _check_fit_data(self, data: Interactions) -> None:
        """Subclasses add model-specific checks (e.g. DP models need rating bounds)."""

    def _warn_fit_data(self, data: Interactions) -> None:
        """Refuse or warn on data that would fit without error but give a meaningless model.

        A rating model (``predicts_ratings`` and ``feedback == "explicit"``) on data whose stored values are
        all equal (implicit feedback, e.g. ``rating_col=None``) has nothing to learn and would report RMSE 0:
        refused. Every user having exactly one rating warns (no per-user preference is learnable; often a
        wrong ``user_col`` or a transposed matrix).
        """
        values = data.matrix.data
        if self.predicts_ratings and self.feedback == "explicit" and values.size and values.min() == values.max():
            raise DataError(
                f"{type(self).__name__} predicts ratings, but every stored value of the training data is "
                f"{values[0]:g}: this is implicit (interaction-only) data, e.g. built with rating_col=None, and a "
                "rating model would learn the constant and report RMSE 0. Use a ranking model for it "
                '(DPItemItem, DPPopularity, ALS(feedback="implicit")), or pass the rating column'
            )
        if (
            self.predicts_ratings
            and self.feedback == "explicit"
            and data.rating_bounds is None
            and values.size
            and np.isin(values, (0.0, 1.0)).all()
        ):
            warnings.warn(
                f"{type(self).__name__} predicts ratings, but the training values are only 0 and 1 and no "
                "rating_bounds were declared: this looks like binary implicit feedback, on which RMSE is not "
                "meaningful. For clicks/purchases use a ranking model (DPItemItem, DPPopularity, "
                'ALS(feedback="implicit")); for like/dislike ratings declare rating_bounds=(0, 1)',
                DataWarning,
                stacklevel=3,
            )
        counts = np.diff(data.matrix.indptr)
        if data.n_users > 1 and counts.size and counts.min() == 1 and counts.max() == 1:
            warnings.warn(
                f"every one of the {data.n_users} users has exactly one rating: nothing user-specific can be "
                "learned, and a per-user split leaves each user with nothing. Check that rows are users "
                "(user_col=, or the matrix orientation)",
                DataWarning,
                stacklevel=3,
            )

    @contextlib.contextmanager
    def _thread_limits(self):
        """Run numba kernels on ``num_threads`` cores and keep BLAS single-threaded meanwhile.

        Both pools at full width would oversubscribe the cores (numba prange × BLAS threads).
        """
        import numba

        from .._threads import single_threaded_blas

        n = self.num_threads or numba.config.NUMBA_NUM_THREADS
        n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
        old = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            with single_threaded_blas():
                yield n
        finally:
            numba.set_num_threads(old)

    def _require_fitted(self):
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit(data) first")

    # ------------------------------------------------------------------ ids
    @property
    def user_ids(self) -> np.ndarray:
        self._require_fitted()
        return self._user_ids

    @property
    def item_ids(self) -> np.ndarray:
        self._require_fitted()
        return self._item_ids

    @property
    def n_items(self) -> int:
        return len(self._item_ids)

    def _user_index(self) -> dict:
        if self._user_index_cache is None:
            self._user_index_cache = {_key(u): i for i, u in enumerate(self._user_ids.tolist())}
        return self._user_index_cache

    def _item_index(self) -> dict:
        if self._item_index_cache is None:
            self._item_index_cache = {_key(v): i for i, v in enumerate(self._item_ids.tolist())}
        return self._item_index_cache

    def _rows(self, users, *, missing="minus1") -> np.ndarray:
        return lookup(self._user_index(), users, what="user", missing=missing)

    def _cols(self, items) -> np.ndarray:
        return lookup(self._item_index(), items, what="item", missing="raise")

    # ------------------------------------------------------------------ serving
    def predict(self, users, items) -> np.ndarray:
        """Scores of (user, item) pairs, element-wise over two equal-length sequences of raw ids.

        Explicit models predict ratings; implicit ones a preference score. Unknown users get the model's
        fallback (item-only) score; unknown items raise :class:`~dprec.errors.UnknownIdError`.
        """
        self._require_fitted()
        users_a, items_a = (
            np.atleast_1d(np.asarray(users, dtype=object)),
            np.atleast_1d(np.asarray(items, dtype=object)),
        )
        if users_a.shape != items_a.shape:
            raise ValueError(f"users and items must have the same length, got {users_a.shape} and {items_a.shape}")
        rows = self._rows(users_a)
        self._refuse_forgotten(users_a, rows)
        cols = self._cols(items_a)
        out = np.asarray(self._predict(rows, cols), dtype=np.float64)
        return out[0] if np.ndim(users) == 0 and np.ndim(items) == 0 else out

    def recommend(self, user, n: int = 10, *, filter_seen: bool = True, items=None):
        """Top-``n`` items for a user (1-D results) or a batch of users (2-D results).

        Parameters
        ----------
        user : raw user id or sequence of them
            Unknown users get the fallback ranking (popularity; DP models use their DP-released statistics).
        n : int
            Number of items to return.
        filter_seen : bool
            Exclude items the user rated in the training data (or supplied through :meth:`fold_in`).
        items : sequence of raw item ids, optional
            Rank only these candidate items.

        Returns
        -------
        (item_ids, scores) : numpy arrays of raw item ids and scores, best first. A batch row with fewer than
        ``n`` candidates is padded with score ``-inf`` and id ``-1`` (``None`` for non-integer ids). Scores
        are float64, the model's ``_scores`` values: factor models (:class:`DotScores`) recompute the kept
        items in float64 from the stored factors, so they equal ``_scores`` up to the float64 summation order
        of the dot product (~1e-16 relative), and the ranking is exact on them (float32 only filters).
        Items with a non-finite score are never recommended.
        """
        self._require_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if self.ranking_advice:  # shown once per calling line (the default warning filter)
            warnings.warn(self.ranking_advice, RankingWarning, stacklevel=2)
        single = np.ndim(user) == 0
        users = np.atleast_1d(np.asarray(user, dtype=object))
        rows = self._rows(users)
        self._refuse_forgotten(users, rows)
        allowed = np.full(self.n_items, items is None)
        if items is not None:
            allowed[self._cols(items)] = True
        idx, val = self._topk(rows, min(n, self.n_items), allowed, filter_seen)
        ids = self._item_ids[idx]
        if single:
            keep = np.isfinite(val[0])
            return ids[0][keep], val[0][keep]
        pad = ~np.isfinite(val)
        if pad.any():
            ids = ids.astype(object) if ids.dtype.kind not in "iu" else ids.copy()
            ids[pad] = -1 if ids.dtype.kind in "iu" else None
        return ids, val

    def _topk(self, rows: np.ndarray, n: int, allowed: np.ndarray, filter_seen: bool):
        """``(idx, val)``, shape ``(len(rows), n)``: each row's top ``n`` candidates (``allowed``, not seen when
        ``filter_seen``, finite score) by :func:`topk_rows`'s rule, padded with ``-1`` / ``-inf``.

        Known users of a model whose scores are a factor dot product (:meth:`_dot_scores`) go through
        :func:`dprec.kernels.topk.topk_factors` (float32 ``sgemm`` blocks as a filter, float64-exact
        selection); other known users through ``_scores`` and :func:`~dprec.kernels.topk.topk_dense`; unknown
        users share one fallback ranking (nothing of theirs is seen).
        """
        from ..kernels import topk as T

        idx = np.full((len(rows), n), -1, np.int64)
        val = np.full((len(rows), n), -np.inf)
        if n == 0:
            return idx, val
        seen = self._seen
        if seen.indptr.dtype != np.int32 or seen.indices.dtype != np.int32:
            seen = self._seen = _int32_csr(seen)  # once: the top-n kernels then compile for one index dtype
        known = np.flatnonzero(rows >= 0)
        form = self._fast_dot_scores() if len(known) else None
        block = _DOT_BLOCK if form is not None else _DENSE_BLOCK
        for s in range(0, len(known), block):
            b = known[s : s + block]
            r = rows[b]
            seen_rows = r if filter_seen else np.full(len(b), -1, np.int64)
            bi, bv = idx[b], val[b]
            sc = self._scores(r) if form is None else None  # BLAS at full width, outside the numba region
            # numba at num_threads and BLAS single-threaded inside numba threads (also for one user: BLAS threads
            # inside a numba thread cost more than threadpoolctl's ~2 ms)
            with self._thread_limits():
                if form is not None:
                    form.topk(r, allowed, seen.indptr, seen.indices, seen_rows, n, bi, bv)
                else:
                    T.topk_dense(sc, allowed, seen.indptr, seen.indices, seen_rows, n, bi, bv)
            idx[b], val[b] = bi, bv
        unknown = np.flatnonzero(rows < 0)
        if len(unknown):
            fi, fv = np.full((1, n), -1, np.int64), np.full((1, n), -np.inf)
            none = np.full(1, -1, np.int64)
            T.topk_dense(self._fallback_scores()[None, :], allowed, seen.indptr, seen.indices, none, n, fi, fv)
            idx[unknown], val[unknown] = fi, fv
        return idx, val

    def _fast_dot_scores(self) -> DotScores | None:
        """:meth:`_dot_scores`, unless a subclass overrides ``_scores`` below the class that declares it."""
        mro = type(self).__mro__
        owner_scores = next(c for c in mro if "_scores" in vars(c))
        owner_dot = next(c for c in mro if "_dot_scores" in vars(c))
        return self._dot_scores() if issubclass(owner_dot, owner_scores) else None

    def similar_items(self, item, n: int = 10):
        """The ``n`` items most similar to ``item`` by cosine of item vectors, excluding the item itself."""
        self._require_fitted()
        vecs = self._item_vectors()
        if vecs is None:
            raise NotImplementedError(f"{type(self).__name__} has no item representation for similar_items")
        col = int(self._cols([item])[0])
        norms = np.linalg.norm(vecs, axis=1)
        norms[norms == 0] = 1.0
        sims = (vecs @ vecs[col]) / (norms * norms[col])
        sims[col] = -np.inf
        idx, val = topk_rows(sims[None, :], n)
        keep = np.isfinite(val[0])
        return self._item_ids[idx[0]][keep], val[0][keep]

    #: Whether ``baseline + Σ contribution`` equals the ranking score by construction of the model (not by
    #: defining the baseline as the remainder); models that only approximate say False and document why.
    explain_exact = True
    #: Whether the model's scores use the user's ratings at all (False: popularity-like, explain is all baseline).
    explain_uses_ratings = True

    def explain(self, user, item, *, item_names=None, top: int = 3):
        """Which of the user's own rated items drive the score of ``item``, with signed shares and a summary.

        The model's ranking score (what :meth:`recommend` sorts by, before any clipping to the rating scale)
        decomposes as ``score = baseline + Σ_j contribution_j`` over the user's rated items ``j``; ``baseline``
        is the part no rated item explains (the overall mean, the item's bias or popularity; not about the user).

        Parameters
        ----------
        user, item : raw ids
            A known user (unknown → :class:`~dprec.errors.UnknownIdError`) and any served item.
        item_names : mapping raw item id → title, optional
            Titles for the text (e.g. :func:`dprec.datasets.attributes.load_item_titles`); raw ids otherwise.
        top : int
            How many positive rated items the text names (negative ones: at most ``top − 1``).

        Returns
        -------
        pandas.DataFrame
            Columns ``item`` (raw id), ``rating``, ``contribution`` (score units) and ``share``
            ``= contribution_j / Σ_k |contribution_k|`` (signed; the absolute shares sum to 1 unless every
            contribution is 0), sorted by absolute contribution. ``.attrs``: ``score`` (the prediction, as
            :meth:`predict`), ``ranking_score`` (unclipped, ``= baseline + Σ contribution``), ``baseline``,
            ``baseline_share`` ``= |baseline| / (|baseline| + Σ|contribution|)``, ``exact`` (see
            :attr:`explain_exact`) and ``text``: a plain-English summary naming only the user's own ratings
            and, for DP models, the privacy guarantee. No number in it is about another user.
        """
        import pandas as pd

        self._require_fitted()
        row = int(self._rows([user], missing="raise")[0])
        col = int(self._cols([item])[0])
        cols, ratings, contrib, baseline = self._explain(row, col)
        contrib = np.asarray(contrib, dtype=np.float64)
        mass = float(np.abs(contrib).sum())
        share = contrib / mass if mass > 0 else np.zeros_like(contrib)
        df = pd.DataFrame({"item": self._item_ids[cols], "rating": ratings, "contribution": contrib, "share": share})
        order = np.argsort(-np.abs(contrib), kind="stable")  # ties keep the user's item order
        df = df.iloc[order].reset_index(drop=True)
        df.attrs["baseline"] = float(baseline)
        df.attrs["score"] = float(self._predict(np.array([row]), np.array([col]))[0])
        df.attrs["ranking_score"] = float(baseline) + float(contrib.sum())
        df.attrs["baseline_share"] = abs(float(baseline)) / (abs(float(baseline)) + mass) if baseline or mass else 0.0
        df.attrs["exact"] = bool(self.explain_exact)
        df.attrs["text"] = self._explain_text(df, self._item_ids[col], item_names or {}, max(int(top), 1))
        return df

    def _explain_baseline_words(self) -> str:
        """What the baseline of :meth:`explain` is, in a customer's words (a model overrides when it differs)."""
        return "the item's overall popularity and average rating"

    def _explain_text(self, df, item, names, top: int) -> str:
        """The plain-English summary of an :meth:`explain` table (only the user's own ratings are named)."""

        def name(i):
            return f"*{names.get(i, i)}*"

        verb = "you rated" if self.predicts_ratings else "your history with"

        def phrase(rows):
            xs = [  # itertuples keeps each column's dtype (iterrows would turn integer ids into floats)
                f"{name(r.item)} {float(r.rating):g} ({r.share:+.0%})"
                if self.predicts_ratings and r.rating == r.rating
                else f"{name(r.item)} ({r.share:+.0%})"
                for r in rows.itertuples(index=False)
            ]
            return verb + " " + (xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1])

        shown = df[np.abs(df["share"]) >= 0.005]  # what rounds to 0% says nothing to a reader
        pos, neg = shown[shown["share"] > 0].head(top), shown[shown["share"] < 0].head(max(top - 1, 1))
        base = self._explain_baseline_words()
        if not len(pos) and not len(neg):
            text = f"The score of {name(item)} does not depend on your ratings: it is {base} (not about you)."
        else:
            parts = []
            if len(pos) and pos["share"].iloc[0] >= 0.1:
                parts.append(f"{name(item)} is scored up mostly because {phrase(pos)}")
            elif len(pos):  # many small pulls: "mostly because" would overstate any one rating
                top_share = pos["share"].iloc[0]
                parts.append(
                    f"{name(item)} is scored up by many of your ratings together (none more than {top_share:.0%}); "
                    f"the largest: {phrase(pos)}"
                )
            if len(neg):
                parts.append(
                    ("and held down because " if len(pos) else f"{name(item)} is held down because ") + phrase(neg)
                )
            text = " ".join(parts) + "."
            text += f" {df.attrs['baseline_share']:.0%} of the score is {base} (not about you)."
            if not df.attrs["exact"]:
                text += " These shares are an approximation for this model."
        if getattr(self, "is_private", False):
            eps = getattr(self, "epsilon", None)
            if eps is not None and not np.isfinite(eps):
                text += " This DP model was trained with ε = ∞, i.e. without privacy noise."
            else:
                e = "" if eps is None else f" (ε = {eps:g})"
                text += (
                    f" The item side of this model was learned under differential privacy{e}; your own ratings "
                    "are used only to compute your own scores and are never released (joint DP)."
                )
        return text

    def fold_in(self, ratings, *, user=None):
        """Add or update one user from that user's own ratings, without retraining.

        Parameters
        ----------
        ratings : mapping raw item id → rating, a pandas Series indexed by item, or a pair (items, ratings)
        user : raw user id, optional
            Existing user to update, or the id to give a new user (default: the next integer id when ids are
            integers). Under joint DP this uses only the released item side and the user's own data, so it
            costs no privacy budget.

        Returns
        -------
        The raw id of the folded-in user.
        """
        import pandas as pd

        self._require_fitted()
        if isinstance(ratings, pd.Series):
            items, vals = ratings.index.to_numpy(), ratings.to_numpy(dtype=np.float64)
        elif isinstance(ratings, dict):
            items, vals = (
                np.array(list(ratings.keys()), dtype=object),
                np.array(list(ratings.values()), dtype=np.float64),
            )
        else:
            items, vals = ratings
            items, vals = np.asarray(items, dtype=object), np.asarray(vals, dtype=np.float64)
        if len(items) != len(vals):
            raise ValueError("fold_in: items and ratings differ in length")
        if not np.all(np.isfinite(vals)):
            raise ValueError("fold_in: ratings contain NaN or infinite values")
        if self.rating_bounds_ is not None and len(vals):
            lo, hi = self.rating_bounds_
            if vals.min() < lo or vals.max() > hi:
                raise ValueError(f"fold_in: ratings outside the model's rating_bounds {self.rating_bounds_}")
        cols = self._cols(items) if len(items) else np.empty(0, np.int64)
        if len(np.unique(cols)) != len(cols):
            raise ValueError("fold_in: an item appears twice in the ratings")
        order = np.argsort(cols)
        cols, vals = cols[order], vals[order]
        row = int(self._rows([user])[0]) if user is not None else -1
        if user is not None:
            self._forgotten = self._forgotten - {
                _key(user)
            }  # back with their own ratings (a new set: copies share none)
        if row < 0:
            if user is None:
                if self._user_ids.dtype.kind not in "iu":
                    raise ValueError("fold_in: user ids are not integers; pass user= to name the new user")
                user = int(self._user_ids.max()) + 1 if len(self._user_ids) else 0
            row = len(self._user_ids)
            self._user_ids = _append_id(self._user_ids, user)
            self._user_index_cache = None
            self._seen = sp.vstack([self._seen, sp.csr_matrix((1, self.n_items))], format="csr")
        self._fold_in(row, cols, vals)
        self._replace_seen_row(row, cols, vals)
        return user

    def fold_in_many(self, data) -> np.ndarray:
        """Add many **new** users at once, each from that user's own ratings (a batch :meth:`fold_in`).

        ``data`` is an :class:`~dprec.data.Interactions` whose users are unknown to the model and whose item ids
        are in the model's catalog (e.g. the ``history`` of :func:`dprec.split.strong_generalization`). Each
        user's state is what :meth:`fold_in` would give; the per-user arrays and the seen-item matrix grow once
        for the whole batch (not once per user). Under joint DP only the released item side and each user's
        own data are used: no privacy cost. Returns the raw ids of the added users.
        """
        self._require_fitted()
        data = as_interactions(data, what="fold_in_many data")
        if data.n_users == 0:
            return data.user_ids
        known = self._rows(data.user_ids)
        if (known >= 0).any():
            first = data.user_ids[np.flatnonzero(known >= 0)[0]]
            raise ValueError(f"fold_in_many adds new users only; user {first!r} is already known (use fold_in)")
        if self._user_ids.dtype.kind in "iu" and data.user_ids.dtype.kind not in "iu":
            raise ValueError("fold_in_many: the model's user ids are integers; the new users' ids are not")
        X = data.matrix
        if X.nnz and not np.all(np.isfinite(X.data)):
            raise ValueError("fold_in_many: ratings contain NaN or infinite values")
        if self.rating_bounds_ is not None and X.nnz:
            lo, hi = self.rating_bounds_
            if X.data.min() < lo or X.data.max() > hi:
                raise ValueError(f"fold_in_many: ratings outside the model's rating_bounds {self.rating_bounds_}")
        cols = lookup(self._item_index(), data.item_ids, what="item", missing="minus1")
        used = np.zeros(data.n_items, dtype=bool)
        used[X.indices] = True
        if (cols[used] < 0).any():
            self._cols([data.item_ids[np.flatnonzero(used & (cols < 0))[0]]])  # raises UnknownIdError
        # the users' ratings in the model's item columns (sorted within rows)
        Xm = sp.csr_matrix(
            (X.data, np.where(cols >= 0, cols, 0)[X.indices], X.indptr), shape=(data.n_users, self.n_items)
        )
        Xm.sort_indices()
        n_old = len(self._user_ids)
        ids = data.user_ids
        self._forgotten = self._forgotten - {_key(u) for u in ids.tolist()}  # back with their own ratings
        self._user_ids = np.concatenate(
            [self._user_ids, ids.astype(self._user_ids.dtype) if self._user_ids.dtype.kind in "iu" else ids]
        )
        self._user_index_cache = None
        self._seen = sp.vstack([self._seen, Xm], format="csr")
        self._reserve_users(data.n_users)
        self._fold_in_rows(np.arange(n_old, n_old + data.n_users), Xm)
        return ids

    def _reserve_users(self, n_new: int) -> None:
        """Grow the per-user arrays by ``n_new`` rows (zeros), so that :meth:`_fold_in` updates them in place."""

    def _fold_in_rows(self, rows: np.ndarray, X: sp.csr_matrix) -> None:
        """Fold in row ``rows[i]`` from row ``i`` of ``X`` (model columns); default: :meth:`_fold_in` per row."""
        for i, row in enumerate(rows):
            s, e = X.indptr[i], X.indptr[i + 1]
            self._fold_in(int(row), X.indices[s:e].astype(np.int64), X.data[s:e].astype(np.float64))

    # ------------------------------------------------------------------ erasure
    def forget(self, users) -> dict:
        """Erase users from this served model: their ids, their user state and their stored ratings.

        Removes, for each raw id in ``users`` that the model knows: the user's row of the user factors and
        biases (every per-user array, hook :meth:`_drop_users`), the user's stored ratings (the seen items used
        to filter recommendations, to explain and to fold in), and the id itself. A :meth:`save` afterwards
        writes a file with no trace of them: not their id, not their ratings, not their factors. In this
        session :meth:`recommend`/:meth:`predict` then refuse those ids (:class:`~dprec.errors.UnknownIdError`);
        a reloaded file does not know them at all (they are then served as any unknown user: the fallback).
        Unknown ids are ignored (e.g. users who opted out before the fit). It costs no privacy budget.

        What it cannot remove: the **item side** was computed from every user's data at fit time. For a DP
        model it is (ε, δ)-DP under the model's privacy unit, so it reflects any one erased user by at most the
        claimed ε (user unit; under the rating unit, by group privacy over that user's ratings); for a
        non-private model it reflects their ratings exactly. Either way a retrain on the data without them is
        due before the next release of the item side (``export_public``); the returned note (also saved in the
        file, :meth:`erasure_report`) says so. Record the erasure in the ledger with
        :meth:`dprec.privacy.Ledger.record_erasure` (``dprec forget --ledger``).

        Parameters
        ----------
        users : sequence of raw user ids
            Of the same kind as the model's user ids (integer ids given as text are accepted).

        Returns
        -------
        dict
            The erasure note (:meth:`erasure_report`). It holds no id and no count. When none of the ids is
            known, nothing changes and the result says ``"users_erased": False``.
        """
        self._require_fitted()
        ids = _coerce_user_ids(users, self._user_ids, what="forget users")
        rows = self._rows(ids) if ids else np.empty(0, np.int64)
        n_before = len(self._user_ids)
        drop = np.zeros(n_before, dtype=bool)
        drop[rows[rows >= 0]] = True
        keep = np.flatnonzero(~drop)
        if drop.any():
            self._drop_users(keep, n_before)
            self._user_ids = self._user_ids[keep]
            self._user_index_cache = None
            self._seen = self._seen[keep]
            self._seen.sort_indices()
        self._forgotten = self._forgotten | {_key(u) for u in ids}
        if not drop.any():  # none of them was known: nothing changed, no note, no retrain due for this call
            return {
                "users_erased": False,
                "removed": "nothing: none of the given ids is a user of this model",
                "retrain_due": {"due": self._erasure is not None, "reason": "no user was erased by this call"},
            }
        self._erasure = self._erasure_note()
        return dict(self._erasure)

    def _drop_users(self, keep: np.ndarray, n_before: int) -> None:
        """Keep only rows ``keep`` of every per-user array (default: ``user_factors_`` and ``user_bias_``
        when they have one row per user); a model with other per-user state extends it."""
        for name in ("user_factors_", "user_bias_"):
            arr = getattr(self, name, None)
            if isinstance(arr, np.ndarray) and arr.ndim >= 1 and arr.shape[0] == n_before:
                setattr(self, name, np.ascontiguousarray(arr[keep]))

    def _erasure_note(self) -> dict:
        """What the served model still reflects after :meth:`forget`, and why a retrain is due (no ids, no counts)."""
        private = bool(getattr(self, "private", False))
        if private:
            unit = getattr(self, "privacy_unit", "user")
            eps, delta = getattr(self, "epsilon", None), getattr(self, "delta", None)
            bound = f"at most the claimed epsilon={eps:g} (delta={delta:g})"
            if unit != "user":
                bound += " per rating; for a whole user, the group-privacy bound over that user's ratings"
            item_side = (
                f"the item side was released under differential privacy (unit {unit!r}) from the data that still "
                f"included the erased users; it reflects any one of them by {bound}, and nothing else of them is "
                "in the model"
            )
        else:
            item_side = (
                "this model is not differentially private: its item side (item factors, counts, biases or "
                "weights) was computed from the erased users' ratings and still reflects them exactly"
            )
        return {
            "users_erased": True,
            "removed": "the erased users' ids, user factors and biases, and stored ratings (seen items)",
            "item_side": item_side,
            "retrain_due": {
                "due": True,
                "reason": "retrain without the erased users (load the data with opted_out=, or --opted-out) "
                "before the next release of the item side (export_public) and within the retention policy; "
                + (
                    "until then the item side reflects them only within the DP guarantee"
                    if private
                    else "until then the item side is not erased"
                ),
            },
            "ledger": "record the erasure with Ledger.record_erasure (dprec forget --ledger); the record holds "
            "no ids and no counts",
        }

    def erasure_report(self) -> dict | None:
        """The note of the last :meth:`forget` (kept in the saved file), or None if nobody was erased."""
        return None if self._erasure is None else dict(self._erasure)

    def _refuse_forgotten(self, users, rows) -> None:
        if self._forgotten and (rows < 0).any():
            for u in np.asarray(users, dtype=object)[rows < 0]:
                if _key(u) in self._forgotten:
                    raise UnknownIdError(f"user {u!r} was erased from this model (forget); it is not served")

    def _replace_seen_row(self, row, cols, vals):
        lil = self._seen.tolil()
        lil.rows[row] = list(map(int, cols))
        lil.data[row] = list(map(float, vals))
        self._seen = lil.tocsr()

    # ------------------------------------------------------------------ hooks (override)
    def _fit(self, data: Interactions, **kwargs) -> None:
        raise NotImplementedError

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _predict(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows))
        known = rows >= 0
        if (~known).any():
            out[~known] = self._fallback_scores()[cols[~known]]
        for r in np.unique(rows[known]):
            sel = rows == r
            out[sel] = self._scores(np.array([r]))[0, cols[sel]]
        return out

    def _fallback_scores(self) -> np.ndarray:
        raise NotImplementedError

    def _dot_scores(self) -> DotScores | None:
        """The factor form of ``_scores`` (:class:`DotScores`, e.g. ``self._dot_form(biases=True)``), for the
        fast top-k path of :meth:`recommend`; ``None`` (the default): no such form, ``_scores`` serves."""
        return None

    def _dot_form(self, **kwargs) -> DotScores | None:
        return DotScores.of(self, **kwargs)

    def _fold_in(self, row: int, cols: np.ndarray, vals: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not support fold_in")

    def _explain(self, row: int, col: int):
        raise NotImplementedError(f"{type(self).__name__} does not support explain")

    def _item_vectors(self):
        return None

    def _get_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _restore_manifest(self, manifest: dict) -> None:
        """Restore non-array state recorded by :meth:`_extra_manifest` (e.g. the privacy report)."""

    def _common_state(self) -> dict[str, np.ndarray]:
        """Arrays every model of a family saves beside its own state (the DP mixin: the released-item mask)."""
        return {}

    def _set_common_state(self, state: dict[str, np.ndarray]) -> None:
        """Pop and restore what :meth:`_common_state` saved."""

    def _extra_manifest(self) -> dict:
        """Extra JSON-able entries for the manifest (e.g. a privacy report)."""
        return {}

    # ------------------------------------------------------------------ persistence
    def save(self, path, *, key=None) -> str:
        """Save to ``path`` (``.npz`` appended if missing): arrays plus a JSON manifest, no pickle.

        The file holds per-user state (user factors, seen items) and is therefore **not** a DP artifact
        for a private model; use ``export_public`` for the shareable, DP part.

        Parameters
        ----------
        path : str or os.PathLike
            A file path; its folder must exist. A directory is refused (:class:`~dprec.errors.PathError`).
        key : bytes or str, optional
            A secret kept outside the file (≥ 16 bytes, e.g. ``secrets.token_bytes(32)``): adds an
            HMAC-SHA256 over the manifest and every array, which ``load(path, key=key)`` checks, so an edited
            file (arrays swapped and checksums recomputed) is refused. See :mod:`dprec.models.io`.

        Returns
        -------
        str
            The path written.
        """
        self._require_fitted()
        arrays = {**self._get_state(), **self._common_state()}
        arrays["__user_ids"], user_enc = ids_for_npz(self._user_ids, "user")
        arrays["__item_ids"], item_enc = ids_for_npz(self._item_ids, "item")
        arrays["__seen_indptr"] = self._seen.indptr
        arrays["__seen_indices"] = self._seen.indices
        arrays["__seen_data"] = self._seen.data
        manifest = {
            "format": "dprec-model",
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "dprec_version": dprec_version(),
            "params": self._manifest_params(),
            "rating_bounds": self.rating_bounds_,
            "n_users": int(len(self._user_ids)),
            "n_items": int(self.n_items),
            "contains_user_data": True,
            "ids": {"user": user_enc, "item": item_enc},
            **self._extra_manifest(),
        }
        if self._erasure is not None:
            manifest["erasure"] = self._erasure
        return write_npz_with_manifest(path, arrays, manifest, key=key)

    @classmethod
    def load(cls, path, *, key=None) -> Recommender:
        """Load a model saved by :meth:`save`, verifying format, manifest, class, shapes and checksums.

        ``key``: the secret the file was saved with; the file's MAC is then checked too (a file saved without
        a key, or edited since, raises :class:`~dprec.errors.CorruptFileError`). Any inconsistency raises
        CorruptFileError.
        """
        arrays, manifest = read_npz_with_manifest(path, expected_format="dprec-model", key=key)
        name = manifest["class"]
        target = _registry.model_class_by_name(name)
        if target is None:
            raise CorruptFileError(f"{path}: unknown model class {name!r} in manifest")
        if cls is not Recommender and not issubclass(target, cls):
            raise CorruptFileError(f"{path} holds a {name}, not a {cls.__name__}")
        model = target._from_config(config_from_file(target, manifest["params"], path))
        enc = manifest.get("ids") or {}
        try:
            model._user_ids = ids_from_npz(arrays.pop("__user_ids"), enc.get("user", "native"))
            model._item_ids = ids_from_npz(arrays.pop("__item_ids"), enc.get("item", "native"))
            n_u, n_i = len(model._user_ids), len(model._item_ids)
            if (n_u, n_i) != (manifest["n_users"], manifest["n_items"]):
                raise CorruptFileError(f"{path}: id vocabularies do not match the manifest's sizes")
            for what, ids in (("user", model._user_ids), ("item", model._item_ids)):
                if len(set(ids.tolist())) != len(ids):
                    raise CorruptFileError(f"{path}: the {what} ids repeat an id")
            model._seen = sp.csr_matrix(
                (arrays.pop("__seen_data"), arrays.pop("__seen_indices"), arrays.pop("__seen_indptr")), shape=(n_u, n_i)
            )
            model._seen.check_format(full_check=True)
            bounds = manifest["rating_bounds"]
            model.rating_bounds_ = (float(bounds[0]), float(bounds[1])) if bounds is not None else None
            seen = model._seen.data
            if seen.size and (
                not np.all(np.isfinite(seen))
                or (bounds is not None and (seen.min() < bounds[0] or seen.max() > bounds[1]))
            ):
                raise CorruptFileError(f"{path}: the stored ratings are not finite or lie outside its rating_bounds")
            model._user_index_cache = model._item_index_cache = None
            model._set_common_state(arrays)
            model._set_state(arrays)
            model._restore_manifest(manifest)
            erasure = manifest.get("erasure")
            if erasure is not None and not isinstance(erasure, dict):
                raise CorruptFileError(f"{path}: the manifest's erasure note is not an object")
            model._erasure = erasure
        except CorruptFileError:
            raise
        except (KeyError, ValueError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            raise CorruptFileError(f"{path}: model file is inconsistent ({type(exc).__name__}: {exc})") from None
        model._fitted = True
        return model

    @classmethod
    def _from_config(cls, config: ModelConfig) -> Recommender:
        """A fresh (unfitted) model with an already validated config (a saved parameter the model ignores is
        not the loader's fault: no IgnoredParameterWarning)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IgnoredParameterWarning)
            return cls(**dict(config))


def load_model(path) -> Recommender:
    """Load any dprec model saved with ``save``."""
    return Recommender.load(path)
