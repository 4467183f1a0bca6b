r"""Membership inference on served scores, for the non-private models (AUC).

Two attacks, both using only what a served model answers (``predict`` / ``fold_in``), never its internals:

*Record level* (:func:`record_membership_auc`, Yeom et al. 2018, the loss attack): for a pair (user, item)
with rating ``r``, the attack score is ``−|r̂ − r|`` for a rating model (a training rating is fitted better
than a held-out one) and the served score ``r̂`` for a ranking model. Members are training pairs, non-members
held-out pairs of the same users.

*User level* (:func:`user_membership_auc`, the unit dprec's DP protects): a candidate user's ratings are
folded into a copy of the model as a *new* user (the served fold-in path, which uses the item side and that
user's ratings only) and the score is minus the mean squared error of the fold-in's predictions on those
ratings (``−mean |r̂ − r|²``; for a ranking model the mean served score of the user's items after the fold-in,
with seen items *not* filtered). Members are users the model was trained on, non-members users it never saw.

The AUC is the probability that a random member scores above a random non-member (ties count ½; Mann–Whitney
``U / (n₁ n₀)``): 0.5 is no leak; for an ε-DP mechanism in the user unit the user-level AUC is at most
``e^ε/(1 + e^ε)``-ish (the accuracy of randomised response), for a non-private model it is unbounded.
These are measurements on private data, not DP releases.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from scipy import stats

from .._rng import as_generator
from .._validation import check_int
from ..data import Interactions, as_interactions
from ..errors import ConfigError

__all__ = ["auc", "record_membership_auc", "user_membership_auc"]


def auc(member_scores, nonmember_scores) -> float:
    """``P[S_member > S_nonmember] + ½ P[=]`` via the Mann–Whitney rank sum."""
    a = np.asarray(member_scores, dtype=np.float64).ravel()
    b = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ConfigError("auc needs at least one member and one non-member score")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError("membership scores must be finite")
    ranks = stats.rankdata(np.concatenate([a, b]))
    u = ranks[: a.size].sum() - a.size * (a.size + 1) / 2
    return float(u / (a.size * b.size))


def _pair_scores(model, data: Interactions, rows, cols, vals) -> np.ndarray:
    pred = np.asarray(model.predict(data.user_ids[rows], data.item_ids[cols]), dtype=np.float64)
    if getattr(model, "predicts_ratings", True):
        return -np.abs(pred - vals)
    return pred


def record_membership_auc(model, train, test, *, max_pairs: int = 20000, rng=0) -> dict:
    """Record-level loss attack: training pairs versus held-out pairs (module docstring).

    Parameters
    ----------
    model : Recommender
        Fitted on ``train``.
    train, test : Interactions
        One split of one dataset.
    max_pairs : int, default 20000
        At most this many pairs of each kind are scored (a uniform sample; the AUC does not need them all).
    rng : seed, default 0
        For the sample.

    Returns
    -------
    dict
        ``auc``, ``n_members``, ``n_nonmembers``, ``attack``.
    """
    train = as_interactions(train, what="train")
    test = as_interactions(test, what="test")
    gen = as_generator(rng)
    max_pairs = check_int(max_pairs, "max_pairs", minimum=1)
    out = []
    for d in (train, test):
        coo = d.matrix.tocoo()
        if coo.nnz == 0:
            raise ConfigError("record_membership_auc needs ratings in both train and test")
        idx = gen.choice(coo.nnz, size=min(max_pairs, coo.nnz), replace=False)
        out.append(_pair_scores(model, d, coo.row[idx], coo.col[idx], coo.data[idx]))
    return {
        "auc": auc(out[0], out[1]),
        "n_members": int(out[0].size),
        "n_nonmembers": int(out[1].size),
        "attack": "loss (−|r̂ − r|)" if getattr(model, "predicts_ratings", True) else "served score",
    }


def _relabel(model, data: Interactions, tag: str) -> Interactions:
    """``data`` with user ids the model has never seen (integers after the model's largest, when it has ints)."""
    known = np.asarray(model.user_ids)
    if known.dtype.kind in "iu" or known.size == 0:
        start = int(known.max()) + 1 if known.size else 0
        ids = np.arange(start, start + data.n_users, dtype=np.int64)
    else:
        ids = np.array([f"{tag}{u}" for u in data.user_ids], dtype=object)
    return Interactions(
        data.matrix.copy(), ids, data.item_ids, rating_bounds=data.rating_bounds, public_items=data.public_items
    )


def _user_scores(model, data: Interactions, tag: str) -> np.ndarray:
    served = copy.copy(model)
    fresh = _relabel(model, data, tag)
    served.fold_in_many(fresh)
    coo = fresh.matrix.tocoo()
    pred = np.asarray(served.predict(fresh.user_ids[coo.row], fresh.item_ids[coo.col]), dtype=np.float64)
    per = (-((pred - coo.data) ** 2)) if getattr(model, "predicts_ratings", True) else pred
    n = np.bincount(coo.row, minlength=fresh.n_users)
    s = np.bincount(coo.row, weights=per, minlength=fresh.n_users)
    keep = n > 0
    return s[keep] / n[keep]


def user_membership_auc(model, members, nonmembers) -> dict:
    """User-level attack through the served fold-in (module docstring).

    Parameters
    ----------
    model : Recommender
        Fitted on ``members`` (or on data containing them); needs ``fold_in_many``.
    members, nonmembers : Interactions
        The member users' and the non-member users' ratings, with item ids in the model's catalog.

    Returns
    -------
    dict
        ``auc``, ``n_members``, ``n_nonmembers``, ``attack``.
    """
    if not hasattr(model, "fold_in_many"):
        raise ConfigError(f"{type(model).__name__} cannot fold in new users: the user-level attack needs it")
    members = as_interactions(members, what="members")
    nonmembers = as_interactions(nonmembers, what="nonmembers")
    s_in = _user_scores(model, members, "__mia_member_")
    s_out = _user_scores(model, nonmembers, "__mia_nonmember_")
    a = auc(s_in, s_out) if s_in.size and s_out.size else math.nan
    return {
        "auc": a,
        "n_members": int(s_in.size),
        "n_nonmembers": int(s_out.size),
        "attack": "fold-in fit (−mean squared error)" if getattr(model, "predicts_ratings", True) else "fold-in score",
    }
