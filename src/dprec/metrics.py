"""Accuracy metrics: rating error (RMSE, MAE) and top-k ranking quality (precision, recall, NDCG, MAP, …).

Conventions (docs/conventions.md, "Evaluation")
-----------------------
*Rating error* is computed on held-out ratings (a random 80/20 split of ratings, seed 0).

*Ranking* metrics are per user, then averaged over the users that have **at least one test item**
(users without test items are excluded, not counted as zeros). The ranked list of user ``u`` is a row of a
``topk`` matrix of **inner item ids** (columns of the test matrix), best first, padded with ``-1`` where
the model had fewer than ``k`` candidates; a padding slot is simply not a hit. The relevant items of ``u``
are the stored entries of row ``u`` of the user×item ``test`` matrix (binary relevance: every held-out
item counts, whatever its rating). Items the user rated in training are excluded from the ranking before
the top ``k`` are taken (``filter_seen=True`` in :func:`evaluate`).

With ``rel_u(j) ∈ {0, 1}`` the relevance of the item at rank ``j = 1..k``, ``T_u`` the user's test items,
``hits_u = Σ_{j≤k} rel_u(j)`` and ``m_u = min(k, |T_u|)``:

====================  =======================================================================
precision@k           ``hits_u / k``
recall@k              ``hits_u / m_u``
NDCG@k                ``DCG_u / IDCG_u``, ``DCG_u = Σ_{j≤k} rel_u(j) / log2(j + 1)``,
                      ``IDCG_u = Σ_{j≤m_u} 1 / log2(j + 1)``
MAP@k (AP@k)          ``Σ_{j≤k} P_u@j · rel_u(j) / m_u`` with ``P_u@j = (Σ_{i≤j} rel_u(i)) / j``
hit rate@k            ``1[hits_u > 0]``
catalog coverage      ``|⋃_u topk_u| / n_items`` (over all rows given, padding ignored)
====================  =======================================================================

Two top-N protocols (``docs/conventions.md``): the per-user holdout (:func:`evaluate` on a
:func:`~dprec.split.user_holdout` split) and strong generalisation (:func:`evaluate_strong` on a
:func:`~dprec.split.strong_generalization` split: held-out users' histories are folded in, their targets are
the test items). Both report ``recall_at_20`` beside the @k metrics.

The core functions take ``(topk, test)`` arrays so that they can be checked exactly by hand; :func:`evaluate`
runs a fitted model over a train/test split and returns all of them at once.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp

from ._validation import check_int
from .errors import DataWarning, NotFittedError, RankingWarning

__all__ = [
    "rmse",
    "mae",
    "precision_at_k",
    "recall_at_k",
    "ndcg_at_k",
    "map_at_k",
    "hit_rate_at_k",
    "catalog_coverage",
    "ranking_metrics",
    "evaluate",
    "evaluate_strong",
]


# ---------------------------------------------------------------------------------------------- rating error
def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if np.shape(y_true) != np.shape(y_pred):
        raise ValueError(f"y_true and y_pred must have the same shape, got {np.shape(y_true)} and {np.shape(y_pred)}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty: there are no ratings to compare")
    for name, a in (("y_true", t), ("y_pred", p)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first at position "
                f"{int(np.flatnonzero(bad)[0])})"
            )
    return t, p


def rmse(y_true, y_pred) -> float:
    r"""Root mean squared error.

    .. math:: \mathrm{RMSE} = \sqrt{\frac{1}{n}\sum_{i=1}^{n} (\hat r_i - r_i)^2}

    Parameters
    ----------
    y_true, y_pred : array-like of the same shape
        Observed and predicted ratings (finite, at least one).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        on shape mismatch, empty input, NaN or infinite values.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(y_true, y_pred) -> float:
    r"""Mean absolute error.

    .. math:: \mathrm{MAE} = \frac{1}{n}\sum_{i=1}^{n} |\hat r_i - r_i|

    Parameters and errors as :func:`rmse`.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


# ---------------------------------------------------------------------------------------------- ranking core
def _as_test_csr(test) -> sp.csr_matrix:
    from .data import Interactions

    if isinstance(test, Interactions):
        test = test.matrix
    if not sp.issparse(test):
        raise TypeError(f"test must be a user×item scipy.sparse matrix (or Interactions), got {type(test).__name__}")
    m = sp.csr_matrix(test, copy=True)
    m.sum_duplicates()  # also sorts indices
    return m


def _relevance(topk, test, k=None):
    """Validated relevance matrix ``rel`` (bool, shape (n_users, k)) and test-set sizes ``|T_u|``."""
    m = _as_test_csr(test)
    n_users, n_items = m.shape
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be a 2-D array of inner item ids, shape (n_users, k); got ndim={topk.ndim}")
    if topk.size and topk.dtype.kind not in "iu":
        if topk.dtype.kind == "f" and np.all(np.isfinite(topk)) and np.all(topk == np.round(topk)):
            topk = topk.astype(np.int64)
        else:
            raise ValueError(f"topk must hold integer inner item ids (-1 for padding), got dtype {topk.dtype}")
    topk = topk.astype(np.int64, copy=False)
    if topk.shape[0] != n_users:
        raise ValueError(
            f"topk has {topk.shape[0]} rows but test has {n_users} users: row u of topk must rank items for "
            f"row u of the user×item test matrix of shape (n_users, n_items) = {m.shape}"
        )
    if k is not None:
        k = check_int(k, "k", minimum=1)
        if k > topk.shape[1]:
            raise ValueError(f"k={k} exceeds the {topk.shape[1]} columns of topk; recommend at least k items")
        topk = topk[:, :k]
    if topk.shape[1] == 0:
        raise ValueError("topk has no columns (k = 0): nothing to evaluate")
    if topk.size and (topk.min() < -1 or topk.max() >= n_items):
        raise ValueError(
            f"topk contains ids outside [-1, {n_items}): use inner item ids (columns of test), -1 = padding"
        )
    if topk.shape[1] > 1:
        s = np.sort(topk, axis=1)
        dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
        if dup.any():
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            raise ValueError(f"topk row {row} lists the same item twice; a ranked list must not repeat items")
    n_test = np.diff(m.indptr).astype(np.int64)
    # Look up (user, item) pairs with one searchsorted over sorted linear keys u * n_items + i.
    test_keys = np.repeat(np.arange(n_users, dtype=np.int64), n_test) * n_items + m.indices.astype(np.int64)
    keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + topk
    if test_keys.size:
        pos = np.minimum(np.searchsorted(test_keys, keys), test_keys.size - 1)
        rel = (test_keys[pos] == keys) & (topk >= 0)
    else:
        rel = np.zeros(topk.shape, dtype=bool)
    return rel, n_test


def _reduce(per_user: np.ndarray, n_test: np.ndarray, return_per_user: bool):
    if return_per_user:
        out = per_user.astype(np.float64)
        out[n_test == 0] = np.nan
        return out
    mask = n_test > 0
    return float(per_user[mask].mean()) if mask.any() else math.nan


def _per_user_all(rel: np.ndarray, n_test: np.ndarray) -> dict[str, np.ndarray]:
    k = rel.shape[1]
    hits = rel.sum(axis=1).astype(np.float64)
    m_u = np.minimum(k, n_test)
    denom = np.maximum(m_u, 1).astype(np.float64)  # users with no test item are masked later
    disc = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = rel @ disc
    idcg = np.concatenate([[1.0], np.cumsum(disc)])[m_u]  # m_u = 0 → dummy 1.0 (masked later)
    prec_at_j = np.cumsum(rel, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    ap = (prec_at_j * rel).sum(axis=1) / denom
    return {
        "precision_at_k": hits / k,
        "recall_at_k": hits / denom,
        "ndcg_at_k": dcg / idcg,
        "map_at_k": ap,
        "hit_rate_at_k": (hits > 0).astype(np.float64),
    }


_DOC_PARAMS = """
    Parameters
    ----------
    topk : int array, shape (n_users, k)
        Row ``u`` lists inner item ids (columns of ``test``) recommended to user ``u``, best first; ``-1``
        marks padding (fewer than ``k`` candidates). Items must not repeat within a row.
    test : scipy.sparse matrix or Interactions, shape (n_users, n_items)
        Held-out interactions; every stored entry of row ``u`` is a relevant item of user ``u``.
    k : int, optional
        Use only the first ``k`` columns of ``topk`` (default: all of them).
    per_user : bool, default False
        Return the per-user values (``NaN`` for users without test items) instead of their mean.

    Returns
    -------
    float
        Mean over users with at least one test item (``NaN`` if there are none), or an array of shape
        ``(n_users,)`` when ``per_user=True``.
"""


def _with_params(fn):
    fn.__doc__ = (fn.__doc__ or "") + _DOC_PARAMS
    return fn


@_with_params
def precision_at_k(topk, test, *, k=None, per_user: bool = False):
    r"""Precision@k: the fraction of the ``k`` recommended slots that hold a test item.

    .. math:: P_u@k = \frac{\mathrm{hits}_u}{k}, \qquad \mathrm{hits}_u = \sum_{j=1}^{k} \mathrm{rel}_u(j)

    The denominator is ``k`` even when the user has fewer than ``k`` test items or the list is padded.
    """
    rel, n_test = _relevance(topk, test, k)
    return _reduce(rel.sum(axis=1) / rel.shape[1], n_test, per_user)


@_with_params
def recall_at_k(topk, test, *, k=None, per_user: bool = False):
    r"""Recall@k, normalised so that a perfect list scores 1 even when ``|T_u| > k``.

    .. math:: R_u@k = \frac{\mathrm{hits}_u}{\min(k, |T_u|)}
    """
    rel, n_test = _relevance(topk, test, k)
    return _reduce(_per_user_all(rel, n_test)["recall_at_k"], n_test, per_user)


@_with_params
def ndcg_at_k(topk, test, *, k=None, per_user: bool = False):
    r"""Normalised discounted cumulative gain with binary gains and a log2 discount.

    .. math::
        \mathrm{DCG}_u@k = \sum_{j=1}^{k} \frac{\mathrm{rel}_u(j)}{\log_2(j+1)}, \qquad
        \mathrm{IDCG}_u@k = \sum_{j=1}^{\min(k, |T_u|)} \frac{1}{\log_2(j+1)}, \qquad
        \mathrm{NDCG}_u@k = \frac{\mathrm{DCG}_u@k}{\mathrm{IDCG}_u@k}
    """
    rel, n_test = _relevance(topk, test, k)
    return _reduce(_per_user_all(rel, n_test)["ndcg_at_k"], n_test, per_user)


@_with_params
def map_at_k(topk, test, *, k=None, per_user: bool = False):
    r"""Mean average precision at k.

    .. math::
        \mathrm{AP}_u@k = \frac{1}{\min(k, |T_u|)} \sum_{j=1}^{k} P_u@j \cdot \mathrm{rel}_u(j)

    and MAP@k is the mean of ``AP_u@k`` over users with test items.
    """
    rel, n_test = _relevance(topk, test, k)
    return _reduce(_per_user_all(rel, n_test)["map_at_k"], n_test, per_user)


@_with_params
def hit_rate_at_k(topk, test, *, k=None, per_user: bool = False):
    r"""Hit rate at k: whether at least one test item is among the top ``k``.

    .. math:: \mathrm{HR}_u@k = \mathbb{1}[\mathrm{hits}_u > 0]
    """
    rel, n_test = _relevance(topk, test, k)
    return _reduce(rel.any(axis=1).astype(np.float64), n_test, per_user)


def ranking_metrics(topk, test, *, k=None) -> dict[str, float]:
    """All per-user ranking metrics at once (one relevance lookup), averaged over users with test items.

    Parameters are those of :func:`precision_at_k`. Returns a dict with keys ``precision_at_k``,
    ``recall_at_k``, ``ndcg_at_k``, ``map_at_k``, ``hit_rate_at_k`` and ``n_users_evaluated`` (the number of
    rows of ``test`` with at least one stored entry).
    """
    rel, n_test = _relevance(topk, test, k)
    out = {name: _reduce(v, n_test, False) for name, v in _per_user_all(rel, n_test).items()}
    out["n_users_evaluated"] = int((n_test > 0).sum())
    return out


def catalog_coverage(topk, n_items) -> float:
    r"""Catalog coverage: the fraction of the item catalog that appears in at least one top-k list.

    .. math:: \mathrm{coverage} = \frac{\left|\bigcup_u \{\mathrm{topk}_u(j) : j \le k\}\right|}{n_\mathrm{items}}

    Parameters
    ----------
    topk : int array, shape (n_users, k)
        Inner item ids, ``-1`` = padding (ignored). Every row counts, whether or not the user has test items.
    n_items : int or matrix
        Catalog size, or a user×item matrix / :class:`~dprec.data.Interactions` whose number of columns is used.

    Returns
    -------
    float in [0, 1]
    """
    if not isinstance(n_items, (int, np.integer)):
        shape = getattr(n_items, "shape", None)
        if shape is None or len(shape) != 2:
            raise TypeError(f"n_items must be an int or a user×item matrix, got {type(n_items).__name__}")
        n_items = shape[1]
    n_items = int(n_items)
    if n_items < 1:
        raise ValueError(f"n_items must be ≥ 1, got {n_items}")
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be 2-D (n_users, k), got ndim={topk.ndim}")
    ids = topk[topk >= 0].astype(np.int64)
    if ids.size and ids.max() >= n_items:
        raise ValueError(f"topk contains item id {int(ids.max())} ≥ n_items = {n_items}")
    return float(np.unique(ids).size / n_items)


# ---------------------------------------------------------------------------------------------- evaluate
def _predicts_ratings(model) -> bool:
    """Whether ``model.predict`` returns ratings on the data's scale (else RMSE/MAE are NaN).

    A model can declare it with a ``predicts_ratings`` attribute; implicit-feedback models
    (``feedback == "implicit"``) do not predict ratings.
    """
    flag = getattr(model, "predicts_ratings", None)
    if flag is not None:
        return bool(flag)
    return getattr(model, "feedback", "explicit") != "implicit"


def _default_batch_size(n_items: int) -> int:
    # Score matrices are float64 (batch × n_items); keep one under ~128 MB.
    return int(max(1, min(1024, (16 * 2**20) // max(n_items, 1))))


_RANKING = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k")


def evaluate(model, train, test, k: int = 10, *, extra_k=(20,), users=None, batch_size: int | None = None) -> dict:
    """Evaluate a fitted recommender on held-out data: rating error and top-k ranking quality.

    Parameters
    ----------
    model : Recommender
        Fitted on ``train``. Its ``predict`` gives RMSE/MAE; ``recommend(users, k, filter_seen=True)`` (called
        on batches of users) gives the rankings, so items a user rated in training are never recommended.
    train : Interactions or scipy.sparse matrix
        The training data; its item vocabulary is the catalog for ``coverage``.
    test : Interactions or scipy.sparse matrix
        Held-out interactions (raw ids resolved through its vocabularies; a split of one dataset shares
        them with ``train``). A plain sparse matrix means raw ids ``0..n-1``.
    k : int, default 10
        Length of the recommendation lists.
    extra_k : sequence of int, default (20,)
        Further cut-offs at which recall is reported as ``recall_at_<c>`` (``recall_at_20`` by default, the
        DP-ALS paper's headline metric), from the same ranked lists (computed once at ``max(k, *extra_k)``;
        the top-``c`` of a longer list is the top-``c`` list, by the one tie rule of ``topk_rows``).
    users : sequence of raw user ids, optional
        Restrict the evaluation (both rating error and ranking) to these users. Users without test items are
        excluded from the ranking metrics either way.
    batch_size : int, optional
        Users per ``recommend`` call (default: as many as keep a dense score batch under ~128 MB, ≤ 1024).

    Returns
    -------
    dict
        ``rmse``, ``mae``: over every test rating of the evaluated users via ``model.predict`` (raw ids);
        ``NaN`` when the model does not predict ratings (implicit feedback, popularity; see
        ``predicts_ratings``), there is no test rating, or every test value is the same (implicit data, with a
        :class:`~dprec.errors.DataWarning`); an RMSE worse than the constant predictor (the training mean) also
        warns. ``precision_at_k``, ``recall_at_k``, ``ndcg_at_k``,
        ``map_at_k``, ``hit_rate_at_k``: means over users with at least one test item (formulas in the module
        docstring); ``recall_at_<c>`` for each ``c`` of ``extra_k``; ``coverage``: :func:`catalog_coverage` of
        their lists over the training catalog; ``k``; ``n_users_evaluated``: the number of users in the ranking
        averages.
    """
    k = check_int(k, "k", minimum=1)
    extra = [check_int(c, "extra_k", minimum=1) for c in (extra_k or ())]
    err, at, n_eval = _evaluate_at(model, train, test, [k, *extra], users=users, batch_size=batch_size)
    out = {"rmse": err["rmse"], "mae": err["mae"], **{name: at[k][name] for name in _RANKING}}
    for c in extra:
        out[f"recall_at_{c}"] = at[c]["recall_at_k"]
    out.update(coverage=at[k]["coverage"], k=k, n_users_evaluated=n_eval)
    return out


def _evaluate_at(model, train, test, ks, *, users=None, batch_size=None, rating_error: bool = True):
    """Rating error and, for every cut-off in ``ks``, the ranking metrics and coverage, from one pass of
    ``recommend`` at ``max(ks)``. Returns ``(err, {k: metrics}, n_users_evaluated)``."""
    import pandas as pd

    from .data import as_interactions

    train = as_interactions(train, what="train")
    test = as_interactions(test, what="test")
    ks = sorted({check_int(c, "k", minimum=1) for c in ks})
    K = ks[-1]
    if batch_size is None:
        batch_size = _default_batch_size(train.n_items)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if not getattr(model, "_fitted", True):
        raise NotFittedError(f"{type(model).__name__} is not fitted yet: call model.fit(train) before evaluate")

    m = test.matrix
    n_test = np.diff(m.indptr)
    if users is None:
        rows = np.arange(test.n_users)
    else:
        rows = np.unique(test.user_inner(np.atleast_1d(np.asarray(users, dtype=object))))

    # ---- rating error over every test rating of the selected users
    err = {"rmse": math.nan, "mae": math.nan}
    if rating_error:
        coo = m[rows].tocoo()
        if coo.nnz and _predicts_ratings(model):
            try:
                pred = model.predict(test.user_ids[rows[coo.row]], test.item_ids[coo.col])
            except NotImplementedError:
                pred = None
            if pred is not None:
                err = _rating_error(coo.data, pred, train, type(model).__name__)

    # ---- ranking over the selected users that have test items
    rank_rows = rows[n_test[rows] > 0]
    test_index = pd.Index(test.item_ids)
    catalog_index = test_index if train.item_ids is test.item_ids else pd.Index(train.item_ids)
    topk = np.full((len(rank_rows), K), -1, dtype=np.int64)  # test columns, for hits
    topk_cat = np.full((len(rank_rows), K), -1, dtype=np.int64)  # training-catalog columns, for coverage
    for start in range(0, len(rank_rows), batch_size):
        batch = rank_rows[start : start + batch_size]
        with warnings.catch_warnings():  # measuring how a rating model ranks is what evaluate is for
            warnings.simplefilter("ignore", RankingWarning)
            ids, scores = model.recommend(test.user_ids[batch], K, filter_seen=True)
        ids, scores = np.asarray(ids), np.asarray(scores, dtype=np.float64)
        if ids.ndim != 2 or ids.shape[0] != len(batch) or ids.shape[1] > K:
            raise ValueError(
                f"{type(model).__name__}.recommend returned ids of shape {ids.shape} for a batch of {len(batch)} "
                f"users and n={K}; expected ({len(batch)}, ≤{K})"
            )
        flat = ids.ravel()
        pad = ~np.isfinite(scores.ravel())
        cols = test_index.get_indexer(flat)
        cols[pad] = -1
        cat = cols if catalog_index is test_index else catalog_index.get_indexer(flat)
        cat[pad] = -1
        w = ids.shape[1]
        topk[start : start + len(batch), :w] = cols.reshape(len(batch), w)
        topk_cat[start : start + len(batch), :w] = cat.reshape(len(batch), w)

    at = {}
    sub_test = m[rank_rows]
    for c in ks:
        if len(rank_rows):
            ranking = ranking_metrics(topk[:, :c], sub_test)
            ranking["coverage"] = catalog_coverage(topk_cat[:, :c], train.n_items)
        else:
            ranking = {name: math.nan for name in (*_RANKING, "coverage")}
        at[c] = ranking
    return err, at, int(len(rank_rows))


def _rating_error(truth: np.ndarray, pred, train, name: str) -> dict:
    """RMSE and MAE, or NaN with a :class:`~dprec.errors.DataWarning` when they would mislead.

    Test values that are all equal (implicit data: every entry 1) make any rating error meaningless — a
    model that learned the constant scores 0 — so NaN is reported. An RMSE above that of the constant
    predictor ``μ`` (the mean of the training values) warns: the model predicts worse than ignoring users
    and items altogether.
    """
    if truth.min() == truth.max():
        warnings.warn(
            f"every test value is {truth[0]:g}: this is implicit (interaction-only) data, on which RMSE and MAE "
            "measure nothing (a constant scores 0); they are reported as NaN. Compare ranking metrics instead",
            DataWarning,
            stacklevel=4,
        )
        return {"rmse": math.nan, "mae": math.nan}
    out = {"rmse": rmse(truth, pred), "mae": mae(truth, pred)}
    tr = train.matrix.data
    if tr.size:
        mu = float(tr.mean())
        const = rmse(truth, np.full_like(truth, mu))
        if out["rmse"] > const:
            warnings.warn(
                f"{name} has RMSE {out['rmse']:.4f}, worse than predicting the training mean {mu:.3f} for every "
                f"rating (RMSE {const:.4f}): it predicts worse than ignoring users and items (under DP, the noise at "
                "a small epsilon can do that: a larger epsilon or a simpler model helps)",
                DataWarning,
                stacklevel=4,
            )
    return out


def _serve_heldout(model, split, on: str):
    """A shallow copy of ``model`` with the held-out users' histories folded in (the model is not modified),
    and the targets to rank: ``(served, targets)``."""
    import copy

    from .split import StrongSplit

    if not isinstance(split, StrongSplit):
        raise TypeError(
            f"split must be a dprec.split.StrongSplit (from strong_generalization), got {type(split).__name__}"
        )
    if on not in ("test", "validation"):
        raise ValueError(f'on must be "test" or "validation", got {on!r}')
    history, targets = (split.history, split.targets) if on == "test" else (split.val_history, split.val_targets)
    if history.n_users == 0:
        raise ValueError(f"the split has no {on} users")
    if not getattr(model, "_fitted", True):
        raise NotFittedError(f"{type(model).__name__} is not fitted yet: call model.fit(split.train) first")
    if not hasattr(model, "fold_in_many"):
        raise TypeError(
            f"{type(model).__name__} cannot serve new users (no fold_in_many), so it cannot be evaluated with the "
            "strong-generalisation protocol; use the per-user holdout (split user) for it"
        )
    served = copy.copy(model)
    served.fold_in_many(history)
    return served, targets


def evaluate_strong(
    model, split, *, k: int = 10, extra_k=(20,), on: str = "test", batch_size: int | None = None
) -> dict:
    """Evaluate under strong generalisation (Liang et al. 2018): rank items for users the model never saw.

    ``model`` must be fitted on ``split.train`` (by the caller; nothing is refitted here). Every held-out
    user's history is folded in (:meth:`~dprec.models.base.Recommender.fold_in_many`, one batch: the user
    state is solved from the released item side and the user's own history only, so under joint DP this
    costs **no privacy budget** — it is how a joint-DP model serves a new user), then the catalog is ranked
    with the history items excluded (``filter_seen``) and scored against the user's targets with the
    formulas of the module docstring: ``recall@k = hits/min(k, |targets|)``, NDCG@k, precision@k, ….
    The fold-in happens on a shallow copy: ``model`` itself is left as it was.

    Parameters
    ----------
    model : Recommender
        Fitted on ``split.train``; needs ``fold_in_many`` (every dprec model, and the bench's implicit-als).
    split : StrongSplit
        From :func:`dprec.split.strong_generalization`.
    k, extra_k, batch_size
        As in :func:`evaluate` (``recall_at_20`` is reported by default).
    on : {"test", "validation"}
        Which held-out users to evaluate.

    Returns
    -------
    dict
        The keys of :func:`evaluate`. RMSE/MAE compare ``predict`` with the target ratings (NaN for ranking
        models and after binarisation they are not meaningful).
    """
    served, targets = _serve_heldout(model, split, on)
    with warnings.catch_warnings():  # binarised targets: RMSE is NaN, as documented above (no DataWarning)
        warnings.filterwarnings("ignore", message="every test value is", category=DataWarning)
        return evaluate(served, split.train, targets, k, extra_k=extra_k, batch_size=batch_size)
