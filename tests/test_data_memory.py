"""The memory-saving data paths give exactly what the paths they replace gave.

* the item-major weights by a counting sort (no transposed float64 copy of the matrix) against the old
  transposed-positions reference, and the item-major order against scipy's own CSR → CSC conversion;
* the int32 item index of the item-major CSR against the old int64 one;
* the chunked fingerprint against the one-shot hash of full copies;
* ``Interactions.from_pandas`` indexing the columns directly against an independent sorted-table build;
* ``Interactions.to_npz`` / ``from_npz(mmap_mode="r")``: the same data, and a seeded DP-ALS fit on the
  memory-mapped data equal to the fit on the in-memory data;
* a seeded default DP-ALS fit with the new item-major weights equal to one with the old reference path.
"""

from __future__ import annotations

import hashlib
import importlib
import mmap
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dprec import Interactions
from dprec.datasets import synthetic
from dprec.errors import DataError
from dprec.models import DPALS
from dprec.models import _biased_als as E


def _old_item_major_weights(X, w):
    """The replaced implementation: a float64 matrix of 1-based positions, transposed, read back."""
    pos = sp.csr_matrix((np.arange(X.nnz, dtype=np.float64) + 1, X.indices, X.indptr), shape=X.shape).T.tocsr()
    pos.sort_indices()
    return np.asarray(w)[pos.data.astype(np.int64) - 1]


def _old_fingerprint(d: Interactions) -> str:
    h = hashlib.sha256()
    m = d.matrix
    for arr in (m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.float64)):
        h.update(np.ascontiguousarray(arr).tobytes())
    for ids in (d.user_ids, d.item_ids):
        h.update("\x1f".join(map(str, ids.tolist())).encode())
        h.update(b"\x1e")
    h.update(repr((d.rating_bounds, d.public_items)).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data():
    return synthetic(n_users=1500, n_items=400, rank=4, mean_ratings_per_user=30, rng=7, timestamps=True)


def _with_empty_rows_and_columns():
    """A matrix with an empty first user, an empty last item and a user who rated every other item."""
    rng = np.random.default_rng(3)
    dense = (rng.random((60, 25)) < 0.3) * rng.integers(1, 6, (60, 25))
    dense[0] = 0
    dense[:, -1] = 0
    dense[5, :-1] = 3
    return sp.csr_matrix(dense.astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_item_major_weights_equal_the_old_path(data, dtype):
    for X in (data.matrix, _with_empty_rows_and_columns()):
        w = np.random.default_rng(0).random(X.nnz).astype(dtype)
        new = E.item_major_weights(X, w)
        assert new.dtype == dtype
        np.testing.assert_array_equal(new, _old_item_major_weights(X, w))


def test_item_major_weights_refuse_a_wrong_length(data):
    with pytest.raises(ValueError, match="one entry per rating"):
        E.item_major_weights(data.matrix, np.ones(data.nnz - 1))


def test_item_major_order_is_scipys_transposition(data):
    for X in (data.matrix, _with_empty_rows_and_columns()):
        Xt, item_t = E.item_major(X)
        perm = E.item_major_order(X)
        assert perm.dtype == np.int32
        np.testing.assert_array_equal(Xt.data, X.data[perm])
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        np.testing.assert_array_equal(Xt.indices, rows[perm])
        # the int32 item index holds the old int64 values
        assert item_t.dtype == Xt.indices.dtype == np.int32
        np.testing.assert_array_equal(item_t, np.repeat(np.arange(X.shape[1]), np.diff(Xt.indptr)))


def test_chunked_fingerprint_equals_the_full_copy_hash(data, monkeypatch):
    import dprec.data as D

    want = _old_fingerprint(data)
    assert data.fingerprint() == want
    monkeypatch.setattr(D, "_HASH_CHUNK", 1000)  # many chunks, a short last one
    assert data.fingerprint() == want
    tiny = Interactions.from_csr(sp.csr_matrix(np.array([[4.0]])), rating_bounds=(1, 5))
    assert tiny.fingerprint() == _old_fingerprint(tiny)


def _fit(d):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reproducibility-mode and selection warnings
        return DPALS(epsilon=10.0, delta=1e-5, rng=11).fit(d)


def _assert_same_model(a, b):
    for attr in ("global_mean_", "item_bias_", "item_counts_", "item_factors_", "user_factors_", "user_bias_"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)


def _maps_a_file(arr) -> bool:
    """Whether ``arr`` is (a view of) a memory map: some array in its ``base`` chain is an ``np.memmap``."""
    while isinstance(arr, np.ndarray):
        if isinstance(arr, np.memmap):
            return True
        arr = arr.base
    return isinstance(arr, mmap.mmap)


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_npz_round_trip(data, tmp_path, mmap_mode):
    path = tmp_path / "ratings.npz"
    data.to_npz(path)
    back = Interactions.from_npz(path, mmap_mode=mmap_mode)
    assert back.fingerprint() == data.fingerprint() and back.dataset_id == data.dataset_id
    assert (back.shape, back.rating_bounds, back.public_items, back.name) == (
        data.shape,
        data.rating_bounds,
        data.public_items,
        data.name,
    )
    np.testing.assert_array_equal(back.timestamps, data.timestamps)
    np.testing.assert_array_equal(back.user_ids, data.user_ids)
    if mmap_mode == "r":  # the big arrays are views of a read-only map of the file, not copies
        for arr in (back.matrix.data, back.matrix.indices, back.matrix.indptr, back.timestamps):
            assert not arr.flags.writeable and _maps_a_file(arr)


def test_fit_on_memory_mapped_data_equals_fit_in_memory(data, tmp_path):
    path = tmp_path / "ratings.npz"
    data.to_npz(path)
    _assert_same_model(_fit(Interactions.from_npz(path, mmap_mode="r")), _fit(data))


def test_npz_string_ids_and_errors(tmp_path):
    d = Interactions.from_csr(
        sp.csr_matrix(np.array([[4.0, 0.0], [0.0, 2.0], [1.0, 5.0]])),
        user_ids=["ann", "bo", "cy"],
        item_ids=["x", "y"],
        rating_bounds=(1, 5),
    )
    d.to_npz(tmp_path / "s.npz")
    back = Interactions.from_npz(tmp_path / "s.npz", mmap_mode="r")
    assert back.user_ids.tolist() == ["ann", "bo", "cy"] and back.fingerprint() == d.fingerprint()
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        Interactions.from_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(DataError, match="lacks meta"):
        Interactions.from_npz(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="mmap_mode"):
        Interactions.from_npz(tmp_path / "s.npz", mmap_mode="w+")
    big = Interactions.from_csr(sp.csr_matrix(np.array([[3.0]])), user_ids=np.array([2**70], dtype=object))
    with pytest.raises(DataError, match="convert them to strings"):
        big.to_npz(tmp_path / "big.npz")


def test_default_dpals_fit_equals_the_old_weights_path(data, monkeypatch):
    new = _fit(data)
    monkeypatch.setattr(E, "item_major_weights", _old_item_major_weights)
    _assert_same_model(new, _fit(data))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rng": 0},
        {"rng": 1, "round_ratings": False, "timestamps": True},
        {"rng": 2, "implicit": "count"},
        {"rng": 3, "exposure": "affinity"},
    ],
)
def test_synthetic_does_not_depend_on_the_chunk_size(kwargs, monkeypatch):
    """Chunked generation equals the one-shot computation: one chunk holding everything vs chunks of 997
    entries (the pinned fingerprints of tests/datasets pin the draws themselves)."""
    S = importlib.import_module("dprec.datasets.synthetic")  # the module (the package exports the function)
    size = dict(n_users=900, n_items=300, rank=4, mean_ratings_per_user=25)
    monkeypatch.setattr(S, "_CHUNK", 1 << 40)
    whole = synthetic(**size, **kwargs)
    monkeypatch.setattr(S, "_CHUNK", 997)
    chunked = synthetic(**size, **kwargs)
    assert whole.nnz > 20 * 997
    assert chunked.fingerprint() == whole.fingerprint()
    np.testing.assert_array_equal(chunked.matrix.data, whole.matrix.data)
    assert chunked.matrix.indices.dtype == np.int32


def _reference_from_table(df):
    """An independent construction: the table sorted by (user, item), vocabularies its sorted unique ids."""
    users, items = np.sort(df["user"].unique()), np.sort(df["item"].unique())
    s = df.assign(r=np.searchsorted(users, df["user"]), c=np.searchsorted(items, df["item"]))
    s = s.sort_values(["r", "c"], kind="stable")
    m = sp.csr_matrix((s["rating"].to_numpy(), (s["r"].to_numpy(), s["c"].to_numpy())), shape=(len(users), len(items)))
    return m, users, items, s["timestamp"].to_numpy()


def test_from_pandas_without_duplicates_equals_the_sorted_table(data):
    """``from_pandas`` indexes the columns directly (no working copy of the table, no pair hashing) when no
    (user, item) pair repeats; the result is the sorted table's CSR."""
    df = data.to_pandas().sample(frac=1.0, random_state=0)  # shuffled rows
    df["user"] = "u" + df["user"].astype(str)  # string ids: sorted as text (u10 < u2)
    built = Interactions.from_pandas(df, timestamp_col="timestamp", rating_bounds=(1, 5))
    m, users, items, ts = _reference_from_table(df)
    assert built.user_ids.tolist() == users.tolist() and built.item_ids.tolist() == items.tolist()
    assert (built.matrix != m).nnz == 0 and built.nnz == m.nnz
    np.testing.assert_array_equal(built.matrix.data, m.data)
    np.testing.assert_array_equal(built.timestamps, ts)


def test_from_pandas_still_resolves_duplicates(data):
    df = data.to_pandas().head(500)
    twice = pd.concat([df, df.assign(rating=np.clip(df["rating"] + 1, 1, 5))], ignore_index=True)
    with pytest.raises(ValueError, match="repeat a \\(user, item\\) pair"):
        Interactions.from_pandas(twice, rating_bounds=(1, 5))
    summed = Interactions.from_pandas(twice, rating_bounds=(1, 10), duplicates="sum")
    m, _, _, _ = _reference_from_table(twice)  # scipy sums duplicate entries
    np.testing.assert_array_equal(summed.matrix.toarray(), m.toarray())
    last = Interactions.from_pandas(twice, rating_bounds=(1, 5), duplicates="last")
    np.testing.assert_array_equal(last.matrix.toarray(), _reference_from_table(twice.iloc[500:])[0].toarray())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_unit_weights_share_the_user_solvers_ones(data, dtype):
    """``run(weights=None)`` reads the user solver's ones instead of its own nnz array: the same fit as the
    explicit float32 ones it used to allocate."""
    X, d = data.matrix, 4
    V = E.random_item_factors(np.random.default_rng(0), X.shape[1], d, 0.1)
    mu, c, counts = E.global_effects(X, 0.3, 10.0)
    kw = dict(mu=mu, item_bias=c, iterations=2, user_reg=0.03, bias_reg=10.0, dtype=dtype)
    solve = lambda: E.exact_item_solver(counts, d, 0.1, 100.0)  # noqa: E731 (a fresh output buffer per run)
    new = E.run(X, V, solve=solve(), **kw)
    old = E.run(X, V, solve=solve(), weights=np.ones(X.nnz, dtype=np.float32), **kw)
    for a, b in zip(new, old):
        np.testing.assert_array_equal(a, b)
