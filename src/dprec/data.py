"""Interaction data: one user×item CSR matrix with raw↔inner id vocabularies.

Orientation is **user × item** everywhere in dprec: row ``u`` holds user ``u``'s ratings, column ``i``
holds item ``i``'s. Raw ids are whatever the caller uses (ints, strings); inner ids are positions in
:attr:`Interactions.user_ids` / :attr:`Interactions.item_ids`.

Public facts are declared, never derived: ``rating_bounds=(lo, hi)`` and an optional public
``item_catalog``. Without a public catalog the item vocabulary is derived from the data, which is a
leak under DP (an item rated by one user reveals that user); DP models then select items with an
accounted mechanism (see :mod:`dprec.privacy`), and :attr:`Interactions.public_items` is ``False``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._validation import check_choice
from .errors import ConfigError, DataError, DataWarning, UnknownIdError

__all__ = ["Interactions", "as_interactions", "TRANSPOSED_RATIO"]

#: a raw matrix with fewer than 1/TRANSPOSED_RATIO as many rows (users) as columns (items) looks transposed
#: (recommendation data usually has more users than items; ML-100K, 943 × 1682, is well inside)
TRANSPOSED_RATIO = 10

_DUPLICATE_POLICIES = ("error", "mean", "last", "first", "sum")
#: entries per step of the chunked passes (fingerprint hashing, chunked CSV reading): bounds their temporaries
_HASH_CHUNK = 1 << 22
#: the members of an Interactions .npz file (see :meth:`Interactions.to_npz`) and its format version
_NPZ_ARRAYS = ("indptr", "indices", "data", "user_ids", "item_ids")
_NPZ_FORMAT = 1


def _orientation_hint(shape) -> str:
    return (
        f"dprec expects a user×item matrix (rows = users, columns = items); got shape {shape}. "
        "If you have an item×user matrix (implicit's old orientation), pass its transpose (X.T.tocsr())."
    )


def _id_kinds(values) -> set[str]:
    """The kinds of raw ids in an object array: ``"int"``, ``"str"``, ``"float"``, ``"bool"`` or a type name."""
    kinds = set()
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(v, (int, np.integer)):
            kinds.add("int")
        elif isinstance(v, (float, np.floating)):
            kinds.add("float")
        elif isinstance(v, (str, np.str_)):
            kinds.add("str")
        else:
            kinds.add(type(v).__name__)
    return kinds


def _normalize_ids(ids, what: str) -> np.ndarray:
    """Raw ids as a 1-D array that is never of object dtype when it need not be: all strings → fixed-width
    unicode, all integers → int64 (uint64 when they need it; beyond 64 bits they stay Python ints, which
    model files store as text). Ids that mix strings and numbers raise a ValueError naming ``what``."""
    arr = np.asarray(ids)
    if arr.dtype.kind != "O":
        return arr
    vals = arr.ravel().tolist()
    kinds = _id_kinds(vals)
    if kinds <= {"str"}:
        return np.asarray(vals, dtype=str).reshape(arr.shape) if vals else np.asarray(vals, dtype=str)
    if kinds == {"int"}:
        lo, hi = min(vals), max(vals)
        if -(2**63) <= lo and hi < 2**63:
            return arr.astype(np.int64)
        if lo >= 0 and hi < 2**64:
            return np.asarray(vals, dtype=np.uint64).reshape(arr.shape)
        return arr
    if len(kinds) > 1:
        raise DataError(
            f"{what} mix id types ({', '.join(sorted(kinds))}); raw ids must all be integers or all be strings. "
            "Convert them first, e.g. df[col] = df[col].astype(str)"
        )
    return arr


def _check_bounds(bounds) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"rating_bounds must be a pair (lo, hi) of numbers, got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"rating_bounds must be finite with lo < hi, got {bounds!r}")
    return lo, hi


def _validate_ratings(values: np.ndarray, bounds, *, where: str, row_labels=None) -> None:
    """Raise a ValueError naming the first offending row for NaN/inf or out-of-bounds ratings."""
    bad = ~np.isfinite(values)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        label = row_labels[idx] if row_labels is not None else idx
        raise ValueError(
            f"{where}: {int(bad.sum())} rating(s) are NaN or infinite (first at row {label!r}: "
            f"{float(values[idx])!r}). Drop or impute them before building Interactions."
        )
    if bounds is not None:
        lo, hi = bounds
        out = (values < lo) | (values > hi)
        if out.any():
            idx = int(np.flatnonzero(out)[0])
            label = row_labels[idx] if row_labels is not None else idx
            raise ValueError(
                f"{where}: {int(out.sum())} rating(s) lie outside the declared rating_bounds {bounds} "
                f"(first at row {label!r}: {float(values[idx])!r}). Declare the public bounds of your rating "
                "scale (e.g. rating_bounds=(1, 5)) or clean the data; dprec never infers bounds from data "
                "because that would leak private information."
            )


@dataclass(eq=False)
class Interactions:
    """A user×item rating matrix with id vocabularies and declared public facts.

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Ratings (explicit) or interaction strengths (implicit). Stored entries are observations, including
        any explicit zeros.
    user_ids, item_ids : numpy.ndarray
        Raw ids of rows and columns (unique).
    rating_bounds : (float, float) or None
        Public bounds of the rating scale; every stored value lies in ``[lo, hi]``.
    public_items : bool
        ``True`` when the item vocabulary is a caller-declared public catalog (it may contain items nobody
        rated); ``False`` when it was derived from the data.
    timestamps : numpy.ndarray or None
        One timestamp per stored entry, aligned with ``matrix.data`` (CSR order).
    name : str
        A label used for ledgers and result files.
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    rating_bounds: tuple[float, float] | None = None
    public_items: bool = False
    timestamps: np.ndarray | None = None
    name: str = "interactions"
    side: dict = field(default_factory=dict)

    def __post_init__(self):
        m = self.matrix
        if not sp.issparse(m):
            raise TypeError(f"matrix must be a scipy.sparse matrix, got {type(m).__name__}")
        m = sp.csr_matrix(m, dtype=np.float64) if (m.format != "csr" or m.dtype != np.float64) else m
        m.sum_duplicates()
        m.sort_indices()
        self.matrix = m
        self.user_ids = _normalize_ids(self.user_ids, "user_ids")
        self.item_ids = _normalize_ids(self.item_ids, "item_ids")
        if self.user_ids.ndim != 1 or self.item_ids.ndim != 1:
            raise ValueError("user_ids and item_ids must be 1-D")
        if m.shape != (len(self.user_ids), len(self.item_ids)):
            raise ValueError(
                f"matrix shape {m.shape} does not match the vocabularies (n_users, n_items) = "
                f"({len(self.user_ids)}, {len(self.item_ids)}). " + _orientation_hint(m.shape)
            )
        for what, ids in (("user_ids", self.user_ids), ("item_ids", self.item_ids)):
            if len(pd.unique(ids)) != len(ids):
                raise ValueError(f"{what} contains duplicates; raw ids must be unique")
        self.rating_bounds = _check_bounds(self.rating_bounds)
        _validate_ratings(m.data, self.rating_bounds, where="Interactions")
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps)
            if self.timestamps.shape != (m.nnz,):
                raise ValueError(f"timestamps must have one entry per rating ({m.nnz}), got {self.timestamps.shape}")
        self._user_index: dict | None = None
        self._item_index: dict | None = None
        self._dataset_id: str | None = None

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz}, "
            f"rating_bounds={self.rating_bounds}, public_items={self.public_items})"
        )

    def __len__(self) -> int:
        return self.nnz

    # ------------------------------------------------------------------ ids
    @property
    def user_index(self) -> dict:
        """Mapping raw user id → inner row."""
        if self._user_index is None:
            self._user_index = {_key(u): i for i, u in enumerate(self.user_ids.tolist())}
        return self._user_index

    @property
    def item_index(self) -> dict:
        """Mapping raw item id → inner column."""
        if self._item_index is None:
            self._item_index = {_key(v): i for i, v in enumerate(self.item_ids.tolist())}
        return self._item_index

    def user_inner(self, users, *, missing: str = "raise") -> np.ndarray:
        """Inner rows of raw user ids; ``missing="raise"`` or ``"minus1"``."""
        return lookup(self.user_index, users, what="user", missing=missing)

    def item_inner(self, items, *, missing: str = "raise") -> np.ndarray:
        """Inner columns of raw item ids; ``missing="raise"`` or ``"minus1"``."""
        return lookup(self.item_index, items, what="item", missing=missing)

    # ------------------------------------------------------------------ derived
    def with_matrix(self, matrix: sp.csr_matrix, timestamps=None, *, name: str | None = None) -> Interactions:
        """A new Interactions with the same vocabularies and public facts but other ratings (e.g. a split)."""
        out = Interactions(
            matrix,
            self.user_ids,
            self.item_ids,
            rating_bounds=self.rating_bounds,
            public_items=self.public_items,
            timestamps=timestamps,
            name=name or self.name,
            side=self.side,
        )
        out._user_index, out._item_index = self._user_index, self._item_index
        out._dataset_id = self.dataset_id
        return out

    @property
    def dataset_id(self) -> str:
        """Identity of the dataset this data came from: ``name:fingerprint[:16]``.

        Splits and subsets keep the id of their source, so a privacy ledger charges every fit on any part of
        a dataset against that dataset's one budget (conservative: a subset costs at most as much).
        """
        if self._dataset_id is None:
            self._dataset_id = f"{self.name}:{self.fingerprint()[:16]}"
        return self._dataset_id

    def with_dataset_id(self, dataset_id: str) -> Interactions:
        """The same data under an explicit, caller-declared dataset id (e.g. ``"shop-ratings:v-stable"``).

        By default an edited or re-ordered dataset gets a new id (a fingerprint of its content) and so a fresh
        privacy budget. A caller who knows that two versions describe the same people declares one id for both,
        so that one ledger charges every fit on either (see docs/ledger.md); the caller is responsible for that
        claim. The id is used locally (ledger lookup); it is never written to a published file.
        """
        if not isinstance(dataset_id, str) or not dataset_id.strip():
            raise ValueError(f"dataset_id must be a non-empty string, got {dataset_id!r}")
        out = self.with_matrix(self.matrix, self.timestamps)
        out._dataset_id = dataset_id
        return out

    def fingerprint(self) -> str:
        """SHA-256 over the ids, ratings and declared facts: identifies this exact dataset (for ledgers)."""
        h = hashlib.sha256()
        m = self.matrix
        for arr, dtype in ((m.indptr, np.int64), (m.indices, np.int64), (m.data, np.float64)):
            for a in range(0, max(len(arr), 1), _HASH_CHUNK):  # the same bytes as one update, without a full copy
                h.update(np.ascontiguousarray(arr[a : a + _HASH_CHUNK], dtype=dtype).data)
        for ids in (self.user_ids, self.item_ids):
            h.update("\x1f".join(map(str, ids.tolist())).encode())
            h.update(b"\x1e")
        h.update(repr((self.rating_bounds, self.public_items)).encode())
        return h.hexdigest()

    def to_pandas(self) -> pd.DataFrame:
        """Long format: columns ``user``, ``item``, ``rating`` (and ``timestamp`` when present)."""
        coo = self.matrix.tocoo()
        df = pd.DataFrame({"user": self.user_ids[coo.row], "item": self.item_ids[coo.col], "rating": coo.data})
        if self.timestamps is not None:
            df["timestamp"] = self.timestamps  # CSR order equals COO-from-CSR order
        return df

    def to_npz(self, path) -> None:
        """Write the matrix, the id vocabularies and the declared facts to one uncompressed ``.npz`` file.

        Members: ``indptr``, ``indices``, ``data`` (the CSR arrays as stored), ``user_ids``, ``item_ids``,
        ``timestamps`` when present, and ``meta`` (JSON: ``rating_bounds``, ``public_items``, ``name``). The
        members are stored uncompressed so that :meth:`from_npz` can memory-map them. ``side`` data (e.g.
        synthetic ground truth, user attributes) and a declared :meth:`with_dataset_id` are not written; the
        file's data reloads with the same :meth:`fingerprint`.
        """
        arrays = {"indptr": self.matrix.indptr, "indices": self.matrix.indices, "data": self.matrix.data}
        for what, ids in (("user_ids", self.user_ids), ("item_ids", self.item_ids)):
            if ids.dtype.kind == "O":
                raise DataError(
                    f"to_npz: the {what} are Python objects (integers beyond 64 bits or mixed kinds), which an "
                    ".npz file stores only pickled; convert them to strings first"
                )
            arrays[what] = ids
        if self.timestamps is not None:
            arrays["timestamps"] = self.timestamps
        meta = {
            "format": _NPZ_FORMAT,
            "shape": list(self.shape),
            "rating_bounds": list(self.rating_bounds) if self.rating_bounds is not None else None,
            "public_items": bool(self.public_items),
            "name": self.name,
        }
        np.savez(path, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def from_npz(cls, path, *, mmap_mode: str | None = None) -> Interactions:
        """Read a file written by :meth:`to_npz`.

        Parameters
        ----------
        path : str or path-like
        mmap_mode : {None, "r"}
            ``"r"`` memory-maps the CSR arrays and timestamps read-only instead of reading them into memory:
            the operating system pages them in as a fit reads them and may drop them again, so a matrix larger
            than the free memory can be fitted (a model never writes to its input). ``None`` reads them.
        """
        check_choice(mmap_mode, "mmap_mode", (None, "r"))
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"from_npz: {path!s} is not a readable .npz file ({exc})") from None
        with zf:
            names = {n[:-4]: zf.getinfo(n) for n in zf.namelist() if n.endswith(".npy")}
            missing = [n for n in ("meta", *_NPZ_ARRAYS) if n not in names]
            if missing:
                raise DataError(f"from_npz: {path!s} lacks {', '.join(missing)}; write it with Interactions.to_npz")
            with zf.open(names["meta"]) as fh:
                meta = json.loads(str(np.lib.format.read_array(fh, allow_pickle=False)))
            if meta.get("format") != _NPZ_FORMAT:
                raise DataError(f"from_npz: {path!s} has format {meta.get('format')!r}, expected {_NPZ_FORMAT}")
            big = ("indptr", "indices", "data", "timestamps")
            arr = {}
            for n in (*_NPZ_ARRAYS, "timestamps"):
                if n in names:
                    mapped = mmap_mode is not None and n in big
                    arr[n] = _npz_member_memmap(path, zf, names[n]) if mapped else _npz_member(zf, names[n])
        shape = tuple(meta["shape"])
        m = sp.csr_matrix((arr["data"], arr["indices"], arr["indptr"]), shape=shape, copy=False)
        return cls(
            m,
            arr["user_ids"],
            arr["item_ids"],
            rating_bounds=meta["rating_bounds"],
            public_items=meta["public_items"],
            timestamps=arr.get("timestamps"),
            name=meta["name"],
        )

    def user_ratings(self, user) -> tuple[np.ndarray, np.ndarray]:
        """(raw item ids, ratings) of one raw user id."""
        u = int(self.user_inner([user])[0])
        s = slice(self.matrix.indptr[u], self.matrix.indptr[u + 1])
        return self.item_ids[self.matrix.indices[s]], self.matrix.data[s].copy()

    def without_users(self, users) -> Interactions:
        """This data without the given raw users: their rows, their vocabulary entries and (when the item
        vocabulary was derived from the data, ``public_items`` False) the items only they rated, and their rows
        of ``side["users"]`` (user attributes) when present.

        The result equals :meth:`from_pandas` on the long table without those users' rows (same vocabularies,
        same matrix, same timestamps), so a seeded fit on it is bitwise the fit that never saw them. It keeps
        the source's :attr:`dataset_id` (a subset is charged against its dataset's one budget). Unknown ids
        are ignored.
        """
        ids = _coerce_user_ids(users, self.user_ids, what="users")
        drop = np.zeros(self.n_users, dtype=bool)
        rows = self.user_inner(ids, missing="minus1")
        drop[rows[rows >= 0]] = True
        keep = np.flatnonzero(~drop)
        m = self.matrix[keep]
        ts = None
        if self.timestamps is not None:  # CSR order: the kept rows' entries, in order
            entry_row = np.repeat(np.arange(self.n_users), np.diff(self.matrix.indptr))
            ts = self.timestamps[~drop[entry_row]]
        item_ids = self.item_ids
        if not self.public_items:
            used = np.zeros(self.n_items, dtype=bool)
            used[m.indices] = True
            if not used.all():
                remap = np.cumsum(used) - 1
                m = sp.csr_matrix(
                    (m.data, remap[m.indices].astype(m.indices.dtype), m.indptr), shape=(len(keep), int(used.sum()))
                )
                item_ids = item_ids[used]
        side = dict(self.side)
        if isinstance(side.get("users"), pd.DataFrame):  # their attributes (load_dataset's u.user rows) go too
            side["users"] = side["users"].loc[~side["users"].index.isin(ids)]
        out = Interactions(
            m,
            self.user_ids[keep],
            item_ids,
            rating_bounds=self.rating_bounds,
            public_items=self.public_items,
            timestamps=ts,
            name=self.name,
            side=side,
        )
        out._dataset_id = self.dataset_id
        return out

    #: the same as :meth:`without_users` (erasure vocabulary)
    forget = without_users

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_pandas(
        cls,
        df: pd.DataFrame,
        *,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str | None = "rating",
        timestamp_col: str | None = None,
        rating_bounds: tuple[float, float] | None = None,
        item_catalog: Sequence | None = None,
        users: Sequence | None = None,
        duplicates: str = "error",
        name: str = "interactions",
        consent_col: str | None = None,
        opted_out: Sequence | None = None,
    ) -> Interactions:
        """Build from a long table of (user, item[, rating][, timestamp]).

        Parameters
        ----------
        df : pandas.DataFrame
        user_col, item_col, rating_col, timestamp_col : str
            Column names. ``rating_col=None`` means implicit feedback (every row is a 1.0).
        rating_bounds : (lo, hi), optional
            Public bounds of the rating scale. Required by every DP model; ratings outside raise.
        item_catalog : sequence of raw item ids, optional
            The public item catalog. When given, the item vocabulary is exactly this catalog (in this order)
            and an item in ``df`` that is not in it raises. When omitted the vocabulary is the sorted set of
            items in ``df`` and ``public_items`` is False.
        users : sequence of raw user ids, optional
            A fixed user vocabulary (e.g. to keep train and test aligned). Default: sorted users of ``df``.
        duplicates : {"error", "mean", "last", "first", "sum"}
            What to do with repeated (user, item) pairs. ``"last"``/``"first"`` follow ``timestamp_col`` when
            given, else row order. Default ``"error"``.
        consent_col : str, optional
            A column saying, per row, whether the user consents to their data being used for training:
            booleans, or 0/1. A user with **any** row that is not a plain yes (False, 0 or missing) is treated
            as not consenting, and **all** of that user's rows are dropped (consent is never presumed).
        opted_out : sequence of raw user ids, optional
            Users who opted out: all their rows are dropped. Ids of the same kind as the user column
            (integers read from a text file as strings are accepted when every one of them is an integer).
            Ids absent from the table are ignored.

        Notes
        -----
        The whole table is first validated and indexed (its dataset id is needed, below), then the excluded
        users are removed before anything is returned. They never reach the returned Interactions: not their
        ratings, not an empty row in the user vocabulary (they are removed from ``users=`` too), and, without a
        public ``item_catalog``, not an item that only they rated. The result holds exactly what this call returns on
        the table without their rows (same :meth:`fingerprint`, so a seeded fit on it is bitwise the fit
        without them). Its :attr:`dataset_id` is the whole table's (:meth:`without_users`): a privacy ledger
        charges the consenting part against the one budget of the table, whatever the opt-outs (otherwise every
        new opt-out would make a "new" dataset with a fresh budget).
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_pandas needs a pandas DataFrame, got {type(df).__name__}")
        if consent_col is not None or opted_out is not None:
            excluded = _non_consenting(df, user_col=user_col, consent_col=consent_col, opted_out=opted_out)
            full = cls.from_pandas(
                df,
                user_col=user_col,
                item_col=item_col,
                rating_col=rating_col,
                timestamp_col=timestamp_col,
                rating_bounds=rating_bounds,
                item_catalog=item_catalog,
                users=users,
                duplicates=duplicates,
                name=name,
            )
            return full.without_users(excluded) if excluded else full
        check_choice(duplicates, "duplicates", _DUPLICATE_POLICIES)
        needed = [c for c in (user_col, item_col, rating_col, timestamp_col) if c is not None]
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise ValueError(
                f"column(s) {missing} not found; the table has columns {list(df.columns)}. "
                "Pass user_col=, item_col=, rating_col= to name yours."
            )
        if len(df) == 0:
            raise ValueError("the interaction table is empty: nothing to build a recommender from")
        for c in (user_col, item_col):
            if df[c].isna().any():
                row = df.index[df[c].isna().to_numpy()][0]
                raise ValueError(f"column {c!r} has missing ids (first at row {row!r}); drop those rows")
        if rating_col is None:
            ratings = np.ones(len(df))
        else:
            try:
                ratings = pd.to_numeric(df[rating_col], errors="raise").to_numpy(dtype=np.float64)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"column {rating_col!r} must be numeric ratings: {exc}") from None
        bounds = _check_bounds(rating_bounds)
        _validate_ratings(ratings, bounds, where=f"column {rating_col!r}", row_labels=df.index)

        for c in (user_col, item_col):
            if df[c].dtype == object:
                _normalize_ids(df[c].to_numpy(), f"the ids in column {c!r}")  # raises on mixed int/str ids
        u, i = df[user_col].to_numpy(), df[item_col].to_numpy()
        t = df[timestamp_col].to_numpy() if timestamp_col is not None else None
        # Vocabularies and codes straight from the columns: combining duplicates never adds or removes an id
        user_ids = np.sort(pd.unique(u)) if users is None else np.asarray(users)
        public = item_catalog is not None
        item_ids = np.asarray(item_catalog) if public else np.sort(pd.unique(i))
        rows, cols, order = _csr_codes(user_ids, item_ids, u, i, user_col=user_col, item_col=item_col)
        if _has_adjacent_pairs(rows, cols):  # repeated (user, item) pairs: resolve them on the table, re-index
            work = pd.DataFrame({"u": u, "i": i, "r": ratings})
            if t is not None:
                work["t"] = t
            work = _resolve_duplicates(work, duplicates, has_time=t is not None, labels=df.index)
            u, i, ratings = work["u"].to_numpy(), work["i"].to_numpy(), work["r"].to_numpy()
            t = work["t"].to_numpy() if t is not None else None
            rows, cols, order = _csr_codes(user_ids, item_ids, u, i, user_col=user_col, item_col=item_col)
        vals = ratings[order]
        indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(user_ids)), out=indptr[1:])
        m = sp.csr_matrix((vals, cols.astype(np.int32), indptr), shape=(len(user_ids), len(item_ids)))
        ts = t[order] if t is not None else None
        return cls(m, user_ids, item_ids, rating_bounds=bounds, public_items=public, timestamps=ts, name=name)

    @classmethod
    def from_csr(
        cls,
        matrix,
        *,
        user_ids: Sequence | None = None,
        item_ids: Sequence | None = None,
        rating_bounds: tuple[float, float] | None = None,
        public_items: bool = False,
        timestamps=None,
        name: str = "interactions",
    ) -> Interactions:
        """Wrap a user×item sparse matrix. Ids default to ``0..n-1``.

        ``public_items=True`` declares that the columns are a public catalog (e.g. from a product database),
        not derived from the ratings.
        """
        if not sp.issparse(matrix):
            raise TypeError(
                f"from_csr needs a scipy.sparse user×item matrix, got {type(matrix).__name__}; "
                "use Interactions.from_pandas for a table"
            )
        n_users, n_items = matrix.shape
        if user_ids is not None and len(user_ids) != n_users:
            msg = f"user_ids has {len(user_ids)} entries but the matrix has {n_users} rows. "
            if item_ids is None or len(user_ids) == n_items:
                msg += _orientation_hint(matrix.shape)
            raise ValueError(msg)
        if item_ids is not None and len(item_ids) != n_items:
            raise ValueError(
                f"item_ids has {len(item_ids)} entries but the matrix has {n_items} columns. "
                + _orientation_hint(matrix.shape)
            )
        if matrix.nnz == 0:
            raise ValueError("the matrix has no stored ratings: nothing to build a recommender from")
        return cls(
            matrix,
            np.arange(n_users) if user_ids is None else np.asarray(user_ids),
            np.arange(n_items) if item_ids is None else np.asarray(item_ids),
            rating_bounds=rating_bounds,
            public_items=public_items,
            timestamps=timestamps,
            name=name,
        )

    @classmethod
    def read_csv(cls, path, *, sep: str = ",", header="infer", names=None, **kwargs) -> Interactions:
        """Read a ratings file (CSV/TSV) then :meth:`from_pandas` (keyword arguments pass through)."""
        df = pd.read_csv(path, sep=sep, header=header, names=names, engine="python" if len(sep) > 1 else "c")
        kwargs.setdefault("name", os.path.basename(str(path)))
        return cls.from_pandas(df, **kwargs)

    @classmethod
    def read_parquet(cls, path, **kwargs) -> Interactions:
        """Read a Parquet ratings file (needs pyarrow) then :meth:`from_pandas`."""
        df = pd.read_parquet(path)
        kwargs.setdefault("name", os.path.basename(str(path)))
        return cls.from_pandas(df, **kwargs)

    @classmethod
    def read(cls, path, **kwargs) -> Interactions:
        """Read ``.parquet``/``.pq`` with :meth:`read_parquet`, anything else with :meth:`read_csv`."""
        p = str(path).lower()
        if p.endswith((".parquet", ".pq")):
            return cls.read_parquet(path, **kwargs)
        if p.endswith((".tsv", ".data")):
            kwargs.setdefault("sep", "\t")
        return cls.read_csv(path, **kwargs)


def _npz_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _npz_member_memmap(path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """A read-only memory map of one uncompressed ``.npy`` member of a zip file (np.load cannot map npz members).

    The member's bytes start after its local file header (30 bytes, then the file name and the extra field,
    whose lengths the header gives at offsets 26 and 28); the ``.npy`` header follows, then the raw array.
    """
    if info.compress_type != zipfile.ZIP_STORED:
        raise DataError(
            f"from_npz: member {info.filename!r} is compressed and cannot be memory-mapped; use mmap_mode=None"
        )
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        start = (
            info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        )
        fh.seek(start)
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise DataError(f"from_npz: member {info.filename!r} holds Python objects; refusing to unpickle it")
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _coerce_user_ids(users, vocab, *, what: str) -> list:
    """Raw user ids given by a caller (e.g. read from a text file) in the kind of ``vocab``'s ids.

    Strings are accepted for integer ids when every one is an integer; any other mismatch raises a
    :class:`~dprec.errors.DataError` (a silent mismatch would match nobody, and honour no opt-out).
    """
    if isinstance(users, (str, bytes)) or np.ndim(users) == 0:
        raise DataError(f"{what} must be a sequence of raw user ids, got {users!r}")
    vals = [_key(u) for u in np.asarray(list(users), dtype=object).ravel()]
    if not vals:
        return vals
    kinds = _id_kinds(vals)
    vkind = "int" if vocab.dtype.kind in "iu" else "str" if vocab.dtype.kind == "U" else None
    if vkind is None and len(vocab):
        vkind = next(iter(_id_kinds(vocab.tolist()[:1])))
    if vkind == "int" and "str" in kinds and kinds <= {"str", "int"}:
        try:
            return [int(v) for v in vals]
        except ValueError:
            bad = next(v for v in vals if not _is_int_text(v))
            raise DataError(f"{what}: {bad!r} is not an integer, but the user ids are integers") from None
    if vkind is not None and kinds - {vkind}:
        names = {"int": "integer", "str": "string"}
        given = ", ".join(names.get(k, k) for k in sorted(kinds))
        raise DataError(
            f"{what} are {given} ids but the user ids are {names.get(vkind, vkind)}s; give them in the same kind "
            "(an id of another kind matches nobody)"
        )
    return vals


def _is_int_text(v) -> bool:
    try:
        int(v)
        return True
    except (TypeError, ValueError):
        return False


def _non_consenting(df: pd.DataFrame, *, user_col, consent_col, opted_out) -> list:
    """The raw ids of the users of ``df`` who do not consent (``consent_col``) or opted out (see
    :meth:`Interactions.from_pandas`)."""
    if user_col not in df.columns:
        raise ValueError(f"column {user_col!r} not found; the table has columns {list(df.columns)}")
    col = df[user_col]
    excluded = []
    if consent_col is not None:
        if consent_col not in df.columns:
            raise ValueError(f"consent column {consent_col!r} not found; the table has columns {list(df.columns)}")
        c = df[consent_col]
        given = c.notna().to_numpy()
        vals = c[given].tolist()
        if not all(_is_flag(v) for v in vals):
            first = next(v for v in vals if not _is_flag(v))
            raise DataError(
                f"consent column {consent_col!r} must hold booleans or 0/1 (missing means no consent), got {first!r}"
            )
        yes = np.zeros(len(df), dtype=bool)
        yes[np.flatnonzero(given)] = [bool(v == 1) for v in vals]
        excluded.extend(_key(u) for u in pd.unique(col[~yes].dropna()).tolist())
    if opted_out is not None:
        vocab = _normalize_ids(pd.unique(col.dropna()), f"the ids in column {user_col!r}")
        excluded.extend(_coerce_user_ids(opted_out, vocab, what="opted_out"))
    return excluded


def _is_flag(v) -> bool:
    """A consent value: a boolean, or the number 0 or 1."""
    if isinstance(v, (bool, np.bool_)):
        return True
    return isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1)


def _key(x):
    """Hashable normal form of a raw id (numpy scalars → Python scalars)."""
    return x.item() if isinstance(x, np.generic) else x


def lookup(index: dict, ids, *, what: str, missing: str = "raise") -> np.ndarray:
    """Map raw ids to inner positions through ``index``.

    ``missing="raise"`` raises :class:`UnknownIdError` naming the first unknown id; ``"minus1"`` maps it to -1.
    """
    scalar = np.ndim(ids) == 0
    seq = [ids] if scalar else list(np.asarray(ids, dtype=object).ravel())
    out = np.empty(len(seq), dtype=np.int64)
    for n, x in enumerate(seq):
        pos = index.get(_key(x), -1)
        if pos < 0:
            if missing == "raise":
                raise UnknownIdError(f"unknown {what} id {x!r} (not in the {what} vocabulary of {len(index)} ids)")
        out[n] = pos
    return out


def _index_or_raise(vocab: np.ndarray, values: np.ndarray, *, what, source, hint) -> np.ndarray:
    index = pd.Index(vocab)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise ValueError(f"the {what} vocabulary repeats id {dup!r}; raw {what} ids must be unique")
    codes = index.get_indexer(values)
    if (codes < 0).any():
        bad = values[np.flatnonzero(codes < 0)[0]]
        raise UnknownIdError(f"{source} contains {what} id {bad!r} not in the {what} vocabulary; {hint}")
    return codes.astype(np.int64)


def _csr_codes(user_ids, item_ids, u, i, *, user_col, item_col) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inner rows and columns of the raw ids ``u``, ``i``, sorted into CSR order (by row, then column), and
    that order (the permutation of the table's rows)."""
    rows = _index_or_raise(
        user_ids,
        u,
        what="user",
        source=f"column {user_col!r}",
        hint="pass users= containing every user, or drop those rows",
    )
    cols = _index_or_raise(
        item_ids,
        i,
        what="item",
        source=f"column {item_col!r}",
        hint="the public item_catalog must contain every rated item",
    )
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], order


def _has_adjacent_pairs(rows: np.ndarray, cols: np.ndarray) -> bool:
    """Whether sorted (row, column) codes repeat a pair (a repeated pair is adjacent after the sort)."""
    if len(rows) < 2:
        return False
    return bool(np.any((rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1])))


def _resolve_duplicates(work: pd.DataFrame, policy: str, *, has_time: bool, labels) -> pd.DataFrame:
    dup = work.duplicated(["u", "i"], keep=False)
    if not dup.any():
        return work
    if policy == "error":
        first = np.flatnonzero(dup.to_numpy())[:2]
        raise ValueError(
            f"{int(dup.sum())} rows repeat a (user, item) pair, e.g. rows {[labels[j] for j in first]} "
            f"(user {_key(work['u'].iloc[first[0]])!r}, item {_key(work['i'].iloc[first[0]])!r}). "
            'Pass duplicates="mean", "last", "first" or "sum" to combine them.'
        )
    if policy in ("last", "first"):
        w = work.sort_values("t", kind="stable") if has_time else work
        return w.drop_duplicates(["u", "i"], keep=policy)
    agg = {"r": policy}
    if has_time:
        agg["t"] = "max"
    return work.groupby(["u", "i"], sort=False, as_index=False).agg(agg)


def _warn_if_transposed(shape, stacklevel: int = 4) -> None:
    n_rows, n_cols = shape
    if n_rows * TRANSPOSED_RATIO < n_cols:
        warnings.warn(
            f"the matrix has {n_rows} rows (users) and {n_cols} columns (items): far fewer users than items, which "
            "is what an item×user matrix looks like. dprec reads rows as users (the privacy unit of user-level DP). "
            "If rows are items, pass X.T.tocsr() (or user_axis=1 to fit)",
            DataWarning,
            stacklevel=stacklevel,
        )


def as_interactions(
    data,
    *,
    rating_bounds=None,
    what: str = "data",
    user_axis=None,
    require_user_axis: bool = False,
    warn_transposed: bool = False,
) -> Interactions:
    """Accept an :class:`Interactions`, or a raw scipy sparse matrix (wrapped with ids 0..n-1).

    Parameters
    ----------
    user_axis : {0, 1}, optional
        For a raw matrix: the axis that indexes users (0: rows are users, the user×item orientation; 1: columns
        are users, an item×user matrix, transposed here). An :class:`Interactions` is user×item by construction
        (``user_axis`` must then be None or 0).
    require_user_axis : bool
        Refuse a raw matrix without ``user_axis`` (DP fits: the user axis is the privacy unit, so it must be
        declared, never guessed).
    warn_transposed : bool
        Warn (:class:`~dprec.errors.DataWarning`) when a raw matrix without ``user_axis`` has fewer than
        1/:data:`TRANSPOSED_RATIO` as many rows as columns (``fit`` sets it; a batch of new users in
        ``fold_in_many`` is legitimately short).
    """
    if user_axis is not None and (isinstance(user_axis, bool) or user_axis not in (0, 1)):
        raise ConfigError(f"user_axis must be 0 (rows are users) or 1 (columns are users), got {user_axis!r}")
    if isinstance(data, Interactions):
        if user_axis == 1:
            raise DataError(
                "user_axis=1 was given with an Interactions, which is always user×item (rows are users); "
                "drop user_axis, or build the Interactions from the transposed matrix"
            )
        return data
    if sp.issparse(data):
        if user_axis is None and require_user_axis:
            raise DataError(
                f"{what} is a raw {type(data).__name__} of shape {data.shape}: declare which axis holds the users, "
                "user_axis=0 (rows are users) or user_axis=1 (columns are users), or pass a dprec.Interactions. "
                "Under user-level DP the user is the privacy unit, so a transposed matrix would protect items, "
                "not people"
            )
        if user_axis == 1:
            data = data.T
        data = data.tocsr()
        if user_axis is None and warn_transposed:
            _warn_if_transposed(data.shape)
        return Interactions.from_csr(data, user_ids=np.arange(data.shape[0]), rating_bounds=rating_bounds)
    hint = (
        " (a dense numpy matrix: wrap it with scipy.sparse.csr_matrix(X), whose stored entries are its nonzeros)"
        if isinstance(data, np.ndarray)
        else ""
    )
    raise TypeError(
        f"{what} must be a dprec.Interactions or a user×item scipy.sparse.csr_matrix, got {type(data).__name__}" + hint
    )
