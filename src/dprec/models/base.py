"""The protocol every dprec model follows, and the machinery they share.

A model is a thin Python class over fast kernels. The base class owns what is common: raw↔inner id
mapping, seen-item filtering, top-k selection, the unknown-user fallback, fold-in bookkeeping, thread
control, and saving/loading (``.npz`` with ``allow_pickle=False`` plus a JSON manifest). A subclass
implements a handful of ``_private`` hooks over inner ids:

``_fit(data)``                         learn from an :class:`~dprec.data.Interactions`
``_scores(rows)``                      dense scores, shape ``(len(rows), n_items)``
``_predict(rows, cols)``               element-wise scores; ``rows == -1`` marks an unknown user
``_fallback_scores()``                 item scores for users the model does not know (popularity-like)
``_fold_in(row, cols, values)``        a user's state from the user's own ratings only
``_explain(row, col)``                 per-rated-item contributions to one score
``_item_vectors()``                    item embeddings for :meth:`similar_items` (or ``None``)
``_get_state()`` / ``_set_state(d)``   arrays to save / restore
``get_params()``                       constructor keyword arguments (JSON-able)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np
import scipy.sparse as sp

from ..data import Interactions, as_interactions, lookup, _key
from ..errors import CorruptFileError

__all__ = ["Recommender", "load_model", "topk_rows", "register_model"]

FORMAT_VERSION = 1
_REGISTRY: dict[str, type] = {}


def register_model(cls):
    """Class decorator: make a model loadable by name from a manifest."""
    _REGISTRY[cls.__name__] = cls
    return cls


def _version() -> str:
    from .. import __version__

    return __version__


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
        part = np.argpartition(scores, N - n, axis=1)[:, N - n:]  # the n largest, up to ties at the cut-off
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


class Recommender:
    """Base class of dprec models (see module docstring for the hooks a subclass implements)."""

    #: True for models whose released item side is differentially private.
    is_private: bool = False

    def __init__(self, *, num_threads: int = 0, rng=None):
        if not isinstance(num_threads, (int, np.integer)) or num_threads < 0:
            raise ValueError(f"num_threads must be an integer ≥ 0 (0 = all cores), got {num_threads!r}")
        self.num_threads = int(num_threads)
        self.rng = rng
        self._fitted = False

    # ------------------------------------------------------------------ params
    def get_params(self) -> dict:
        """Constructor keyword arguments as JSON-able values (``rng`` as an int seed or None)."""
        return {"num_threads": self.num_threads, "rng": self.rng if isinstance(self.rng, (int, type(None))) else None}

    def _manifest_params(self) -> dict:
        """:meth:`get_params` as written to files (DP models leave out ``rng``: a noise seed is never written)."""
        return self.get_params()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------ fit
    def fit(self, data, **kwargs) -> "Recommender":
        """Learn from a user×item :class:`~dprec.data.Interactions` or ``scipy.sparse.csr_matrix``."""
        data = as_interactions(data)
        self._check_fit_data(data)
        self._user_ids = data.user_ids.copy()
        self._item_ids = data.item_ids.copy()
        self._user_index_cache = None
        self._item_index_cache = None
        self.rating_bounds = data.rating_bounds
        # Each user's own history is kept only to serve that user (filter seen items, explain, fold-in).
        self._seen = data.matrix.copy()
        with self._thread_limits():
            self._fit(data, **kwargs)
        self._fitted = True
        return self

    def _check_fit_data(self, data: Interactions) -> None:
        """Subclasses add model-specific checks (e.g. DP models need rating bounds)."""

    @contextlib.contextmanager
    def _thread_limits(self):
        """Run numba kernels on ``num_threads`` cores and keep BLAS single-threaded meanwhile.

        Both pools at full width would oversubscribe the cores (numba prange × BLAS threads).
        """
        import numba
        from threadpoolctl import threadpool_limits

        n = self.num_threads or numba.config.NUMBA_NUM_THREADS
        n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
        old = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                yield n
        finally:
            numba.set_num_threads(old)

    def _require_fitted(self):
        if not getattr(self, "_fitted", False):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(data) first")

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
        users_a, items_a = np.atleast_1d(np.asarray(users, dtype=object)), np.atleast_1d(np.asarray(items, dtype=object))
        if users_a.shape != items_a.shape:
            raise ValueError(f"users and items must have the same length, got {users_a.shape} and {items_a.shape}")
        rows = self._rows(users_a)
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
        ``n`` candidates is padded with score ``-inf`` and id ``-1`` (``None`` for non-integer ids).
        """
        self._require_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        single = np.ndim(user) == 0
        users = np.atleast_1d(np.asarray(user, dtype=object))
        rows = self._rows(users)
        scores = self._batch_scores(rows)
        if items is not None:
            cand = np.unique(self._cols(items))
            mask = np.full(self.n_items, True)
            mask[cand] = False
            scores[:, mask] = -np.inf
        if filter_seen:
            for k, r in enumerate(rows):
                if r >= 0:
                    seen = self._seen.indices[self._seen.indptr[r]:self._seen.indptr[r + 1]]
                    scores[k, seen] = -np.inf
        idx, val = topk_rows(scores, n)
        ids = self._item_ids[idx]
        if single:
            keep = np.isfinite(val[0])
            return ids[0][keep], val[0][keep]
        pad = ~np.isfinite(val)
        if pad.any():
            ids = ids.astype(object) if ids.dtype.kind not in "iu" else ids.copy()
            ids[pad] = -1 if ids.dtype.kind in "iu" else None
        return ids, val

    def _batch_scores(self, rows: np.ndarray) -> np.ndarray:
        known = rows >= 0
        out = np.empty((len(rows), self.n_items))
        if known.any():
            out[known] = self._scores(rows[known])
        if (~known).any():
            out[~known] = self._fallback_scores()[None, :]
        return out

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

    def explain(self, user, item):
        """Which of the user's rated items drive the score of ``item``.

        Returns a :class:`pandas.DataFrame` with columns ``item`` (raw id), ``rating`` and ``contribution``,
        sorted by absolute contribution, and the attribute ``.attrs["score"]`` with the total score and
        ``.attrs["baseline"]`` with the part no rated item explains (biases, mean).
        """
        import pandas as pd

        self._require_fitted()
        row = int(self._rows([user], missing="raise")[0])
        col = int(self._cols([item])[0])
        cols, ratings, contrib, baseline = self._explain(row, col)
        df = pd.DataFrame({"item": self._item_ids[cols], "rating": ratings, "contribution": contrib})
        df = df.reindex(df["contribution"].abs().sort_values(ascending=False).index).reset_index(drop=True)
        df.attrs["baseline"] = float(baseline)
        df.attrs["score"] = float(self._predict(np.array([row]), np.array([col]))[0])
        return df

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
            items, vals = np.array(list(ratings.keys()), dtype=object), np.array(list(ratings.values()), dtype=np.float64)
        else:
            items, vals = ratings
            items, vals = np.asarray(items, dtype=object), np.asarray(vals, dtype=np.float64)
        if len(items) != len(vals):
            raise ValueError("fold_in: items and ratings differ in length")
        if not np.all(np.isfinite(vals)):
            raise ValueError("fold_in: ratings contain NaN or infinite values")
        if self.rating_bounds is not None and len(vals):
            lo, hi = self.rating_bounds
            if vals.min() < lo or vals.max() > hi:
                raise ValueError(f"fold_in: ratings outside the model's rating_bounds {self.rating_bounds}")
        cols = self._cols(items) if len(items) else np.empty(0, np.int64)
        if len(np.unique(cols)) != len(cols):
            raise ValueError("fold_in: an item appears twice in the ratings")
        order = np.argsort(cols)
        cols, vals = cols[order], vals[order]
        row = int(self._rows([user])[0]) if user is not None else -1
        if row < 0:
            if user is None:
                if self._user_ids.dtype.kind not in "iu":
                    raise ValueError("fold_in: user ids are not integers; pass user= to name the new user")
                user = int(self._user_ids.max()) + 1 if len(self._user_ids) else 0
            row = len(self._user_ids)
            self._user_ids = np.append(self._user_ids, np.asarray([user], dtype=object).astype(self._user_ids.dtype)
                                       if self._user_ids.dtype.kind in "iu" else [user])
            self._user_index_cache = None
            self._seen = sp.vstack([self._seen, sp.csr_matrix((1, self.n_items))], format="csr")
        self._fold_in(row, cols, vals)
        self._replace_seen_row(row, cols, vals)
        return user

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
    def save(self, path) -> str:
        """Save to ``path`` (``.npz`` appended if missing): arrays plus a JSON manifest, no pickle.

        The file holds per-user state (user factors, seen items) and is therefore **not** a DP artifact
        for a private model; use ``export_public`` for the shareable, DP part.
        """
        self._require_fitted()
        arrays = {**self._get_state(), **self._common_state()}
        arrays["__user_ids"] = _ids_for_npz(self._user_ids, "user")
        arrays["__item_ids"] = _ids_for_npz(self._item_ids, "item")
        arrays["__seen_indptr"] = self._seen.indptr
        arrays["__seen_indices"] = self._seen.indices
        arrays["__seen_data"] = self._seen.data
        manifest = {
            "format": "dprec-model",
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "dprec_version": _version(),
            "params": self._manifest_params(),
            "rating_bounds": self.rating_bounds,
            "n_users": int(len(self._user_ids)),
            "n_items": int(self.n_items),
            "contains_user_data": True,
            **self._extra_manifest(),
        }
        return write_npz_with_manifest(path, arrays, manifest)

    @classmethod
    def load(cls, path) -> "Recommender":
        """Load a model saved by :meth:`save`, verifying format, class, shapes and checksums."""
        arrays, manifest = read_npz_with_manifest(path, expected_format="dprec-model")
        name = manifest.get("class")
        target = _REGISTRY.get(name)
        if target is None:
            raise CorruptFileError(f"{path}: unknown model class {name!r} in manifest")
        if cls is not Recommender and not issubclass(target, cls):
            raise CorruptFileError(f"{path} holds a {name}, not a {cls.__name__}")
        try:
            model = target(**manifest["params"])
        except TypeError as exc:  # e.g. a parameter an older dprec accepted and this one removed
            raise CorruptFileError(f"{path}: the saved {name} parameters are not accepted by this dprec version "
                                   f"({exc}); refit the model") from None
        try:
            model._user_ids = _ids_from_npz(arrays.pop("__user_ids"))
            model._item_ids = _ids_from_npz(arrays.pop("__item_ids"))
            n_u, n_i = len(model._user_ids), len(model._item_ids)
            if (n_u, n_i) != (manifest["n_users"], manifest["n_items"]):
                raise CorruptFileError(f"{path}: id vocabularies do not match the manifest's sizes")
            model._seen = sp.csr_matrix(
                (arrays.pop("__seen_data"), arrays.pop("__seen_indices"), arrays.pop("__seen_indptr")), shape=(n_u, n_i)
            )
            model._seen.check_format(full_check=True)
            model.rating_bounds = tuple(manifest["rating_bounds"]) if manifest["rating_bounds"] else None
            model._user_index_cache = model._item_index_cache = None
            model._set_common_state(arrays)
            model._set_state(arrays)
            model._restore_manifest(manifest)
        except CorruptFileError:
            raise
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            raise CorruptFileError(f"{path}: model file is inconsistent ({type(exc).__name__}: {exc})") from None
        model._fitted = True
        return model


def load_model(path) -> Recommender:
    """Load any dprec model saved with ``save``."""
    return Recommender.load(path)


# ---------------------------------------------------------------------- npz + manifest helpers
def _ids_for_npz(ids: np.ndarray, what: str) -> np.ndarray:
    if ids.dtype.kind in "iuU":
        return ids
    if ids.dtype.kind == "O":
        vals = ids.tolist()
        if all(isinstance(v, str) for v in vals):
            return np.asarray(vals, dtype=str)
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            return np.asarray(vals, dtype=np.int64)
    raise TypeError(f"cannot save {what} ids of dtype {ids.dtype}: use integer or string ids")


def _ids_from_npz(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "iuU":
        raise CorruptFileError(f"id array has unsupported dtype {arr.dtype}")
    return arr


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def write_npz_with_manifest(path, arrays: dict[str, np.ndarray], manifest: dict) -> str:
    """Write arrays + manifest (with per-array shape/dtype/sha256) atomically to ``path``."""
    path = str(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"array {k!r} has dtype object; dprec never pickles")
    manifest = dict(manifest)
    manifest["arrays"] = {k: {"shape": list(v.shape), "dtype": v.dtype.str, "sha256": _sha(v)} for k, v in arrays.items()}
    payload = dict(arrays)
    payload["__manifest__"] = np.frombuffer(json.dumps(manifest, sort_keys=True, default=_json_default).encode(), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **payload)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_npz_with_manifest(path, *, expected_format: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a file written by :func:`write_npz_with_manifest`; raise CorruptFileError on any doubt."""
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CorruptFileError(f"{path} is not a readable dprec file ({type(exc).__name__}: {exc})") from None
    raw = data.pop("__manifest__", None)
    if raw is None:
        raise CorruptFileError(f"{path} has no manifest: not a dprec file")
    try:
        manifest = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path}: manifest is not valid JSON ({exc})") from None
    if manifest.get("format") != expected_format:
        raise CorruptFileError(f"{path}: expected a {expected_format} file, found {manifest.get('format')!r}")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise CorruptFileError(f"{path}: written by a newer dprec (format {manifest['format_version']})")
    declared = manifest.get("arrays", {})
    if set(declared) != set(data):
        raise CorruptFileError(f"{path}: arrays {sorted(set(declared) ^ set(data))} are missing or unexpected")
    for k, meta in declared.items():
        a = data[k]
        if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"] or _sha(a) != meta["sha256"]:
            raise CorruptFileError(f"{path}: array {k!r} fails its checksum/shape check (file corrupted or edited)")
    return data, manifest


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float) and math.isinf(o):
        return "inf"
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
