"""Membership inference on served scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dprec import Interactions
from dprec.audit import membership as MI
from dprec.datasets import synthetic
from dprec.errors import ConfigError
from dprec.models import ALS, DPGlobalEffects
from dprec.split import user_holdout


def test_auc_against_pairwise_count():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    brute = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
    assert MI.auc(a, b) == pytest.approx(brute)
    assert MI.auc([2, 3], [0, 1]) == 1.0 and MI.auc([0], [0]) == 0.5
    with pytest.raises(ConfigError):
        MI.auc([], [1.0])


@pytest.fixture(scope="module")
def data():
    return synthetic(500, 150, 6, mean_ratings_per_user=20, rng=2)


def test_record_attack_on_overfit_als(data):
    train, test = user_holdout(data, 0.2, rng=0)
    overfit = ALS(factors=32, iterations=10, regularization=0.001, user_regularization=0.001, rng=0).fit(train)
    res = MI.record_membership_auc(overfit, train, test)
    assert res["auc"] > 0.7 and res["n_members"] > 0


def _halves(data, seed=0):
    df = data.to_pandas()
    inm = np.random.default_rng(seed).random(data.n_users) < 0.5
    mk = lambda keep: Interactions.from_pandas(  # noqa: E731
        df[df.user.isin(data.user_ids[keep])], rating_bounds=data.rating_bounds, item_catalog=data.item_ids
    )
    return mk(inm), mk(~inm)


def test_user_attack_separates_non_private_from_private(data):
    members, nonmembers = _halves(data)
    als = ALS(factors=32, iterations=10, regularization=0.001, user_regularization=0.001, rng=0).fit(members)
    leak = MI.user_membership_auc(als, members, nonmembers)
    assert leak["auc"] > 0.6 and leak["n_members"] == members.n_users
    # the user-level DP baseline releases only noisy item means: close to chance
    with pytest.warns(Warning):
        dp = DPGlobalEffects(epsilon=1.0, delta=1e-5, rng=0).fit(members)
    res = MI.user_membership_auc(dp, members, nonmembers)
    assert abs(res["auc"] - 0.5) < 0.1
    assert leak["auc"] > res["auc"] + 0.1
    assert isinstance(pd.Series(leak), pd.Series)
