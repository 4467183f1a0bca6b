"""Batch top-10 serving speed against ``implicit`` in the same run (issue 16, last row of the table).

Run::

    pytest benchmarks/test_bench_serving.py -s --benchmark-disable-gc      # ~2 minutes on 2 cores

Data: a seeded synthetic implicit-feedback matrix, ``N_USERS`` × ``N_ITEMS`` (power-law item popularity,
topic structure), split per user into 80 % train / 20 % held out (seed 0). ``ALS(feedback="implicit")`` with
``FACTORS`` factors is fitted once (float32); ``implicit``'s ``AlternatingLeastSquares`` gets the *same*
factors, so both serve the same model.

Timed, in ABBA rounds (dprec, implicit, implicit, dprec; ``ROUNDS`` rounds, the best time of each library):

* ``dprec``: ``model.recommend(all user ids, n=10)`` (seen items filtered), the fast path of
  :class:`dprec.models.base.DotScores` — float32 ``sgemm`` per block of users as a filter, exact float64
  selection in numba;
* ``implicit``: ``recommend(userids, user_items, N=10, filter_already_liked_items=True)``, with BLAS limited to
  one thread as ``implicit`` asks (its own ``num_threads`` threads run the batch);
* ``before`` (once per round): what ``recommend`` did before, dense float64 scores per batch of 1024 users,
  seen items set to ``-inf``, ``topk_rows`` (argpartition).

Written to ``results/serving.json``: users/s of each, the ratio dprec / implicit (time; goal ≤ 1), the
achieved GFLOP/s of the score products (``2·users·items·factors`` per call) beside the measured float32
matmul peak, the machine, the load average before and after, versions; and the quality check: rows whose
top-10 differ from implicit's, and precision@10 on the held-out items of both.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np
import pytest
import scipy.sparse as sp
from _machine import cpu_model  # benchmarks/_machine.py (pytest puts this folder on sys.path)

implicit = pytest.importorskip("implicit")
from implicit.cpu.als import AlternatingLeastSquares  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import dprec  # noqa: E402
from dprec.data import Interactions  # noqa: E402
from dprec.models import ALS  # noqa: E402
from dprec.models.base import topk_rows  # noqa: E402

SEED = 0
N_USERS, N_ITEMS, MEAN_ACTIVITY, N_TOPICS = 20_000, 10_000, 60, 50
FACTORS, ITERS, THREADS, ROUNDS, TOPN = 64, 3, 2, 3, 10
RESULTS = os.path.join(os.path.dirname(__file__), "results", "serving.json")


def synthetic(seed=SEED):
    """Seeded implicit-feedback matrix: pareto user activity, zipf-0.9 popularity within 50 topics."""
    rng = np.random.default_rng(seed)
    act = np.minimum(np.ceil(rng.pareto(2.0, N_USERS) * MEAN_ACTIVITY * 0.5 + 10), N_ITEMS // 4).astype(np.int64)
    users = np.repeat(np.arange(N_USERS), act)
    fav = rng.integers(0, N_TOPICS, size=(N_USERS, 3))
    per_topic = N_ITEMS // N_TOPICS
    w = 1.0 / np.arange(1, per_topic + 1) ** 0.9
    rank = np.minimum(np.searchsorted(np.cumsum(w) / w.sum(), rng.random(len(users))), per_topic - 1)
    topic = fav[users, rng.integers(0, 3, len(users))]
    noise = rng.random(len(users)) < 0.3
    topic[noise] = rng.integers(0, N_TOPICS, noise.sum())
    X = sp.csr_matrix((np.ones(len(users), np.float32), (users, rank * N_TOPICS + topic)), shape=(N_USERS, N_ITEMS))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def per_user_holdout(X, frac=0.2, seed=SEED):
    """Per user, the ``frac`` of items with the smallest random keys are held out."""
    rng = np.random.default_rng(seed)
    coo = X.tocoo()
    order = np.lexsort((rng.random(X.nnz), coo.row))
    rows = coo.row[order]
    start = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    counts = np.diff(np.r_[start, len(rows)])
    test = (np.arange(len(rows)) - np.repeat(start, counts)) < np.floor(frac * np.repeat(counts, counts))
    mk = lambda s: sp.csr_matrix((coo.data[s], (coo.row[s], coo.col[s])), shape=X.shape, dtype=np.float32)
    return mk(order[~test]), mk(order[test])


def precision_at_10(top, test):
    hits = total = 0
    for u in range(test.shape[0]):
        truth = test.indices[test.indptr[u] : test.indptr[u + 1]]
        if len(truth):
            hits += np.isin(top[u], truth).sum()
            total += top.shape[1]
    return hits / total


def peak_gflops():
    a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    with threadpool_limits(limits=THREADS, user_api="blas"):
        a @ a
        t = time.perf_counter()
        for _ in range(3):
            a @ a
        dt = (time.perf_counter() - t) / 3
    return 2 * 4096**3 / dt / 1e9


def dense_before(model, train, users):
    """The previous ``recommend``: dense float64 scores per batch, seen items at -inf, ``topk_rows``."""
    out = np.empty((len(users), TOPN), np.int64)
    with threadpool_limits(limits=THREADS, user_api="blas"):
        for s in range(0, len(users), 1024):
            r = users[s : s + 1024]
            sc = model._scores(r)
            tr = train[r]
            sc[np.repeat(np.arange(len(r)), np.diff(tr.indptr)), tr.indices] = -np.inf
            out[s : s + len(r)] = topk_rows(sc, TOPN)[0]
    return out


def test_serving_vs_implicit(benchmark):
    X = synthetic()
    train, test = per_user_holdout(X)
    model = ALS(factors=FACTORS, iterations=ITERS, feedback="implicit", num_threads=THREADS, rng=SEED)
    model.fit(Interactions.from_csr(train))
    ref = AlternatingLeastSquares(factors=FACTORS, num_threads=THREADS, random_state=SEED)
    ref.user_factors = np.ascontiguousarray(model.user_factors_)
    ref.item_factors = np.ascontiguousarray(model.item_factors_)
    user_ids, rows = model.user_ids, np.arange(N_USERS)
    inner = model._item_index()  # raw item id → column (ids are 0..n-1 here, but do not assume it)
    to_cols = np.vectorize(lambda i: inner[int(i)], otypes=[np.int64])

    def run_dprec():
        return to_cols(model.recommend(user_ids, n=TOPN)[0])

    def run_implicit():
        with threadpool_limits(limits=1, user_api="blas"):  # as implicit asks (its own threads run the batch)
            return ref.recommend(rows, train, N=TOPN, filter_already_liked_items=True)[0]

    run_dprec(), run_implicit()  # compile / warm up, untimed
    times = {"dprec": [], "implicit": [], "before": []}
    load_before = os.getloadavg()

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        times[name].append(time.perf_counter() - t)
        return out

    def abba():
        out = {}
        out["dprec"] = timed("dprec", run_dprec)
        out["implicit"] = timed("implicit", run_implicit)
        timed("implicit", run_implicit)
        timed("dprec", run_dprec)
        out["before"] = timed("before", lambda: dense_before(model, train, rows))
        return out

    tops = {}
    benchmark.pedantic(lambda: tops.update(abba()), rounds=ROUNDS, iterations=1, warmup_rounds=0)
    load_after = os.getloadavg()
    best = {k: min(v) for k, v in times.items()}
    per_round = [
        (times["dprec"][2 * r] + times["dprec"][2 * r + 1]) / (times["implicit"][2 * r] + times["implicit"][2 * r + 1])
        for r in range(ROUNDS)
    ]
    flops = 2.0 * N_USERS * N_ITEMS * FACTORS
    result = {
        "config": dict(
            n_users=N_USERS,
            n_items=N_ITEMS,
            nnz_train=int(train.nnz),
            factors=FACTORS,
            topn=TOPN,
            filter_seen=True,
            num_threads=THREADS,
            rounds=ROUNDS,
            order="ABBA per round (dprec, implicit, implicit, dprec), then the dense 'before' path once",
            seed=SEED,
            model=f"ALS(feedback='implicit', factors={FACTORS}, iterations={ITERS}), float32; implicit gets its factors",
            generator="benchmarks/test_bench_serving.py::synthetic (pareto activity, zipf-0.9 within 50 topics)",
        ),
        "seconds": times,
        "users_per_s": {k: N_USERS / v for k, v in best.items()},
        "ratio_dprec_over_implicit": best["dprec"] / best["implicit"],
        "ratio_per_round": per_round,
        "ratio_dprec_over_before": best["dprec"] / best["before"],
        "gflops": {k: flops / v / 1e9 for k, v in best.items()},
        "peak_gflops_fp32_matmul": peak_gflops(),
        "quality": {
            "rows_differing_from_implicit": int((tops["dprec"] != tops["implicit"]).any(axis=1).sum()),
            "rows_differing_from_before": int((tops["dprec"] != tops["before"]).any(axis=1).sum()),
            "precision_at_10": {k: precision_at_10(v, test) for k, v in tops.items()},
        },
        "machine": dict(
            cpu=cpu_model(),
            cpu_count=os.cpu_count(),
            python=platform.python_version(),
            load_avg_before=load_before,
            load_avg_after=load_after,
        ),
        "versions": dict(
            dprec=dprec.__version__,
            implicit=implicit.__version__,
            numpy=np.__version__,
            numba=__import__("numba").__version__,
        ),
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    print(json.dumps({k: result[k] for k in ("users_per_s", "ratio_dprec_over_implicit", "quality")}, indent=1))
    assert result["quality"]["rows_differing_from_before"] == 0  # same ranking as before (float64-exact selection)
