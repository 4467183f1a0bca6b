"""Top-n serving kernels (``dprec.kernels.topk``) and ``recommend``'s fast path against a plain reference.

The reference is the definition: a row's top ``n`` are the first ``n`` of its candidates (allowed, not seen,
finite score) sorted by ``(-score, index)``, padded with ``-1`` / ``-inf``. Scores are built with many exact
ties (small integers) so that every tie rule is exercised; factor tests use integer factors whose float64 dot
products are exact while their float32 ones are not, so the float32 filter must be corrected to pass.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from dprec.kernels.topk import topk_dense
from dprec.models import ALS, DPALS
from dprec.models.base import DotScores, topk_rows
from dprec.models.dpimplicit import DPImplicitALS
from dprec.testing.contract import contract_data


def reference(scores, allowed, seen, n):
    """``(idx, val)`` by the definition (module docstring); ``seen`` is a list of per-row index sets."""
    m, N = scores.shape
    idx, val = np.full((m, n), -1, np.int64), np.full((m, n), -np.inf)
    for b in range(m):
        cand = [j for j in range(N) if allowed[j] and j not in seen[b] and np.isfinite(scores[b, j])]
        top = sorted(cand, key=lambda j: (-scores[b, j], j))[:n]
        idx[b, : len(top)] = top
        val[b, : len(top)] = scores[b, top]
    return idx, val


def _seen_csr(seen, N):
    rows = [np.array(sorted(s), np.int64) for s in seen]
    # int32, as scipy's CSR and recommend() pass them (the kernels compile once per index dtype)
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int32)
    indices = np.concatenate(rows + [np.zeros(0, np.int64)]).astype(np.int32)
    return indptr, indices


@st.composite
def problems(draw):
    m = draw(st.integers(1, 12))
    N = draw(st.integers(1, 150))  # spans several scan blocks of 64 and a ragged tail
    levels = draw(st.integers(1, 6))  # few distinct values: many ties, also at the cut-off
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seen = [set(np.flatnonzero(rng.random(N) < draw(st.floats(0, 0.6))).tolist()) for _ in range(m)]
    allowed = rng.random(N) < draw(st.floats(0.2, 1.0))
    n = draw(st.integers(1, N + 3))
    return m, N, levels, rng, seen, allowed, n


@settings(max_examples=60, deadline=None)
@given(problems())
def test_topk_dense_equals_reference_with_ties_and_non_finite(problem):
    m, N, levels, rng, seen, allowed, n = problem
    S = rng.integers(0, levels, size=(m, N)).astype(np.float64)
    S[rng.random((m, N)) < 0.1] = -np.inf
    S[rng.random((m, N)) < 0.03] = np.inf  # non-finite scores are never candidates (recommend pads them)
    S[rng.random((m, N)) < 0.03] = np.nan
    indptr, indices = _seen_csr(seen, N)
    n_out = min(n, N)
    idx, val = np.full((m, n_out), -1, np.int64), np.full((m, n_out), -np.inf)
    topk_dense(S, allowed, indptr, indices, np.arange(m, dtype=np.int64), n_out, idx, val)
    ri, rv = reference(S, allowed, seen, n_out)
    np.testing.assert_array_equal(idx, ri)
    np.testing.assert_array_equal(val, rv)


def _dot_reference_scores(U, V, row_off, item_off):
    return (row_off[:, None] + item_off[None, :]) + U.astype(np.float64) @ V.astype(np.float64).T


@settings(max_examples=60, deadline=None)
@given(problems(), st.booleans(), st.booleans())
def test_dot_scores_equal_reference_float32_inexact(problem, biases, masked):
    """Integer factors up to 2¹²: float64 dot products are exact, float32 ones (sgemm) are not beyond 2²⁴."""
    m, N, levels, rng, seen, allowed, n = problem
    k = int(rng.integers(1, 9))
    U = rng.integers(-(2**12), 2**12, size=(m, k)).astype(np.float32)
    V = (rng.integers(0, levels, size=(N, k)) * 1021).astype(np.float32)  # repeated rows: exact ties
    mean, ub, ib = 0.0, None, None
    if biases:
        mean = 0.5
        ub = rng.integers(-3, 3, m).astype(np.float64)
        ib = rng.integers(0, levels, N).astype(np.float64) * 2.0**20  # ties and exact float64 sums
    mask = rng.random(N) < 0.8 if masked else None
    form = DotScores(U, V, global_mean=mean, user_bias=ub, item_bias=ib, item_mask=mask)
    indptr, indices = _seen_csr(seen, N)
    n_out = min(n, N)
    idx, val = np.full((m, n_out), -1, np.int64), np.full((m, n_out), -np.inf)
    form.topk(np.arange(m), allowed, indptr, indices, np.arange(m), n_out, idx, val)
    row_off = mean + (ub if ub is not None else np.zeros(m))
    S = _dot_reference_scores(U, V, row_off, ib if ib is not None else np.zeros(N))
    ri, rv = reference(S, allowed & (mask if mask is not None else True), seen, n_out)
    np.testing.assert_array_equal(idx, ri)
    np.testing.assert_array_equal(val, rv)


@settings(max_examples=40, deadline=None)
@given(problems(), st.sampled_from([0.3, 1.0]))
def test_normalised_dot_scores_equal_reference(problem, beta):
    """DP implicit ALS's form ``(1 − β)·u·v_j / max_l |u·v_l| + β·p_j`` (M over every item)."""
    m, N, levels, rng, seen, allowed, n = problem
    k = int(rng.integers(1, 6))
    U = rng.integers(-(2**12), 2**12, size=(m, k)).astype(np.float32)
    U[0] = 0.0  # a user whose dot products are all 0: scores are β·p_j
    V = (rng.integers(-levels, levels, size=(N, k)) * 1021).astype(np.float32)
    pop = rng.integers(0, levels, N) / levels
    form = DotScores(U, V, item_mask=None, beta=beta, popularity=pop)
    indptr, indices = _seen_csr(seen, N)
    n_out = min(n, N)
    idx, val = np.full((m, n_out), -1, np.int64), np.full((m, n_out), -np.inf)
    form.topk(np.arange(m), allowed, indptr, indices, np.arange(m), n_out, idx, val)
    s = U.astype(np.float64) @ V.astype(np.float64).T
    M = np.abs(s).max(axis=1, keepdims=True)
    s = np.divide(s, M, out=np.zeros_like(s), where=M > 0)
    ri, rv = reference((1.0 - beta) * s + beta * pop[None, :], allowed, seen, n_out)
    np.testing.assert_array_equal(idx, ri)
    np.testing.assert_array_equal(val, rv)


def test_float32_tie_is_resolved_in_float64():
    """Two items whose float32 scores tie (2²⁴ and 2²⁴ + 1 both round to 2²⁴): the float32-only answer (the
    smaller index) is wrong; the exact one is the larger score. A bare float32 kernel fails this test."""
    U = np.array([[1.0, 1.0]], np.float32)
    V = np.array([[2.0**24, 0.0], [2.0**24, 1.0]], np.float32)
    assert np.float32(2.0**24) + np.float32(1.0) == np.float32(2.0**24)
    idx, val = np.full((1, 1), -1, np.int64), np.full((1, 1), -np.inf)
    empty = np.zeros(2, np.int32), np.zeros(0, np.int32)
    DotScores(U, V).topk(np.array([0]), np.ones(2, bool), *empty, np.array([-1]), 1, idx, val)
    assert idx[0, 0] == 1 and val[0, 0] == 2.0**24 + 1


def _old_recommend(model, rows, n, filter_seen):
    """What ``recommend`` computed before the fast path: dense float64 ``_scores``, seen set to -inf, topk_rows."""
    sc = np.asarray(model._scores(rows), np.float64).copy()
    if filter_seen:
        for b, r in enumerate(rows):
            sc[b, model._seen.indices[model._seen.indptr[r] : model._seen.indptr[r + 1]]] = -np.inf
    return topk_rows(sc, n)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ALS(factors=8, iterations=3, rng=0),
        lambda: ALS(factors=8, iterations=3, feedback="implicit", rng=0),
        lambda: DPALS(epsilon=10, delta=1e-5, rng=0),
        lambda: DPImplicitALS(epsilon=10, delta=1e-5, rng=0),
        lambda: DPImplicitALS(epsilon=10, delta=1e-5, rng=0, popularity_weight=0.0),
    ],
    ids=["als-explicit", "als-implicit", "dpals", "dp-implicit", "dp-implicit-beta0"],
)
def test_recommend_fast_path_equals_dense_scores(make):
    """Each factor model serves through ``DotScores`` and returns exactly what its own float64 ``_scores``
    rank to (ids and scores, padding included), with and without seen filtering."""
    data = contract_data(200, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make().fit(data)
    assert model._fast_dot_scores() is not None
    rows = np.arange(len(data.user_ids))
    for n in (1, 10, 60):
        for filter_seen in (True, False):
            ids, val = model.recommend(data.user_ids, n=n, filter_seen=filter_seen)
            ri, rv = _old_recommend(model, rows, n, filter_seen)
            pad = ~np.isfinite(rv)
            np.testing.assert_array_equal(~np.isfinite(val), pad)
            expect = model.item_ids[ri].astype(object)
            np.testing.assert_array_equal(np.where(pad, None, ids.astype(object)), np.where(pad, None, expect))
            np.testing.assert_array_equal(np.where(pad, 0, val), np.where(pad, 0, rv))


def test_subclass_overriding_scores_leaves_the_fast_path():
    """A subclass that changes ``_scores`` (and not ``_dot_scores``) is served from its own ``_scores``."""

    class Shifted(ALS):
        def _scores(self, rows):
            return -super()._scores(rows)

    data = contract_data(60, 30)
    model = Shifted(factors=4, iterations=2, rng=0).fit(data)
    assert model._fast_dot_scores() is None
    ids, val = model.recommend(data.user_ids[:5], n=5)
    ri, rv = _old_recommend(model, np.arange(5), 5, True)
    np.testing.assert_array_equal(ids, model.item_ids[ri])
    np.testing.assert_array_equal(val, rv)


def test_items_restriction_and_unknown_users_on_the_fast_path():
    data = contract_data(60, 30)
    model = ALS(factors=4, iterations=2, rng=0).fit(data)
    cand = list(data.item_ids[::3])
    ids, val = model.recommend([data.user_ids[0], "nobody"], n=20, items=cand, filter_seen=False)
    assert set(ids[0][np.isfinite(val[0])]) <= set(cand) and np.isfinite(val[0]).sum() == len(cand)
    fb = model._fallback_scores()[None, :].copy()
    allowed = np.isin(data.item_ids, cand)
    fi, fv = reference(fb, allowed, [set()], 20)
    np.testing.assert_array_equal(val[1], fv[0])
    assert sp.issparse(model._seen)
