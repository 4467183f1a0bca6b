"""Seeded train/test splits of :class:`~dprec.data.Interactions`.

Every split returns ``(train, test)``: two :class:`~dprec.data.Interactions` with the **same** user and
item vocabularies, rating bounds, public-catalog flag, name and side tables as the input (built with
:meth:`Interactions.with_matrix`), so inner ids agree between them. Each stored rating of the input lands
in exactly one of the two; timestamps travel with their ratings.

The evaluation conventions of ``docs/conventions.md`` ("Evaluation") are::

    train, test = random_split(data, 0.2, rng=0)   # explicit ratings: RMSE / MAE
    train, test = user_holdout(data, 0.2, rng=0)   # top-N: per-user 20% holdout
    s = strong_generalization(data, n_heldout_users=10_000, rng=0)   # top-N: held-out *users* (Liang et al.)

:func:`strong_generalization` is the exception to the shared-vocabulary rule: its training part drops the
held-out users (they are new to a model fitted on it) and its history/target parts hold only them.

Privacy note: a split is a pre-processing step on private data done by the experimenter; nothing about
it is released. Models trained on ``train`` are accounted as usual; the user vocabulary is shared so that
the privacy unit (one user with all their ratings) is the same in both parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._rng import as_generator
from ._validation import check_fraction, check_int
from .data import Interactions

__all__ = [
    "random_split",
    "user_holdout",
    "temporal_split",
    "leave_k_out",
    "binarize",
    "StrongSplit",
    "strong_generalization",
]


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


# --------------------------------------------------------------------------- strong generalisation
def _rows_subset(data: Interactions, rows: np.ndarray, *, name: str) -> Interactions:
    """The users ``rows`` (inner ids, in that order) of ``data`` with all their ratings; same item vocabulary."""
    m = data.matrix
    rows = np.asarray(rows, dtype=np.int64)
    sub = m[rows]
    ts = None
    if data.timestamps is not None:
        lens = (m.indptr[rows + 1] - m.indptr[rows]).astype(np.int64)
        before = np.concatenate(([0], np.cumsum(lens)[:-1])) if len(rows) else np.zeros(0, np.int64)
        idx = np.repeat(m.indptr[rows].astype(np.int64) - before, lens) + np.arange(int(lens.sum()))
        ts = data.timestamps[idx]
    out = Interactions(
        sub,
        data.user_ids[rows],
        data.item_ids,
        rating_bounds=data.rating_bounds,
        public_items=data.public_items,
        timestamps=ts,
        name=name,
        side=data.side,
    )
    out._item_index = data._item_index
    out._dataset_id = data.dataset_id  # a subset is charged against its source's budget
    return out


def binarize(data: Interactions, threshold: float) -> Interactions:
    """Keep the ratings ``> threshold`` as positives (value 1.0) and drop the others.

    ``r_ui > threshold`` ⇒ ``x_ui = 1``; ``r_ui <= threshold`` ⇒ no entry. Vocabularies (users left without
    positives keep an empty row), timestamps of the kept entries, name and side tables travel; the declared
    rating bounds become ``(0.0, 1.0)`` (binary implicit feedback). The DP-ALS paper's ML-20M protocol (after
    Liang et al. 2018) uses ``threshold=3.5``: ratings of 4 and above are positives.
    """
    data = _check_data(data)
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"threshold must be a number, got {threshold!r}") from None
    if not np.isfinite(t):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    m = data.matrix
    keep = m.data > t
    if not keep.any():
        raise ValueError(f"binarize: no rating is > {t} ({data.nnz} ratings); lower the threshold")
    rows = _row_of_entry(m)
    counts = np.bincount(rows[keep], minlength=m.shape[0])
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    sub = sp.csr_matrix((np.ones(int(keep.sum())), m.indices[keep], indptr), shape=m.shape)
    out = Interactions(
        sub,
        data.user_ids,
        data.item_ids,
        rating_bounds=(0.0, 1.0),
        public_items=data.public_items,
        timestamps=None if data.timestamps is None else data.timestamps[keep],
        name=data.name,
        side=data.side,
    )
    out._user_index, out._item_index = data._user_index, data._item_index
    out._dataset_id = data.dataset_id
    return out


@dataclass
class StrongSplit:
    """A strong-generalisation split (:func:`strong_generalization`).

    ``train`` holds every user except the held-out ones (their rows are gone from its user vocabulary, so a
    model fitted on it has never seen them); ``history`` and ``targets`` hold the test users (same user
    order, same item vocabulary as ``train``); ``val_history`` / ``val_targets`` the validation users (empty
    vocabularies when there are none). For every held-out user, history ∪ targets is that user's (positive)
    items and the two are disjoint.
    """

    train: Interactions
    history: Interactions
    targets: Interactions
    val_history: Interactions
    val_targets: Interactions
    history_fraction: float
    positive_threshold: float | None

    @property
    def heldout_users(self) -> np.ndarray:
        """Raw ids of the test users."""
        return self.history.user_ids

    @property
    def validation_users(self) -> np.ndarray:
        """Raw ids of the validation users."""
        return self.val_history.user_ids


def _count(value, n_eligible: int, what: str) -> int:
    """A number of users given as an int (exact) or a float fraction in (0, 1) of the eligible users."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{what} must be an int or a fraction in (0, 1), got {value!r}")
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise ValueError(f"{what} must be >= 0, got {value}")
        return int(value)
    f = check_fraction(value, what)
    return max(int(np.floor(f * n_eligible + 0.5)), 1)


def strong_generalization(
    data: Interactions,
    *,
    n_heldout_users=None,
    heldout_fraction: float | None = None,
    n_validation_users=0,
    history_fraction: float = 0.8,
    rng,
    min_ratings: int = 2,
    positive_threshold: float | None = None,
) -> StrongSplit:
    """Strong generalisation (Liang et al. 2018, "Variational autoencoders for collaborative filtering"):
    hold out whole *users*; each held-out user's items split into a folded-in history and targets.

    1. With ``positive_threshold`` set, ``data = binarize(data, positive_threshold)`` first (ratings
       ``> threshold`` become positives with value 1, the rest are dropped).
    2. Users with at least ``min_ratings`` (positive) ratings are *eligible*. A seeded uniform permutation of
       them gives the first ``n_val`` as validation users and the next ``n_test`` as test users, where each
       count is an int, or a fraction ``f`` of the ``E`` eligible users giving ``max(round(f · E), 1)``
       (``round`` rounds halves up). ``n_val + n_test`` must be below the number of users with ratings, so
       that ``train`` keeps someone.
    3. ``train`` is every other user with all their ratings (the held-out users leave its user vocabulary).
    4. A held-out user with ``n`` items puts ``t = clip(round((1 − history_fraction) · n), 1, n − 1)`` of them,
       uniformly at random, in ``targets`` and the other ``n − t`` in ``history`` (both non-empty).

    Under joint DP the model is trained on ``train`` only; serving a held-out user folds in that user's
    history from the released item side (no privacy cost) and ranks the catalog without the history items:
    :func:`dprec.metrics.evaluate_strong`. The DP-ALS paper's ML-20M protocol is ``positive_threshold=3.5,
    n_validation_users=10_000, n_heldout_users=10_000, history_fraction=0.8``.

    Parameters
    ----------
    data : Interactions
    n_heldout_users : int or float, optional
        Test users: a count or a fraction of the eligible users. Give this or ``heldout_fraction``.
    heldout_fraction : float, optional
        Same as a float ``n_heldout_users``.
    n_validation_users : int or float, default 0
        Validation users (also removed from ``train``; evaluated with ``evaluate_strong(on="validation")``).
    history_fraction : float, default 0.8
        Fraction of each held-out user's items folded in, in (0, 1).
    rng : int, numpy.random.Generator, SeedSequence or None
        Randomness (keyword-only, required).
    min_ratings : int, default 2
        Minimum (positive) ratings of an eligible user (>= 2, so history and targets are both non-empty).
    positive_threshold : float, optional
        Binarise first (see :func:`binarize`).

    Returns
    -------
    StrongSplit
    """
    data = _check_data(data)
    if (n_heldout_users is None) == (heldout_fraction is None):
        raise ValueError("give exactly one of n_heldout_users and heldout_fraction to strong_generalization")
    if heldout_fraction is not None:
        heldout_fraction = check_fraction(heldout_fraction, "heldout_fraction")
    h = check_fraction(history_fraction, "history_fraction")
    min_ratings = check_int(min_ratings, "min_ratings", minimum=2)
    gen = as_generator(rng)
    if positive_threshold is not None:
        data = binarize(data, positive_threshold)
    m = data.matrix
    n_u = np.diff(m.indptr).astype(np.int64)
    eligible = np.flatnonzero(n_u >= min_ratings)
    E = len(eligible)
    n_test = _count(n_heldout_users if heldout_fraction is None else heldout_fraction, E, "n_heldout_users")
    n_val = _count(n_validation_users, E, "n_validation_users")
    if n_test < 1:
        raise ValueError("n_heldout_users must be >= 1")
    with_ratings = int((n_u > 0).sum())
    if n_val + n_test > E or n_val + n_test >= with_ratings:
        raise ValueError(
            f"strong_generalization: {n_val} validation + {n_test} test users requested, but only {E} users have "
            f">= {min_ratings} ratings (and {with_ratings} have any; train must keep at least one); "
            "hold out fewer users or lower min_ratings"
        )
    perm = eligible[gen.permutation(E)]
    val_rows, test_rows = perm[:n_val], perm[n_val : n_val + n_test]
    held = np.zeros(m.shape[0], dtype=bool)
    held[perm[: n_val + n_test]] = True
    train = _rows_subset(data, np.flatnonzero(~held), name=data.name)

    def parts(sel_rows, suffix):
        # t_u = clip(round((1 - h) n_u), 1, n_u - 1) targets per user, chosen by a random rank within the row
        sub = _rows_subset(data, sel_rows, name=data.name)
        sm = sub.matrix
        n = np.diff(sm.indptr).astype(np.int64)
        n_tgt = np.clip(np.floor((1.0 - h) * n + 0.5).astype(np.int64), 1, n - 1)
        r = _row_of_entry(sm)
        rank = _rank_within_rows(r, gen.random(sm.nnz), sm.indptr)
        tgt = rank < n_tgt[r]
        hist, targets = _take(sub, ~tgt, r), _take(sub, tgt, r)
        hist.name, targets.name = f"{data.name}:{suffix}history", f"{data.name}:{suffix}targets"
        return hist, targets

    history, targets = parts(test_rows, "")
    val_history, val_targets = parts(val_rows, "val_")
    return StrongSplit(
        train=train,
        history=history,
        targets=targets,
        val_history=val_history,
        val_targets=val_targets,
        history_fraction=h,
        positive_threshold=None if positive_threshold is None else float(positive_threshold),
    )
