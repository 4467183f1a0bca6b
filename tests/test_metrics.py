"""Metrics: hand-computed examples for every formula, edge cases, and evaluate() on a fake model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import dprec
from dprec import Interactions, Recommender
from dprec.metrics import (
    catalog_coverage,
    evaluate,
    hit_rate_at_k,
    mae,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    rmse,
)

L3 = 1.0 / math.log2(3)  # discount of rank 2


def _csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


# Five users, six items, k = 3.
#   u0: test {1, 3}        list [3, 0, 1]   rel 1 0 1
#   u1: test {5}           list [5, -1, -1] rel 1 0 0   (one test item, padded list)
#   u2: no test items      list [0, 1, 2]   excluded from the averages
#   u3: test {0, 1, 2, 4}  list [5, 2, -1]  rel 0 1 0   (|test| > k)
#   u4: test {2}           list [0, 1, 3]   rel 0 0 0
TEST = _csr([[1, 3], [5], [], [0, 1, 2, 4], [2]], 6)
TOPK = np.array([[3, 0, 1], [5, -1, -1], [0, 1, 2], [5, 2, -1], [0, 1, 3]])

PER_USER = {
    "precision_at_k": [2 / 3, 1 / 3, np.nan, 1 / 3, 0.0],
    "recall_at_k": [2 / 2, 1 / 1, np.nan, 1 / 3, 0.0],
    "ndcg_at_k": [(1 + 0.5) / (1 + L3), 1.0, np.nan, L3 / (1 + L3 + 0.5), 0.0],
    "map_at_k": [(1 + 2 / 3) / 2, 1.0, np.nan, (1 / 2) / 3, 0.0],
    "hit_rate_at_k": [1.0, 1.0, np.nan, 1.0, 0.0],
}
FUNCS = {
    "precision_at_k": precision_at_k,
    "recall_at_k": recall_at_k,
    "ndcg_at_k": ndcg_at_k,
    "map_at_k": map_at_k,
    "hit_rate_at_k": hit_rate_at_k,
}


@pytest.mark.parametrize("name", list(FUNCS))
def test_hand_computed_means(name):
    expected = np.nanmean(PER_USER[name])  # mean over the 4 users with test items (u2 excluded)
    assert FUNCS[name](TOPK, TEST) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", list(FUNCS))
def test_hand_computed_per_user(name):
    got = FUNCS[name](TOPK, TEST, per_user=True)
    np.testing.assert_allclose(got, PER_USER[name], atol=1e-12)
    assert np.isnan(got[2])


def test_explicit_values():
    assert precision_at_k(TOPK, TEST) == pytest.approx(1 / 3)
    assert recall_at_k(TOPK, TEST) == pytest.approx(7 / 12)
    assert map_at_k(TOPK, TEST) == pytest.approx(1 / 2)
    assert hit_rate_at_k(TOPK, TEST) == pytest.approx(3 / 4)
    assert ndcg_at_k(TOPK, TEST) == pytest.approx((1.5 / (1 + L3) + 1 + L3 / (1.5 + L3)) / 4)


def test_ranking_metrics_matches_individual_functions():
    allm = ranking_metrics(TOPK, TEST)
    for name, fn in FUNCS.items():
        assert allm[name] == pytest.approx(fn(TOPK, TEST), abs=1e-15)
    assert allm["n_users_evaluated"] == 4


def test_truncate_k():
    # k=1: hits u0 1, u1 1, u3 0, u4 0
    assert precision_at_k(TOPK, TEST, k=1) == pytest.approx(0.5)
    assert recall_at_k(TOPK, TEST, k=1) == pytest.approx(0.5)  # min(1, |T|) = 1 for all
    assert ndcg_at_k(TOPK, TEST, k=1) == pytest.approx(0.5)
    np.testing.assert_allclose(
        precision_at_k(TOPK[:, :1], TEST, per_user=True), precision_at_k(TOPK, TEST, k=1, per_user=True)
    )
    with pytest.raises(ValueError, match="exceeds"):
        precision_at_k(TOPK, TEST, k=4)


def test_single_test_item_and_k_larger_than_test_set():
    test = _csr([[4]], 6)
    # the one test item at rank 2 of 5: precision 1/5; recall over min(5, 1) = 1; NDCG = (1/log2 3) / 1; AP = (1/2)/1
    topk = np.array([[0, 4, 1, 2, 3]])
    assert precision_at_k(topk, test) == pytest.approx(1 / 5)
    assert recall_at_k(topk, test) == pytest.approx(1.0)
    assert ndcg_at_k(topk, test) == pytest.approx(L3)
    assert map_at_k(topk, test) == pytest.approx(0.5)
    assert hit_rate_at_k(topk, test) == 1.0


def test_perfect_ranking_scores_one_even_when_test_set_exceeds_k():
    test = _csr([[0, 1, 2, 3, 4, 5]], 8)
    topk = np.array([[2, 0, 5]])
    assert recall_at_k(topk, test) == pytest.approx(1.0)
    assert ndcg_at_k(topk, test) == pytest.approx(1.0)
    assert map_at_k(topk, test) == pytest.approx(1.0)
    assert precision_at_k(topk, test) == pytest.approx(1.0)


def test_padding_is_never_a_hit_and_precision_keeps_k_denominator():
    test = _csr([[0, 1]], 3)
    topk = np.array([[-1, -1, 1]])
    assert precision_at_k(topk, test) == pytest.approx(1 / 3)
    assert recall_at_k(topk, test) == pytest.approx(1 / 2)
    assert ndcg_at_k(topk, test) == pytest.approx(0.5 / (1 + L3))
    assert map_at_k(topk, test) == pytest.approx((1 / 3) / 2)
    all_pad = np.full((1, 3), -1)
    assert precision_at_k(all_pad, test) == 0.0 and ndcg_at_k(all_pad, test) == 0.0


def test_users_without_test_items_excluded_and_all_empty_gives_nan():
    test = _csr([[], [2], []], 4)
    topk = np.array([[2, 1], [2, 0], [0, 1]])
    assert precision_at_k(topk, test) == pytest.approx(0.5)  # only user 1 counts
    assert recall_at_k(topk, test) == pytest.approx(1.0)
    empty = sp.csr_matrix((3, 4))
    for fn in FUNCS.values():
        assert math.isnan(fn(topk, empty))
    assert ranking_metrics(topk, empty)["n_users_evaluated"] == 0


def test_explicit_zero_entries_are_relevant():
    # A stored rating of 0 is still an observation (Interactions keeps explicit zeros).
    test = sp.csr_matrix((np.array([0.0]), np.array([1]), np.array([0, 1])), shape=(1, 3))
    assert test.nnz == 1
    assert precision_at_k(np.array([[1]]), test) == 1.0


def test_accepts_interactions_as_test():
    data = Interactions.from_csr(TEST)
    assert precision_at_k(TOPK, data) == precision_at_k(TOPK, TEST)


@pytest.mark.parametrize(
    "topk, match",
    [
        (np.array([[1, 1, 0]] * 5), "same item twice"),
        (np.array([[6, 0, 1]] * 5), "outside"),
        (np.array([[-2, 0, 1]] * 5), "outside"),
        (np.array([[0, 1, 2]] * 4), "rows"),
        (np.zeros((5, 0), dtype=int), "no columns"),
        (np.array([0, 1, 2]), "2-D"),
        (np.array([[0.5, 1, 2]] * 5), "integer"),
    ],
)
def test_bad_topk_raises(topk, match):
    with pytest.raises(ValueError, match=match):
        precision_at_k(topk, TEST)


def test_padding_repeats_are_not_duplicates():
    precision_at_k(np.array([[0, -1, -1]] * 5), TEST)


def test_catalog_coverage():
    # union of all rows (u2 included, padding ignored): {0, 1, 2, 3, 5} of 6 items
    assert catalog_coverage(TOPK, 6) == pytest.approx(5 / 6)
    assert catalog_coverage(TOPK, TEST) == pytest.approx(5 / 6)
    assert catalog_coverage(np.full((2, 3), -1), 6) == 0.0
    with pytest.raises(ValueError):
        catalog_coverage(TOPK, 5)


def _reference(topk, test_rows, k):
    """Naive per-user loops straight from the formulas."""
    out = {n: [] for n in FUNCS}
    for row, t in zip(topk, test_rows):
        t = set(t)
        if not t:
            continue
        rel = [1 if (i >= 0 and i in t) else 0 for i in row[:k]]
        m = min(k, len(t))
        hits = sum(rel)
        out["precision_at_k"].append(hits / k)
        out["recall_at_k"].append(hits / m)
        dcg = sum(r / math.log2(j + 2) for j, r in enumerate(rel))
        idcg = sum(1 / math.log2(j + 2) for j in range(m))
        out["ndcg_at_k"].append(dcg / idcg)
        ap = sum((sum(rel[: j + 1]) / (j + 1)) * rel[j] for j in range(k)) / m
        out["map_at_k"].append(ap)
        out["hit_rate_at_k"].append(float(hits > 0))
    return {n: (float(np.mean(v)) if v else math.nan) for n, v in out.items()}


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 12), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_matches_naive_reference(n_users, n_items, k, seed):
    rng = np.random.default_rng(seed)
    k = min(k, n_items)
    test_rows = [
        sorted(rng.choice(n_items, size=rng.integers(0, n_items + 1), replace=False).tolist()) for _ in range(n_users)
    ]
    topk = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    topk[rng.random(topk.shape) < 0.2] = -1
    ref = _reference(topk, test_rows, k)
    got = ranking_metrics(topk, _csr(test_rows, n_items))
    for name in FUNCS:
        if math.isnan(ref[name]):
            assert math.isnan(got[name])
        else:
            assert got[name] == pytest.approx(ref[name], abs=1e-12), name


# ------------------------------------------------------------------------------------------- rmse / mae
def test_rmse_mae_exact():
    y, p = [1.0, 2.0, 3.0], [2.0, 2.0, 5.0]  # errors 1, 0, 2
    assert rmse(y, p) == pytest.approx(math.sqrt(5 / 3), abs=1e-15)
    assert mae(y, p) == pytest.approx(1.0, abs=1e-15)
    assert rmse([4], [4]) == 0.0 and mae([4], [4]) == 0.0
    assert rmse(np.array([[1, 2]]), np.array([[3, 2]])) == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize(
    "y, p, match",
    [([1, 2], [1], "same shape"), ([], [], "empty"), ([1, np.nan], [1, 2], "NaN"), ([1, 2], [1, np.inf], "y_pred")],
)
def test_rmse_mae_bad_input(y, p, match):
    for fn in (rmse, mae):
        with pytest.raises(ValueError, match=match):
            fn(y, p)


# ------------------------------------------------------------------------------------------- evaluate
class FixedScores(Recommender):
    """Deterministic fake: every user gets the same item scores; predict returns a constant."""

    def __init__(self, item_scores=(4.0, 3.0, 2.0, 1.0), constant=3.0, feedback="explicit", **kw):
        super().__init__(**kw)
        self.item_scores = np.asarray(item_scores, dtype=float)
        self.constant = constant
        self.feedback = feedback
        self.recommend_batches = []

    def _fit(self, data):
        assert data.n_items == len(self.item_scores)

    def _scores(self, rows):
        return np.tile(self.item_scores, (len(rows), 1))

    def _fallback_scores(self):
        return self.item_scores.copy()

    def _predict(self, rows, cols):
        return np.full(len(rows), self.constant)

    def recommend(self, user, n=10, *, filter_seen=True, items=None):
        self.recommend_batches.append(len(np.atleast_1d(np.asarray(user, dtype=object))))
        assert filter_seen is True
        return super().recommend(user, n, filter_seen=filter_seen, items=items)


USERS, ITEMS = ["a", "b", "c"], ["x", "y", "z", "w"]


def _split():
    train_df = pd.DataFrame({"user": ["a", "b", "c", "c"], "item": ["x", "y", "x", "y"], "rating": [5, 4, 3, 2]})
    test_df = pd.DataFrame({"user": ["a", "a", "b"], "item": ["y", "z", "w"], "rating": [4, 2, 1]})
    kw = dict(users=USERS, item_catalog=ITEMS, rating_bounds=(1, 5))
    return Interactions.from_pandas(train_df, **kw), Interactions.from_pandas(test_df, **kw)


def test_evaluate_fake_model_exact():
    train, test = _split()
    model = FixedScores().fit(train)
    res = evaluate(model, train, test, k=2)
    # a: train {x} → list [y, z], test {y, z} → all hits; b: train {y} → list [x, z], test {w} → no hit;
    # c: no test items → excluded. Predictions 3 vs ratings 4, 2, 1 → errors 1, -1, -2.
    assert set(res) == {
        "rmse",
        "mae",
        "precision_at_k",
        "recall_at_k",
        "ndcg_at_k",
        "map_at_k",
        "hit_rate_at_k",
        "recall_at_20",
        "coverage",
        "k",
        "n_users_evaluated",
    }
    assert res["rmse"] == pytest.approx(math.sqrt(2))
    assert res["mae"] == pytest.approx(4 / 3)
    assert res["precision_at_k"] == pytest.approx(0.5)
    assert res["recall_at_k"] == pytest.approx(0.5)
    assert res["ndcg_at_k"] == pytest.approx(0.5)
    assert res["map_at_k"] == pytest.approx(0.5)
    assert res["hit_rate_at_k"] == pytest.approx(0.5)
    assert res["coverage"] == pytest.approx(3 / 4)  # {y, z, x}
    assert res["k"] == 2 and res["n_users_evaluated"] == 2
    assert model.recommend_batches == [2]  # one batched call for both users


def test_evaluate_batches_give_same_result():
    train, test = _split()
    model = FixedScores().fit(train)
    a = evaluate(model, train, test, k=2)
    model.recommend_batches.clear()
    b = evaluate(model, train, test, k=2, batch_size=1)
    assert model.recommend_batches == [1, 1]
    assert a == b


def test_evaluate_k_larger_than_catalog_pads():
    train, test = _split()
    res = evaluate(FixedScores().fit(train), train, test, k=5)
    # a: 3 candidates [y, z, w] → 2 hits; precision 2/5, recall 2/min(5, 2) = 1; b: [x, z, w] → 1 hit (w at rank 3)
    assert res["precision_at_k"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert res["recall_at_k"] == pytest.approx(1.0)
    assert res["ndcg_at_k"] == pytest.approx((1.0 + 0.5 / 1.0) / 2)
    assert res["coverage"] == pytest.approx(1.0)


def test_evaluate_user_subset():
    train, test = _split()
    res = evaluate(FixedScores().fit(train), train, test, k=2, users=["a", "c"])
    assert res["n_users_evaluated"] == 1  # c has no test items
    assert res["precision_at_k"] == pytest.approx(1.0)
    assert res["rmse"] == pytest.approx(1.0)  # errors 1, -1
    with pytest.raises(KeyError):
        evaluate(FixedScores().fit(train), train, test, users=["nobody"])


def test_evaluate_implicit_model_has_nan_rating_error():
    train, test = _split()
    res = evaluate(FixedScores(feedback="implicit").fit(train), train, test, k=2)
    assert math.isnan(res["rmse"]) and math.isnan(res["mae"])
    assert res["precision_at_k"] == pytest.approx(0.5)


def test_evaluate_model_declaring_no_ratings():
    train, test = _split()
    model = FixedScores().fit(train)
    model.predicts_ratings = False
    assert math.isnan(evaluate(model, train, test)["rmse"])


def test_evaluate_validation():
    train, test = _split()
    model = FixedScores().fit(train)
    with pytest.raises(ValueError, match="k must be"):
        evaluate(model, train, test, k=0)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, train, test, batch_size=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        evaluate(FixedScores(), train, test)


def test_evaluate_exported_at_package_level():
    assert dprec.evaluate is evaluate


# ---------------------------------------------------------------------------------------------- strong protocol
def _strong_case():
    from dprec.split import StrongSplit

    items = ["a", "b", "c", "d", "e"]
    kw = dict(item_catalog=items, rating_bounds=(0, 1))

    def make(pairs, users):
        df = pd.DataFrame(pairs, columns=["user", "item"]).assign(rating=1.0)
        return Interactions.from_pandas(df, users=users, **kw)

    # popularity in train: a 4, b 3, c 2, d 1, e 0
    train = make(
        [("t1", i) for i in "abcd"] + [("t2", i) for i in "abc"] + [("t3", i) for i in "ab"] + [("t4", "a")],
        ["t1", "t2", "t3", "t4"],
    )
    history = make([("h1", "a"), ("h2", "b"), ("h2", "c")], ["h1", "h2"])
    targets = make([("h1", "b"), ("h1", "d"), ("h2", "e")], ["h1", "h2"])
    empty = Interactions(sp.csr_matrix((0, 5)), np.array([], dtype=object), np.array(items), rating_bounds=(0, 1))
    return StrongSplit(train, history, targets, empty, empty, 0.8, None)


def test_evaluate_strong_popularity_exact():
    split = _strong_case()
    model = dprec.Popularity().fit(split.train)
    res = dprec.metrics.evaluate_strong(model, split, k=2)
    # h1: history {a} → list [b, c] (top-20: b c d e), targets {b, d} → 1 hit at rank 1; top-20 recall 2/2.
    # h2: history {b, c} → list [a, d] (top-20: a d e), targets {e} → no hit; top-20 recall 1/1.
    ndcg_h1 = 1.0 / (1.0 + 1.0 / math.log2(3))
    assert res["precision_at_k"] == pytest.approx(0.25)
    assert res["recall_at_k"] == pytest.approx(0.25)
    assert res["ndcg_at_k"] == pytest.approx(ndcg_h1 / 2)
    assert res["hit_rate_at_k"] == pytest.approx(0.5)
    assert res["recall_at_20"] == pytest.approx(1.0)
    assert res["n_users_evaluated"] == 2 and res["k"] == 2
    assert res["coverage"] == pytest.approx(4 / 5)  # {a, b, c, d}
    assert len(model.user_ids) == 4  # the model itself was not modified


def test_evaluate_reports_recall_at_20_and_extra_k():
    train, test = _split()
    model = FixedScores().fit(train)
    res = evaluate(model, train, test, k=1, extra_k=(2, 3))
    assert "recall_at_2" in res and "recall_at_3" in res and "recall_at_20" not in res
    assert res["recall_at_2"] == pytest.approx(evaluate(model, train, test, k=2)["recall_at_k"])


def test_evaluate_strong_needs_fold_in_and_a_strong_split():
    split = _strong_case()
    model = dprec.Popularity().fit(split.train)
    with pytest.raises(TypeError, match="StrongSplit"):
        dprec.metrics.evaluate_strong(model, (split.train, split.targets))
    with pytest.raises(ValueError, match="no validation users"):
        dprec.metrics.evaluate_strong(model, split, on="validation")


@pytest.mark.parametrize(
    "make",
    [
        lambda: dprec.ALS(factors=3, iterations=2, rng=0),
        lambda: dprec.ALS(factors=3, iterations=2, feedback="implicit", rng=0),
        lambda: dprec.DPALS(epsilon=float("inf"), delta=1e-6, factors=3, rng=0),
        lambda: dprec.DPGlobalEffects(epsilon=float("inf"), delta=1e-6, rng=0),
    ],
)
def test_fold_in_many_matches_fold_in(make):
    from dprec.split import strong_generalization

    data = dprec.datasets.synthetic(n_users=120, n_items=40, rank=3, rng=0)
    split = strong_generalization(data, n_heldout_users=15, rng=0)
    one, many = make().fit(split.train), make().fit(split.train)
    for u in split.history.user_ids:
        items, vals = split.history.user_ratings(u)
        one.fold_in((items, vals), user=u)
    many.fold_in_many(split.history)
    users = split.history.user_ids
    a, b = one.recommend(users, 5), many.recommend(users, 5)
    assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])
    assert (one._seen != many._seen).nnz == 0
    with pytest.raises(ValueError, match="already known"):
        many.fold_in_many(split.history)
