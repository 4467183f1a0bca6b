r"""Bias audit: recommendation quality per user group and the popularity bias of the recommendations.

Quality per group (:func:`audit_bias`)
--------------------------------------
Users are grouped by their training activity (``n_activity_groups`` quantiles of the number of training
ratings, always) and by any categorical attribute the caller supplies (e.g. ML-100K's gender, age band and
occupation from :func:`dprec.datasets.attributes.load_user_attributes`). For each group: the counts (users,
test ratings, users ranked), RMSE and MAE over the group's test ratings, and the ranking metrics of
:mod:`dprec.metrics` (precision, recall, NDCG, MAP, hit rate @k) averaged over the group's users with test
items — the per-user values come from the metric functions of :mod:`dprec.metrics` (``per_user=True``) on
one ``recommend`` pass, so group means weighted by group size give back :func:`dprec.evaluate`'s figures.
Per attribute and metric the *gap* is the difference between the best and the worst group (absolute value;
"best" is the lowest RMSE/MAE, the highest ranking metric), over groups with at least ``min_group_users``
users (smaller groups are listed but left out of the gap: their means are too noisy). For the popularity
metrics of a group (ARP, APLT, popularity lift) there is no better or worse: ``best_group`` is then the group
with the highest value and ``worst_group`` the lowest.

Popularity bias (:func:`popularity_bias`)
-----------------------------------------
With ``φ(i)`` the number of training interactions of item ``i``, ``L_u`` user ``u``'s top-k list, ``H_u`` the
user's training items and ``N = Σ_i φ(i)``:

=========================  ================================================================================
Gini of exposure           ``e_i = #{u : i ∈ L_u}`` over the whole catalog sorted ascending (``i = 1..n``):
                           ``G = Σ_i (2i − n − 1) e_(i) / (n Σ_i e_i)``; 0 = equal exposure, → 1 = few items
ARP                        average recommended popularity ``(1/|U|) Σ_u Σ_{i∈L_u} φ(i) / |L_u|``
                           (Yin et al. 2012; Abdollahpouri et al. 2019), in training interactions
APLT                       average percentage of long-tail items ``(1/|U|) Σ_u |L_u ∩ T| / |L_u|``, ``T`` =
                           the least popular items that together hold at most ``long_tail_share`` (20%)
                           of ``N`` (Abdollahpouri et al. 2017)
coverage                   :func:`dprec.metrics.catalog_coverage`
history popularity         ``(1/|U|) Σ_u Σ_{i∈H_u} φ(i) / |H_u|``, the users' own average popularity
popularity lift            ``(1/|U|) Σ_u (ARP_u − HP_u) / HP_u``: > 0 when recommendations are more popular
                           than what the user consumes (Abdollahpouri et al. 2021, "popularity lift")
=========================  ================================================================================

These figures are computed from the private training and test data: **they are not differentially private**
(even for a DP model). Publish them only as internal measurements, or release them through a DP mechanism.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import metrics as M
from .._validation import check_fraction, check_int
from ..data import as_interactions
from ..errors import ConfigError, RankingWarning

__all__ = [
    "activity_groups",
    "recommend_topk",
    "gini",
    "long_tail_items",
    "popularity_bias",
    "audit_bias",
    "BiasAudit",
    "NOT_DP_NOTE",
]

NOT_DP_NOTE = (
    "audit figures are computed on the private training and test data (and, for groups, on private user "
    "attributes): they are measurements, not differentially private releases"
)

#: metrics where a lower value is better
_LOWER_IS_BETTER = ("rmse", "mae")


def activity_groups(train, n_groups: int = 4) -> pd.Series:
    """Activity quantile of each user: ``"Q1"`` (fewest training ratings) … ``"Q<n>"`` (most).

    Quantiles of the per-user training-rating count, ties broken by user order (``pd.qcut`` on ranks), so
    the groups have equal sizes ±1. Returns a Series indexed by raw user id.
    """
    train = as_interactions(train, what="train")
    n = check_int(n_groups, "n_activity_groups", minimum=1)
    counts = pd.Series(np.diff(train.matrix.indptr), index=train.user_ids)
    if n == 1:
        return pd.Series("Q1", index=counts.index)
    labels = [f"Q{j + 1}" for j in range(n)]
    return pd.Series(
        pd.qcut(counts.rank(method="first"), n, labels=labels).astype(str), index=counts.index, name="activity"
    )


def recommend_topk(model, train, users_inner, k: int, *, batch_size: int | None = None) -> np.ndarray:
    """Top-``k`` lists of ``users_inner`` (rows of ``train``) as training-catalog columns, ``-1`` = padding.

    Items seen in training are filtered (as in :func:`dprec.evaluate`); a non-finite score is padding.
    """
    train = as_interactions(train, what="train")
    k = check_int(k, "k", minimum=1)
    users_inner = np.asarray(users_inner, dtype=np.int64)
    if batch_size is None:
        batch_size = M._default_batch_size(train.n_items)
    catalog = pd.Index(train.item_ids)
    out = np.full((users_inner.size, k), -1, dtype=np.int64)
    for s in range(0, users_inner.size, batch_size):
        b = users_inner[s : s + batch_size]
        with warnings.catch_warnings():  # auditing how a model ranks is the point
            warnings.simplefilter("ignore", RankingWarning)
            ids, scores = model.recommend(train.user_ids[b], k, filter_seen=True)
        ids, scores = np.atleast_2d(np.asarray(ids)), np.atleast_2d(np.asarray(scores, dtype=np.float64))
        cols = catalog.get_indexer(ids.ravel())
        cols[~np.isfinite(scores.ravel())] = -1
        out[s : s + b.size, : ids.shape[1]] = cols.reshape(b.size, ids.shape[1])
    return out


def gini(values) -> float:
    r"""Gini coefficient of non-negative values: ``Σ_i (2i − n − 1) x_(i) / (n Σ x)``, ``x`` sorted ascending.

    0 when all values are equal; ``(n − 1)/n`` when one value holds everything; NaN when all are 0.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0 or np.any(x < 0):
        raise ValueError("gini needs a non-empty array of non-negative values")
    total = x.sum()
    if total == 0:
        return math.nan
    i = np.arange(1, x.size + 1)
    return float(np.sum((2 * i - x.size - 1) * x) / (x.size * total))


def long_tail_items(popularity, share: float = 0.2) -> np.ndarray:
    """Boolean mask of the long tail: the least popular items that together hold at most ``share`` of all
    interactions (ties in popularity are taken in item order). Items with no interaction are in the tail."""
    share = check_fraction(share, "long_tail_share")
    pop = np.asarray(popularity, dtype=np.float64)
    order = np.argsort(pop, kind="stable")
    cum = np.cumsum(pop[order])
    tail = np.zeros(pop.size, bool)
    tail[order[cum <= share * pop.sum()]] = True
    return tail


def _popularity_rows(topk, pop, tail, hist_pop):
    """Per-user ARP, APLT and popularity lift for the rows of ``topk`` (NaN for an empty list)."""
    valid = topk >= 0
    n = valid.sum(axis=1)
    safe = np.where(valid, topk, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        arp = np.where(valid, pop[safe], 0.0).sum(axis=1) / n
        aplt = np.where(valid, tail[safe], False).sum(axis=1) / n
        lift = (arp - hist_pop) / hist_pop
    arp[n == 0] = aplt[n == 0] = lift[n == 0] = np.nan
    lift[~np.isfinite(lift)] = np.nan
    return arp, aplt, lift


def popularity_bias(topk, train, *, long_tail_share: float = 0.2, rows=None) -> dict:
    """Popularity-bias metrics of top-k lists (module docstring table).

    Parameters
    ----------
    topk : int array, shape (n_rows, k)
        Training-catalog columns, ``-1`` = padding (as from :func:`recommend_topk`).
    train : Interactions
        Gives ``φ`` (training interactions per item) and the users' histories.
    long_tail_share : float, default 0.2
        The tail holds at most this share of the interactions.
    rows : int array, optional
        The training rows (inner user ids) of ``topk``'s rows; default ``0..n_rows-1``.

    Returns
    -------
    dict
        ``gini_exposure``, ``arp``, ``aplt``, ``coverage``, ``history_popularity``, ``popularity_lift``,
        ``n_tail_items``, ``n_users``.
    """
    train = as_interactions(train, what="train")
    X = train.matrix
    topk = np.asarray(topk, dtype=np.int64)
    rows = np.arange(topk.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    pop = np.bincount(X.indices, minlength=train.n_items).astype(np.float64)
    tail = long_tail_items(pop, long_tail_share)
    hist = _history_popularity(X, pop)[rows]
    arp, aplt, lift = _popularity_rows(topk, pop, tail, hist)
    exposure = np.bincount(topk[topk >= 0], minlength=train.n_items)
    return {
        "gini_exposure": gini(exposure),
        "arp": float(np.nanmean(arp)) if np.isfinite(arp).any() else math.nan,
        "aplt": float(np.nanmean(aplt)) if np.isfinite(aplt).any() else math.nan,
        "coverage": M.catalog_coverage(topk, train.n_items),
        "history_popularity": float(np.nanmean(hist)) if np.isfinite(hist).any() else math.nan,
        "popularity_lift": float(np.nanmean(lift)) if np.isfinite(lift).any() else math.nan,
        "n_tail_items": int(tail.sum()),
        "n_users": int(topk.shape[0]),
    }


def _history_popularity(X, pop) -> np.ndarray:
    n = np.diff(X.indptr)
    sums = np.add.reduceat(pop[X.indices], X.indptr[:-1]) if X.nnz else np.zeros(X.shape[0])
    sums = np.where(n > 0, sums, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, sums / np.maximum(n, 1), np.nan)


@dataclass
class BiasAudit:
    """Result of :func:`audit_bias`.

    Attributes
    ----------
    groups : pandas.DataFrame
        One row per (attribute, group): ``n_users``, ``n_test_ratings``, ``n_ranked_users``, ``rmse``, ``mae``,
        the ranking metrics (``ndcg_at_k``, …), and the group's ``arp``, ``aplt`` and ``popularity_lift``.
    gaps : pandas.DataFrame
        One row per (attribute, metric): ``best_group``, ``worst_group``, ``best``, ``worst``, ``gap`` and
        ``n_groups`` (those with ≥ ``min_group_users`` users).
    overall : dict
        The same metrics over all users, and ``popularity`` (:func:`popularity_bias`).
    """

    groups: pd.DataFrame
    gaps: pd.DataFrame
    overall: dict
    k: int
    min_group_users: int
    notes: list = field(default_factory=lambda: [NOT_DP_NOTE])

    def flat_metrics(self) -> dict:
        """``{"gap_ndcg_at_k[gender]": …, "gini_exposure": …}``: columns for a benchmark row."""
        out = {name: v for name, v in self.overall["popularity"].items() if name not in ("n_users",)}
        for row in self.gaps.itertuples(index=False):
            out[f"gap_{row.metric}[{row.attribute}]"] = row.gap
        return out

    def to_dict(self) -> dict:
        return {
            "k": self.k,
            "min_group_users": self.min_group_users,
            "overall": self.overall,
            "groups": self.groups.to_dict(orient="records"),
            "gaps": self.gaps.to_dict(orient="records"),
            "notes": list(self.notes),
        }


def _as_group_columns(groups, user_ids) -> dict[str, pd.Series]:
    if groups is None:
        return {}
    if isinstance(groups, pd.Series):
        groups = {groups.name or "group": groups}
    if isinstance(groups, pd.DataFrame):
        groups = {c: groups[c] for c in groups.columns}
    if not isinstance(groups, dict):
        raise ConfigError(
            f"groups must be a DataFrame or a dict of Series indexed by raw user id, got {type(groups).__name__}"
        )
    out = {}
    for name, s in groups.items():
        if not isinstance(s, pd.Series):
            raise ConfigError(f"groups[{name!r}] must be a pandas Series indexed by raw user id")
        if name == "activity":
            raise ConfigError("'activity' is reserved for the activity quantiles; rename that attribute")
        aligned = s.reindex(pd.Index(user_ids))
        if aligned.isna().all():
            raise ConfigError(
                f"groups[{name!r}] shares no user id with the data (index {s.index[:3].tolist()}…, data "
                f"{list(user_ids[:3])}…): index it by the raw user ids of the data"
            )
        out[str(name)] = aligned.astype(object)
    return out


def audit_bias(
    model,
    train,
    test,
    *,
    groups=None,
    k: int = 10,
    n_activity_groups: int = 4,
    min_group_users: int = 20,
    long_tail_share: float = 0.2,
    batch_size: int | None = None,
) -> BiasAudit:
    """Per-group quality and popularity bias of a fitted model on a train/test split (module docstring).

    Parameters
    ----------
    model : Recommender
        Fitted on ``train``.
    train, test : Interactions
        One split of one dataset (shared vocabularies, e.g. from :func:`dprec.split.user_holdout`).
    groups : DataFrame or dict of Series, optional
        Categorical user attributes indexed by raw user id (one column per attribute). Users missing from an
        attribute are left out of its groups. Activity quantiles are always added (attribute ``"activity"``).
    k : int, default 10
        List length of the ranking and popularity metrics.
    n_activity_groups : int, default 4
        Number of activity quantiles (4 = quartiles).
    min_group_users : int, default 20
        Groups with fewer users are reported but not used for the gaps.
    long_tail_share : float, default 0.2
        Share of interactions held by the long tail (APLT).

    Returns
    -------
    BiasAudit
        Not DP: see :data:`NOT_DP_NOTE`.
    """
    train = as_interactions(train, what="train")
    test = as_interactions(test, what="test")
    if train.n_users != test.n_users or not np.array_equal(train.user_ids, test.user_ids):
        raise ConfigError("train and test must share the user vocabulary (one split of one dataset)")
    if not np.array_equal(train.item_ids, test.item_ids):
        raise ConfigError("train and test must share the item vocabulary (one split of one dataset)")
    k = check_int(k, "k", minimum=1)
    min_group_users = check_int(min_group_users, "min_group_users", minimum=1)
    attrs = {"activity": activity_groups(train, n_activity_groups), **_as_group_columns(groups, train.user_ids)}

    # ---- one pass: per-user ranking metrics and per-rating errors
    T = test.matrix
    n_test = np.diff(T.indptr)
    topk = recommend_topk(model, train, np.arange(train.n_users), k, batch_size=batch_size)
    per_user = {
        "precision_at_k": M.precision_at_k(topk, T, per_user=True),
        "recall_at_k": M.recall_at_k(topk, T, per_user=True),
        "ndcg_at_k": M.ndcg_at_k(topk, T, per_user=True),
        "map_at_k": M.map_at_k(topk, T, per_user=True),
        "hit_rate_at_k": M.hit_rate_at_k(topk, T, per_user=True),
    }
    coo = T.tocoo()
    pred = None
    if coo.nnz and M._predicts_ratings(model):
        try:
            pred = np.asarray(model.predict(test.user_ids[coo.row], test.item_ids[coo.col]), dtype=np.float64)
        except NotImplementedError:
            pred = None
    pop = np.bincount(train.matrix.indices, minlength=train.n_items).astype(np.float64)
    tail = long_tail_items(pop, long_tail_share)
    arp_u, aplt_u, lift_u = _popularity_rows(topk, pop, tail, _history_popularity(train.matrix, pop))

    def summarise(mask: np.ndarray) -> dict:
        row = {"n_users": int(mask.sum()), "n_test_ratings": int(n_test[mask].sum())}
        rmask = mask & (n_test > 0)
        row["n_ranked_users"] = int(rmask.sum())
        if pred is not None and row["n_test_ratings"]:
            sel = mask[coo.row]
            row["rmse"], row["mae"] = M.rmse(coo.data[sel], pred[sel]), M.mae(coo.data[sel], pred[sel])
        else:
            row["rmse"] = row["mae"] = math.nan
        for name, v in per_user.items():
            row[name] = float(np.mean(v[rmask])) if rmask.any() else math.nan
        for name, v in (("arp", arp_u), ("aplt", aplt_u), ("popularity_lift", lift_u)):
            vv = v[mask]
            row[name] = float(np.nanmean(vv)) if np.isfinite(vv).any() else math.nan
        return row

    rows = []
    for attr, labels in attrs.items():
        values = labels.to_numpy(dtype=object)
        present = pd.notna(labels).to_numpy()
        for g in sorted({str(x) for x in values[present]}, key=_natural_key):
            mask = present & (values.astype(str) == g)
            rows.append({"attribute": attr, "group": g, **summarise(mask)})
    group_df = pd.DataFrame(rows)

    metric_names = ["rmse", "mae", *per_user, "arp", "aplt", "popularity_lift"]
    gaps = []
    for attr in attrs:
        sub = group_df[(group_df["attribute"] == attr) & (group_df["n_users"] >= min_group_users)]
        for metric in metric_names:
            s = sub[["group", metric]].dropna()
            if len(s) < 2 or metric in ("arp", "aplt", "popularity_lift"):
                if len(s) >= 2:  # popularity: no better/worse, report the spread
                    hi, lo = s.loc[s[metric].idxmax()], s.loc[s[metric].idxmin()]
                    gaps.append(_gap_row(attr, metric, hi, lo, len(s)))
                continue
            lower = metric in _LOWER_IS_BETTER
            best = s.loc[s[metric].idxmin()] if lower else s.loc[s[metric].idxmax()]
            worst = s.loc[s[metric].idxmax()] if lower else s.loc[s[metric].idxmin()]
            gaps.append(_gap_row(attr, metric, best, worst, len(s)))
    gap_df = pd.DataFrame(
        gaps, columns=["attribute", "metric", "best_group", "worst_group", "best", "worst", "gap", "n_groups"]
    )

    overall = summarise(np.ones(train.n_users, bool))
    overall["popularity"] = popularity_bias(topk, train, long_tail_share=long_tail_share)
    return BiasAudit(groups=group_df, gaps=gap_df, overall=overall, k=k, min_group_users=min_group_users)


def _gap_row(attr, metric, best, worst, n):
    return {
        "attribute": attr,
        "metric": metric,
        "best_group": best["group"],
        "worst_group": worst["group"],
        "best": float(best[metric]),
        "worst": float(worst[metric]),
        "gap": float(abs(best[metric] - worst[metric])),
        "n_groups": int(n),
    }


def _natural_key(label: str):
    """Sort "Q2" before "Q10" and "<18" before "18-24" before "56+"."""
    import re

    m = re.search(r"\d+", label)
    return (0, int(m.group()), label) if m and not label.startswith("<") else ((-1, 0, label) if m else (1, 0, label))
