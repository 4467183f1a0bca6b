"""Bias audit: popularity metrics by hand, per-group figures consistent with dprec.evaluate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dprec import Interactions, evaluate
from dprec.audit import bias as B
from dprec.datasets import synthetic
from dprec.errors import ConfigError
from dprec.models import ALS, Popularity
from dprec.split import user_holdout


def test_gini_known_values():
    assert B.gini([3, 3, 3, 3]) == pytest.approx(0.0)
    assert B.gini([0, 0, 0, 7]) == pytest.approx(3 / 4)
    assert B.gini([1, 2, 3]) == pytest.approx((-2 * 1 + 0 * 2 + 2 * 3) / (3 * 6))
    with pytest.raises(ValueError):
        B.gini([-1, 2])


def test_long_tail_items():
    # 100 interactions: the least popular items holding ≤ 20: 0 (0), 1 (5), 2 (10) → 15; adding 3 (25) is 40
    pop = np.array([60, 5, 0, 10, 25])[[2, 1, 3, 4, 0]]  # = [0, 5, 10, 25, 60]
    assert B.long_tail_items(pop, 0.2).tolist() == [True, True, True, False, False]


@pytest.fixture
def tiny_train():
    # 3 users × 5 items; popularity φ = [3, 2, 1, 0, 0]
    X = sp.csr_matrix(np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=float))
    return Interactions.from_csr(X, public_items=True)


def test_popularity_bias_by_hand(tiny_train):
    topk = np.array([[3, 4], [2, 3], [1, -1]])
    res = B.popularity_bias(topk, tiny_train, long_tail_share=0.2)
    # tail: ≤ 20% of 6 interactions = 1.2 → items 3, 4 (0 each) and 2 (1)
    assert res["n_tail_items"] == 3
    assert res["arp"] == pytest.approx(np.mean([0.0, 0.5, 2.0]))
    assert res["aplt"] == pytest.approx(np.mean([1.0, 1.0, 0.0]))
    hist = np.array([(3 + 2 + 1) / 3, (3 + 2) / 2, 3.0])
    assert res["history_popularity"] == pytest.approx(hist.mean())
    assert res["popularity_lift"] == pytest.approx(np.mean((np.array([0.0, 0.5, 2.0]) - hist) / hist))
    assert res["coverage"] == pytest.approx(4 / 5)
    assert res["gini_exposure"] == pytest.approx(B.gini([0, 1, 1, 2, 1]))


@pytest.fixture(scope="module")
def split():
    d = synthetic(600, 200, 6, mean_ratings_per_user=25, rng=1)
    return user_holdout(d, 0.2, rng=0)


@pytest.fixture(scope="module")
def als(split):
    return ALS(factors=8, iterations=5, rng=0).fit(split[0])


def test_groups_reproduce_evaluate(split, als):
    train, test = split
    attr = pd.Series(np.where(train.user_ids % 3 == 0, "a", "b"), index=train.user_ids)
    res = B.audit_bias(als, train, test, groups={"parity": attr}, k=10)
    ev = evaluate(als, train, test, k=10)
    assert res.overall["ndcg_at_k"] == pytest.approx(ev["ndcg_at_k"], rel=1e-12)
    assert res.overall["rmse"] == pytest.approx(ev["rmse"], rel=1e-12)
    assert res.overall["popularity"]["coverage"] == pytest.approx(ev["coverage"])
    for attribute in ("activity", "parity"):
        g = res.groups[res.groups.attribute == attribute]
        assert g.n_users.sum() == train.n_users
        # group means weighted by group size give back the overall mean
        w = g.n_ranked_users / g.n_ranked_users.sum()
        assert (w * g.ndcg_at_k).sum() == pytest.approx(ev["ndcg_at_k"], rel=1e-9)
        # and each group's figure is evaluate restricted to the group's users
        one = g.iloc[0]
        users = train.user_ids[(attr if attribute == "parity" else B.activity_groups(train)).to_numpy() == one.group]
        sub = evaluate(als, train, test, k=10, users=users)
        assert one.ndcg_at_k == pytest.approx(sub["ndcg_at_k"], rel=1e-12)
        assert one.rmse == pytest.approx(sub["rmse"], rel=1e-12)
    act = res.groups[res.groups.attribute == "activity"]
    assert act.group.tolist() == ["Q1", "Q2", "Q3", "Q4"] and act.n_users.max() - act.n_users.min() <= 1
    gap = res.gaps[(res.gaps.attribute == "activity") & (res.gaps.metric == "rmse")].iloc[0]
    assert gap.gap == pytest.approx(act.rmse.max() - act.rmse.min())
    assert gap.best == pytest.approx(act.rmse.min()) and gap.best_group == act.loc[act.rmse.idxmin(), "group"]
    flat = res.flat_metrics()
    assert "gap_ndcg_at_k[parity]" in flat and "gini_exposure" in flat
    assert "not differentially private" in " ".join(res.notes)


def test_small_groups_left_out_of_gaps(split, als):
    train, test = split
    attr = pd.Series("big", index=train.user_ids)
    attr.iloc[:5] = "tiny"
    res = B.audit_bias(als, train, test, groups=pd.DataFrame({"g": attr}), min_group_users=20)
    assert set(res.groups[res.groups.attribute == "g"].group) == {"big", "tiny"}
    assert res.gaps[res.gaps.attribute == "g"].empty  # one eligible group: no gap


def test_popularity_model_is_popularity_biased(split):
    train, test = split
    res = B.audit_bias(Popularity().fit(train), train, test)
    p = res.overall["popularity"]
    assert p["popularity_lift"] > 0 and p["aplt"] == 0.0 and p["gini_exposure"] > 0.9
    assert np.isnan(res.overall["rmse"]) or res.overall["rmse"] > 0


def test_bad_groups(split, als):
    train, test = split
    with pytest.raises(ConfigError, match="shares no user id"):
        B.audit_bias(als, train, test, groups={"x": pd.Series(["a"], index=["nobody"])})
    with pytest.raises(ConfigError, match="reserved"):
        B.audit_bias(als, train, test, groups={"activity": pd.Series("a", index=train.user_ids)})
