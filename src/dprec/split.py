"""Seeded train/test splits of :class:`~dprec.data.Interactions`.

Every split returns ``(train, test)``: two :class:`~dprec.data.Interactions` with the **same** user and
item vocabularies, rating bounds, public-catalog flag, name and side tables as the input (built with
:meth:`Interactions.with_matrix`), so inner ids agree between them. Each stored rating of the input lands
in exactly one of the two; timestamps travel with their ratings.

The evaluation conventions of ``docs/conventions.md`` ("Evaluation") are::

    train, test = random_split(data, 0.2, rng=0)   # explicit ratings: RMSE / MAE
    train, test = user_holdout(data, 0.2, rng=0)   # top-N: per-user 20% holdout

Privacy note: a split is a pre-processing step on private data done by the experimenter; nothing about
it is released. Models trained on ``train`` are accounted as usual; the user vocabulary is shared so that
the privacy unit (one user with all their ratings) is the same in both parts.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._rng import as_generator
from ._validation import check_fraction, check_int
from .data import Interactions

__all__ = ["random_split", "user_holdout", "temporal_split", "leave_k_out"]


# --------------------------------------------------------------------------- helpers
def _check_data(data) -> Interactions:
    if not isinstance(data, Interactions):
        raise TypeError(
            f"data must be a dprec.Interactions, got {type(data).__name__}; "
            "build one with Interactions.from_pandas or Interactions.from_csr"
        )
    if data.nnz == 0:
        raise ValueError("data has no ratings: nothing to split")
    return data


def _row_of_entry(m: sp.csr_matrix) -> np.ndarray:
    """Row (inner user) of each stored entry, in CSR order."""
    return np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))


def _take(data: Interactions, mask: np.ndarray, rows: np.ndarray) -> Interactions:
    """Sub-Interactions holding the stored entries where ``mask`` is True (CSR order is preserved)."""
    m = data.matrix
    counts = np.bincount(rows[mask], minlength=m.shape[0])
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    sub = sp.csr_matrix((m.data[mask], m.indices[mask], indptr), shape=m.shape)
    ts = None if data.timestamps is None else data.timestamps[mask]
    return data.with_matrix(sub, ts)


def _finish(data: Interactions, test_mask: np.ndarray, rows: np.ndarray, *, what: str):
    n_test = int(test_mask.sum())
    if n_test == 0:
        raise ValueError(
            f"{what} put no rating in the test set ({data.nnz} ratings, {data.n_users} users); "
            "use a larger test fraction or more data"
        )
    if n_test == data.nnz:
        raise ValueError(f"{what} put every rating in the test set; use a smaller test fraction or cutoff")
    return _take(data, ~test_mask, rows), _take(data, test_mask, rows)


def _rank_within_rows(rows: np.ndarray, key: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Rank (0 = smallest ``key``) of every stored entry among the entries of its row."""
    order = np.lexsort((key, rows))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows), dtype=np.int64) - indptr[rows[order]]
    return rank


# --------------------------------------------------------------------------- splits
def random_split(data: Interactions, test_fraction: float = 0.2, *, rng) -> tuple[Interactions, Interactions]:
    """Split the ratings uniformly at random.

    Exactly ``round(test_fraction * nnz)`` ratings (at least 1, at most ``nnz - 1``) go to the test set,
    chosen uniformly without replacement. A user may end up with no training ratings; use
    :func:`user_holdout` when every user must stay in training.

    Parameters
    ----------
    data : Interactions
        The ratings to split.
    test_fraction : float, default 0.2
        Fraction of ratings held out, in (0, 1).
    rng : int, numpy.random.Generator, SeedSequence or None
        Randomness (keyword-only, required so that splits are reproducible by default; ``None`` draws
        fresh OS entropy).

    Returns
    -------
    train, test : Interactions
        Same vocabularies as ``data``; disjoint; their union is ``data``.
    """
    data = _check_data(data)
    f = check_fraction(test_fraction, "test_fraction")
    gen = as_generator(rng)
    nnz = data.nnz
    if nnz < 2:
        raise ValueError(f"random_split needs at least 2 ratings, got {nnz}")
    n_test = min(max(int(np.floor(f * nnz + 0.5)), 1), nnz - 1)
    mask = np.zeros(nnz, dtype=bool)
    mask[gen.choice(nnz, size=n_test, replace=False)] = True
    return _finish(data, mask, _row_of_entry(data.matrix), what="random_split")


def user_holdout(
    data: Interactions, test_fraction: float = 0.2, *, rng, min_train: int = 1
) -> tuple[Interactions, Interactions]:
    """Per-user holdout: each user keeps most of their items in train and holds out a fraction.

    For a user with ``n`` ratings, ``min(round(test_fraction * n), n - min_train)`` of them (never
    negative), chosen uniformly at random, go to the test set (``round`` rounds halves up). Users with
    ``n <= min_train`` stay entirely in train. This is the top-N protocol of ``docs/conventions.md``
    (``test_fraction=0.2, rng=0``).

    Parameters
    ----------
    data : Interactions
        The ratings to split.
    test_fraction : float, default 0.2
        Fraction of each user's ratings held out, in (0, 1).
    rng : int, numpy.random.Generator, SeedSequence or None
        Randomness (keyword-only, required).
    min_train : int, default 1
        Minimum number of ratings each user keeps in train (>= 0).

    Returns
    -------
    train, test : Interactions
        Same vocabularies as ``data``; disjoint; their union is ``data``.
    """
    data = _check_data(data)
    f = check_fraction(test_fraction, "test_fraction")
    min_train = check_int(min_train, "min_train")
    gen = as_generator(rng)
    m = data.matrix
    n_u = np.diff(m.indptr).astype(np.int64)
    n_test_u = np.floor(f * n_u + 0.5).astype(np.int64)
    n_test_u = np.clip(np.minimum(n_test_u, n_u - min_train), 0, None)
    rows = _row_of_entry(m)
    rank = _rank_within_rows(rows, gen.random(m.nnz), m.indptr)
    mask = rank < n_test_u[rows]
    return _finish(data, mask, rows, what="user_holdout")


def temporal_split(
    data: Interactions, test_fraction: float | None = None, *, cutoff=None
) -> tuple[Interactions, Interactions]:
    """Global time cut: ratings before the cut train, ratings at or after it test.

    Give either ``test_fraction`` (default 0.2 when neither is given) or ``cutoff``. With a fraction, the
    cut is the timestamp ``t`` such that the latest ``round(test_fraction * nnz)`` ratings have time
    ``>= t``; ratings sharing the cut timestamp all go to test, so the realised fraction can be slightly
    larger. Deterministic: no randomness.

    Parameters
    ----------
    data : Interactions
        Ratings with timestamps (``data.timestamps`` must not be ``None``).
    test_fraction : float, optional
        Fraction of ratings (the latest ones) held out, in (0, 1).
    cutoff : scalar, optional
        A timestamp comparable with ``data.timestamps`` (e.g. Unix seconds for MovieLens). Ratings with
        ``timestamp >= cutoff`` go to test.

    Returns
    -------
    train, test : Interactions
        Same vocabularies as ``data``; every train timestamp is ``< cutoff`` <= every test timestamp.
    """
    data = _check_data(data)
    if data.timestamps is None:
        raise ValueError(
            "temporal_split needs timestamps, but this Interactions has none; build it with "
            "Interactions.from_pandas(..., timestamp_col=...) or use random_split / user_holdout"
        )
    ts = data.timestamps
    if cutoff is not None and test_fraction is not None:
        raise ValueError("give either test_fraction or cutoff to temporal_split, not both")
    if cutoff is None:
        f = check_fraction(0.2 if test_fraction is None else test_fraction, "test_fraction")
        n_test = min(max(int(np.floor(f * data.nnz + 0.5)), 1), data.nnz)
        cut = np.partition(ts, data.nnz - n_test)[data.nnz - n_test]
        mask = np.asarray(ts >= cut)
    else:
        try:
            cut = np.asarray(cutoff).astype(ts.dtype) if ts.dtype.kind == "M" else cutoff
            mask = np.asarray(ts >= cut, dtype=bool)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"cutoff {cutoff!r} cannot be compared with timestamps of dtype {ts.dtype}: {exc}"
            ) from None
        if mask.shape != ts.shape:
            raise TypeError(f"cutoff must be a single timestamp, got {cutoff!r}")
    return _finish(data, mask, _row_of_entry(data.matrix), what=f"temporal_split (cutoff {cut!r})")


def leave_k_out(
    data: Interactions, k: int = 1, *, rng=None, by: str = "random", min_train: int = 1
) -> tuple[Interactions, Interactions]:
    """Hold out ``k`` ratings of every user who has more than ``k + min_train - 1`` ratings.

    Parameters
    ----------
    data : Interactions
        The ratings to split.
    k : int, default 1
        Ratings held out per user (>= 1).
    rng : int, numpy.random.Generator, SeedSequence or None
        Randomness for ``by="random"``. ``None`` (the default) draws fresh OS entropy and is not
        reproducible; pass a seed for experiments. Unused by ``by="time"``.
    by : {"random", "time"}
        ``"random"``: ``k`` ratings chosen uniformly. ``"time"``: each user's ``k`` latest ratings
        (needs timestamps; ties are broken by the larger inner item id, deterministically).
    min_train : int, default 1
        Users with fewer than ``k + min_train`` ratings stay entirely in train.

    Returns
    -------
    train, test : Interactions
        Same vocabularies as ``data``; disjoint; their union is ``data``.
    """
    data = _check_data(data)
    k = check_int(k, "k", minimum=1)
    min_train = check_int(min_train, "min_train")
    if by not in ("random", "time"):
        raise ValueError(f'by must be "random" or "time", got {by!r}')
    m = data.matrix
    rows = _row_of_entry(m)
    n_u = np.diff(m.indptr)
    eligible = n_u >= k + min_train
    if by == "random":
        key = as_generator(rng).random(m.nnz)
    else:
        if data.timestamps is None:
            raise ValueError(
                'leave_k_out(by="time") needs timestamps, but this Interactions has none; '
                'use by="random" or build it with timestamp_col='
            )
        # latest first: sort descending by time, then by descending inner item id
        order = np.lexsort((-m.indices.astype(np.int64), _descending_key(data.timestamps), rows))
        key = np.empty(m.nnz, dtype=np.int64)
        key[order] = np.arange(m.nnz)
    rank = _rank_within_rows(rows, key, m.indptr)
    mask = (rank < k) & eligible[rows]
    return _finish(data, mask, rows, what=f"leave_k_out(k={k})")


def _descending_key(ts: np.ndarray) -> np.ndarray:
    """A key whose ascending order is the descending order of ``ts`` (any sortable dtype)."""
    ranks = np.unique(ts, return_inverse=True)[1].reshape(-1)
    return -ranks.astype(np.int64)
