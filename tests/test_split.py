"""Splits: disjoint, complete, aligned vocabularies, right fractions, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from dprec.datasets import synthetic
from dprec.split import binarize, leave_k_out, random_split, strong_generalization, temporal_split, user_holdout


def _pairs(d):
    coo = d.matrix.tocoo()
    return coo.row.astype(np.int64) * d.n_items + coo.col


def _check_partition(data, train, test):
    assert train.shape == test.shape == data.shape
    assert np.array_equal(train.user_ids, data.user_ids) and np.array_equal(test.user_ids, data.user_ids)
    assert np.array_equal(train.item_ids, data.item_ids) and np.array_equal(test.item_ids, data.item_ids)
    assert train.rating_bounds == test.rating_bounds == data.rating_bounds
    assert train.public_items == test.public_items == data.public_items
    a, b = _pairs(train), _pairs(test)
    assert np.intersect1d(a, b).size == 0  # disjoint
    assert train.nnz + test.nnz == data.nnz
    assert (train.matrix + test.matrix != data.matrix).nnz == 0  # union = original (values too)
    if data.timestamps is not None:  # timestamps travel with their ratings
        full = dict(zip(_pairs(data).tolist(), data.timestamps.tolist()))
        for part in (train, test):
            assert [full[p] for p in _pairs(part).tolist()] == part.timestamps.tolist()


SPLITS = {
    "random": lambda d, seed: random_split(d, 0.2, rng=seed),
    "user": lambda d, seed: user_holdout(d, 0.2, rng=seed),
    "loo": lambda d, seed: leave_k_out(d, 2, rng=seed),
    "loo_time": lambda d, seed: leave_k_out(d, 1, by="time"),
    "temporal": lambda d, seed: temporal_split(d, 0.25),
}


@pytest.mark.parametrize("kind", SPLITS)
def test_partition_properties(synthetic_small, kind):
    train, test = SPLITS[kind](synthetic_small, 0)
    _check_partition(synthetic_small, train, test)


@pytest.mark.parametrize("kind", ["random", "user", "loo"])
def test_seeded_reproducibility(synthetic_small, kind):
    a = SPLITS[kind](synthetic_small, 7)
    b = SPLITS[kind](synthetic_small, 7)
    c = SPLITS[kind](synthetic_small, 8)
    assert a[1].fingerprint() == b[1].fingerprint() and a[0].fingerprint() == b[0].fingerprint()
    assert a[1].fingerprint() != c[1].fingerprint()
    gen_a = SPLITS[kind](synthetic_small, np.random.default_rng(3))
    gen_b = SPLITS[kind](synthetic_small, np.random.default_rng(3))
    assert gen_a[1].fingerprint() == gen_b[1].fingerprint()


def test_random_split_fraction(synthetic_small):
    train, test = random_split(synthetic_small, 0.3, rng=0)
    assert test.nnz == round(0.3 * synthetic_small.nnz)


def test_user_holdout_per_user(synthetic_small):
    data = synthetic_small
    train, test = user_holdout(data, 0.2, rng=0)
    n = np.diff(data.matrix.indptr)
    n_tr, n_te = np.diff(train.matrix.indptr), np.diff(test.matrix.indptr)
    expected = np.minimum(np.floor(0.2 * n + 0.5), n - 1).clip(0)
    assert np.array_equal(n_te, expected)
    assert np.all(n_tr[n >= 1] >= 1)  # every user keeps something in train
    assert np.all(n_tr[n >= 2] >= 1)


def test_user_holdout_min_train(small_data):
    # each user of small_data has 3 ratings; fraction 0.5 -> round(1.5) = 2 held out, min_train=2 leaves 1
    train, test = user_holdout(small_data, 0.5, rng=0, min_train=2)
    assert np.all(np.diff(train.matrix.indptr) == 2) and np.all(np.diff(test.matrix.indptr) == 1)
    with pytest.raises(ValueError, match="no rating in the test set"):
        user_holdout(small_data, 0.1, rng=0)  # round(0.3) = 0 for every user


def test_temporal_respects_cut(synthetic_small):
    train, test = temporal_split(synthetic_small, 0.2)
    assert train.timestamps.max() < test.timestamps.min()
    assert abs(test.nnz - 0.2 * synthetic_small.nnz) <= 5  # ties at the cut can only add a few
    cut = int(np.median(synthetic_small.timestamps))
    tr, te = temporal_split(synthetic_small, cutoff=cut)
    assert tr.timestamps.max() < cut <= te.timestamps.min()


def test_temporal_needs_timestamps_and_one_criterion(synthetic_small):
    no_ts = synthetic(50, 40, 2, rng=1)
    with pytest.raises(ValueError, match="temporal_split needs timestamps"):
        temporal_split(no_ts)
    with pytest.raises(ValueError, match="not both"):
        temporal_split(synthetic_small, 0.2, cutoff=5)
    with pytest.raises(ValueError, match="every rating in the test set"):
        temporal_split(synthetic_small, cutoff=0)
    with pytest.raises(ValueError, match='by="time"\\) needs timestamps'):
        leave_k_out(no_ts, by="time")


def test_leave_k_out(small_data):
    train, test = leave_k_out(small_data, 1, by="time")
    # the latest rating of each user is held out
    for user in small_data.user_ids:
        items, _ = small_data.user_ratings(user)
        t_items, _ = test.user_ratings(user)
        assert len(t_items) == 1
    latest = {"alice": "i3", "bob": "i5", "carol": "i4", "dave": "i3"}
    assert {u: test.user_ratings(u)[0][0] for u in small_data.user_ids} == latest
    tr, te = leave_k_out(small_data, 2, rng=0)
    assert np.all(np.diff(te.matrix.indptr) == 2)
    # users with fewer than k + min_train ratings stay in train entirely (here: all of them)
    with pytest.raises(ValueError, match="no rating in the test set"):
        leave_k_out(small_data, 3, rng=0)
    with pytest.raises(ValueError, match="every rating in the test set"):
        leave_k_out(small_data, 3, rng=0, min_train=0)
    extra = small_data.to_pandas()
    extra.loc[len(extra)] = ["alice", "i4", 2.0, 30]
    from dprec import Interactions

    d = Interactions.from_pandas(extra, timestamp_col="timestamp", rating_bounds=(0.5, 5))
    tr, te = leave_k_out(d, 3, rng=0)  # only alice has 4 >= k + min_train ratings
    assert te.nnz == 3 and te.user_ratings("alice")[0].size == 3 and tr.user_ratings("alice")[0].size == 1


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_fraction_validation(small_data, bad):
    for fn in (
        lambda: random_split(small_data, bad, rng=0),
        lambda: user_holdout(small_data, bad, rng=0),
        lambda: temporal_split(small_data, bad),
    ):
        with pytest.raises(ValueError, match=r"test_fraction must (lie|be a number) in \(0, 1\)"):
            fn()


def test_argument_validation(small_data):
    with pytest.raises(ValueError, match="k must be an integer ≥ 1"):
        leave_k_out(small_data, 0, rng=0)
    with pytest.raises(ValueError, match="k must be an integer"):
        leave_k_out(small_data, 1.5, rng=0)
    with pytest.raises(ValueError, match='by must be "random" or "time"'):
        leave_k_out(small_data, 1, rng=0, by="popularity")
    with pytest.raises(ValueError, match="test_fraction must be a number"):
        random_split(small_data, "0.2", rng=0)
    with pytest.raises(TypeError, match="dprec.Interactions"):
        random_split(small_data.matrix, 0.2, rng=0)
    with pytest.raises(TypeError):
        random_split(small_data, 0.2)  # rng is required: splits are reproducible by default


# --------------------------------------------------------------------------- strong generalisation
def _user_items(d, u):
    row = d.user_inner([u])[0]
    m = d.matrix
    return set(d.item_ids[m.indices[m.indptr[row] : m.indptr[row + 1]]].tolist())


def test_binarize_keeps_ratings_above_threshold_as_ones():
    data = synthetic(n_users=80, n_items=40, rank=3, rng=0)
    b = binarize(data, 3.5)
    assert b.shape == data.shape and b.rating_bounds == (0.0, 1.0)
    assert b.nnz == int((data.matrix.data > 3.5).sum()) and np.all(b.matrix.data == 1.0)
    assert np.array_equal((data.matrix > 3.5).astype(float).toarray(), b.matrix.toarray())
    assert b.dataset_id == data.dataset_id
    with pytest.raises(ValueError, match="no rating"):
        binarize(data, 100)


def test_strong_generalization_invariants():
    data = synthetic(n_users=300, n_items=60, rank=3, rng=0)
    s = strong_generalization(data, n_heldout_users=40, n_validation_users=20, rng=0, positive_threshold=3.5)
    pos = binarize(data, 3.5)
    held = set(s.heldout_users.tolist())
    val = set(s.validation_users.tolist())
    assert len(held) == 40 and len(val) == 20 and not held & val
    assert not (held | val) & set(s.train.user_ids.tolist())  # held-out users absent from train
    assert s.train.n_users == data.n_users - 60
    assert np.array_equal(s.train.item_ids, data.item_ids) and np.array_equal(s.history.item_ids, data.item_ids)
    assert np.array_equal(s.history.user_ids, s.targets.user_ids)
    # train users keep all their positives; held-out users: history ∪ targets = positives, disjoint, 80/20
    for u in s.train.user_ids[:20]:
        assert _user_items(s.train, u) == _user_items(pos, u)
    for hist, tgt in ((s.history, s.targets), (s.val_history, s.val_targets)):
        for u in hist.user_ids:
            h, t = _user_items(hist, u), _user_items(tgt, u)
            assert h | t == _user_items(pos, u) and not h & t and h and t
            n = len(h) + len(t)
            assert len(t) == min(max(int(np.floor(0.2 * n + 0.5)), 1), n - 1)
    assert s.train.nnz + s.history.nnz + s.targets.nnz + s.val_history.nnz + s.val_targets.nnz == pos.nnz
    assert s.train.dataset_id == data.dataset_id


def test_strong_generalization_seeded_and_fractions():
    data = synthetic(n_users=200, n_items=50, rank=3, rng=1)
    a = strong_generalization(data, heldout_fraction=0.1, rng=3)
    b = strong_generalization(data, n_heldout_users=0.1, rng=3)
    c = strong_generalization(data, heldout_fraction=0.1, rng=4)
    eligible = int((np.diff(data.matrix.indptr) >= 2).sum())
    assert a.history.n_users == round(0.1 * eligible)
    assert np.array_equal(a.heldout_users, b.heldout_users)
    assert (a.targets.matrix != b.targets.matrix).nnz == 0
    assert not np.array_equal(a.heldout_users, c.heldout_users)
    assert a.positive_threshold is None and a.history.rating_bounds == data.rating_bounds
    d = strong_generalization(data, n_heldout_users=20, history_fraction=0.5, rng=0)
    n = np.diff(d.history.matrix.indptr) + np.diff(d.targets.matrix.indptr)
    assert np.array_equal(np.diff(d.targets.matrix.indptr), np.clip(np.floor(0.5 * n + 0.5), 1, n - 1))


def test_strong_generalization_errors():
    data = synthetic(n_users=50, n_items=20, rank=2, rng=0)
    with pytest.raises(ValueError, match="exactly one"):
        strong_generalization(data, rng=0)
    with pytest.raises(ValueError, match="hold out fewer"):
        strong_generalization(data, n_heldout_users=40, n_validation_users=10, rng=0)
    with pytest.raises(ValueError, match="history_fraction"):
        strong_generalization(data, n_heldout_users=5, history_fraction=1.0, rng=0)
    with pytest.raises(ValueError, match="min_ratings"):
        strong_generalization(data, n_heldout_users=5, min_ratings=1, rng=0)
