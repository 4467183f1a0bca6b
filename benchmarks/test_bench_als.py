"""ALS speed and quality against ``implicit`` in the same run.

Run::

    pytest benchmarks/test_bench_als.py -s --benchmark-disable-gc      # ~3 minutes on 2 cores

Data: a seeded synthetic user×item implicit-feedback matrix (``N_USERS`` × ``N_ITEMS``, power-law item
popularity and user activity, 50 latent topics so that ranking quality is meaningful), split per user into
80 % train / 20 % held out (seed 0). Train has ≥ 5M non-zeros.

Measured (fits of ``ITERS`` iterations, same factors / regularization / alpha / threads / float32):

* seconds per iteration of ``dprec.models.ALS(feedback="implicit")`` (CG, 3 steps, both sides) and of
  ``implicit.cpu.als.AlternatingLeastSquares`` (CG, 3 steps) → ratio dprec / implicit (goal ≤ 1);
* seconds per iteration of the exact Cholesky implicit solver (items through the DP sufficient-statistics
  path) and of explicit ALS (Cholesky both sides) on the same matrix;
* achieved GFLOP/s against a measured peak (large float32 matmul with numpy on all cores);
* precision@10 on the held-out items of ``EVAL_USERS`` sampled users (training items excluded).

FLOP model per iteration (k factors, m users, n items, N nnz, s CG steps):
  CG:        2·(m+n)·k² [the two Gram matrices] + (s+1)·(4·N·k + 2·(m+n)·k²)  per side summed
  Cholesky:  2·N·k² [Gram blocks] + (m+n)·k³/3 [factorisations] per side summed (k → k+1 for explicit).
Both libraries run the same CG algorithm, so the same FLOP count is used for both.

Confidence: dprec uses Hu–Koren–Volinsky's ``c = 1 + alpha·r``; ``implicit`` (≥ 0.5) uses ``c = alpha·r``.
On this binary matrix dprec runs with ``alpha = ALPHA − 1`` so that both fit the *same* objective
(c = 40 on every observed entry, 1 elsewhere); the JSON records both alphas.
Timing: each fit is run ``ROUNDS`` times and the fastest is kept (the machine may be shared).
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
from threadpoolctl import threadpool_limits  # noqa: E402

import dprec  # noqa: E402
from dprec.models import ALS  # noqa: E402

SEED = 0
N_USERS, N_ITEMS, MEAN_ACTIVITY, N_TOPICS = 100_000, 20_000, 160, 50
FACTORS, REG, ALPHA, ITERS, THREADS, ROUNDS = 64, 0.01, 40.0, 10, 2, 2
DPREC_ALPHA = ALPHA - 1.0  # same confidence as implicit's alpha·r on binary data (see module docstring)
EVAL_USERS, TOPN = 20_000, 10
RESULTS = os.path.join(os.path.dirname(__file__), "results", "als_vs_implicit.json")

_results: dict = {}


def synthetic(seed=SEED):
    """Seeded implicit-feedback matrix with power-law popularity/activity and topic structure."""
    rng = np.random.default_rng(seed)
    act = np.minimum(np.ceil(rng.pareto(2.0, N_USERS) * MEAN_ACTIVITY * 0.5 + 10), N_ITEMS // 4).astype(np.int64)
    users = np.repeat(np.arange(N_USERS), act)
    total = len(users)
    fav = rng.integers(0, N_TOPICS, size=(N_USERS, 3))
    per_topic = N_ITEMS // N_TOPICS
    w = 1.0 / np.arange(1, per_topic + 1) ** 0.9
    cdf = np.cumsum(w) / w.sum()
    rank = np.minimum(np.searchsorted(cdf, rng.random(total)), per_topic - 1)
    topic = fav[users, rng.integers(0, 3, total)]
    noise = rng.random(total) < 0.3
    topic[noise] = rng.integers(0, N_TOPICS, noise.sum())
    items = rank * N_TOPICS + topic
    X = sp.csr_matrix((np.ones(total, np.float32), (users, items)), shape=(N_USERS, N_ITEMS))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def per_user_holdout(X, frac=0.2, seed=SEED):
    rng = np.random.default_rng(seed)
    coo = X.tocoo()
    key = rng.random(X.nnz)
    # per user: hold out the frac of items with smallest keys
    order = np.lexsort((key, coo.row))
    rows = coo.row[order]
    start = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    counts = np.diff(np.r_[start, len(rows)])
    pos = np.arange(len(rows)) - np.repeat(start, counts)
    test_mask = pos < np.floor(frac * np.repeat(counts, counts))
    sel_tr, sel_te = order[~test_mask], order[test_mask]
    mk = lambda s: sp.csr_matrix((coo.data[s], (coo.row[s], coo.col[s])), shape=X.shape, dtype=np.float32)
    return mk(sel_tr), mk(sel_te)


def precision_at_k(U, V, train, test, users, k=TOPN):
    hits = 0
    total = 0
    with threadpool_limits(limits=THREADS, user_api="blas"):
        for s in range(0, len(users), 2000):
            us = users[s : s + 2000]
            sc = U[us] @ V.T
            tr = train[us]
            sc[np.repeat(np.arange(len(us)), np.diff(tr.indptr)), tr.indices] = -np.inf
            top = np.argpartition(-sc, k, axis=1)[:, :k]
            te = test[us]
            for r in range(len(us)):
                truth = te.indices[te.indptr[r] : te.indptr[r + 1]]
                if len(truth):
                    hits += np.isin(top[r], truth).sum()
                    total += k
    return hits / total


def flops_cg(m, n, nnz, k, s=3):
    return 2.0 * (m + n) * k * k + (s + 1) * (4.0 * nnz * k + 2.0 * (m + n) * k * k)


def flops_chol(m, n, nnz, k):
    return 2.0 * (2.0 * nnz * k * k) + (m + n) * k**3 / 3.0


def peak_gflops():
    a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    with threadpool_limits(limits=THREADS, user_api="blas"):
        a @ a
        t = time.perf_counter()
        for _ in range(3):
            a @ a
        dt = (time.perf_counter() - t) / 3
    return 2 * 4096**3 / dt / 1e9


@pytest.fixture(scope="module")
def data():
    X = synthetic()
    train, test = per_user_holdout(X)
    users = np.random.default_rng(SEED).choice(N_USERS, EVAL_USERS, replace=False)
    # warm numba's cache / JIT on a tiny problem so that compile time is not timed
    small = train[:2000]
    for solver in ("cg", "cholesky"):
        ALS(factors=8, iterations=1, feedback="implicit", solver=solver, rng=0, num_threads=THREADS).fit(small)
    ALS(factors=8, iterations=1, feedback="explicit", rng=0, num_threads=THREADS).fit(small)
    _results["config"] = dict(
        n_users=N_USERS,
        n_items=N_ITEMS,
        nnz_total=int(X.nnz),
        nnz_train=int(train.nnz),
        nnz_test=int(test.nnz),
        factors=FACTORS,
        regularization=REG,
        alpha_implicit=ALPHA,
        alpha_dprec=DPREC_ALPHA,
        confidence="dprec 1+alpha*r, implicit alpha*r (equal on binary data)",
        iterations=ITERS,
        num_threads=THREADS,
        dtype="float32",
        timing_rounds=ROUNDS,
        cg_steps=3,
        eval_users=EVAL_USERS,
        topn=TOPN,
        seed=SEED,
        generator="benchmarks/test_bench_als.py::synthetic (pareto activity, zipf-0.9 within 50 topics)",
    )
    return train, test, users


def _time_fit(benchmark, fn, rounds=ROUNDS):
    out = {"seconds": []}

    def run():
        t = time.perf_counter()
        out["model"] = fn()
        out["seconds"].append(time.perf_counter() - t)

    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)
    return out["model"], min(out["seconds"])


def test_dprec_implicit_cg(benchmark, data):
    train, test, users = data
    m, sec = _time_fit(
        benchmark,
        lambda: ALS(
            factors=FACTORS,
            regularization=REG,
            alpha=DPREC_ALPHA,
            iterations=ITERS,
            feedback="implicit",
            solver="cg",
            num_threads=THREADS,
            rng=SEED,
        ).fit(train),
    )
    nu, ni = train.shape
    _results["dprec_implicit_cg"] = dict(
        s_per_iter=sec / ITERS,
        fit_seconds=sec,
        gflops=flops_cg(nu, ni, train.nnz, FACTORS) * ITERS / sec / 1e9,
        precision_at_10=precision_at_k(m.user_factors_, m.item_factors_, train, test, users),
    )


def test_implicit_cg(benchmark, data):
    train, test, users = data
    from implicit.cpu.als import AlternatingLeastSquares

    def fit():
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=FACTORS,
                regularization=REG,
                alpha=ALPHA,
                iterations=ITERS,
                use_cg=True,
                num_threads=THREADS,
                dtype=np.float32,
                random_state=SEED,
                calculate_training_loss=False,
            )
            model.fit(train, show_progress=False)
        return model

    m, sec = _time_fit(benchmark, fit)
    nu, ni = train.shape
    _results["implicit_cg"] = dict(
        s_per_iter=sec / ITERS,
        fit_seconds=sec,
        gflops=flops_cg(nu, ni, train.nnz, FACTORS) * ITERS / sec / 1e9,
        precision_at_10=precision_at_k(np.asarray(m.user_factors), np.asarray(m.item_factors), train, test, users),
    )


def test_dprec_implicit_cholesky(benchmark, data):
    train, test, users = data
    it = 3
    m, sec = _time_fit(
        benchmark,
        lambda: ALS(
            factors=FACTORS,
            regularization=REG,
            alpha=DPREC_ALPHA,
            iterations=it,
            feedback="implicit",
            solver="cholesky",
            num_threads=THREADS,
            rng=SEED,
        ).fit(train),
        rounds=1,
    )
    nu, ni = train.shape
    _results["dprec_implicit_cholesky"] = dict(
        s_per_iter=sec / it,
        fit_seconds=sec,
        iterations=it,
        gflops=flops_chol(nu, ni, train.nnz, FACTORS) * it / sec / 1e9,
        precision_at_10=precision_at_k(m.user_factors_, m.item_factors_, train, test, users),
    )


def test_dprec_explicit(benchmark, data):
    train, _, _ = data
    it = 3
    m, sec = _time_fit(
        benchmark,
        lambda: ALS(factors=FACTORS, iterations=it, feedback="explicit", num_threads=THREADS, rng=SEED).fit(train),
        rounds=1,
    )
    nu, ni = train.shape
    _results["dprec_explicit"] = dict(
        s_per_iter=sec / it,
        fit_seconds=sec,
        iterations=it,
        gflops=flops_chol(nu, ni, train.nnz, FACTORS + 1) * it / sec / 1e9,
    )


def test_summary(data):
    if not all(k in _results for k in ("dprec_implicit_cg", "implicit_cg")):
        pytest.skip("run the whole module to get the summary")
    import numba

    peak = peak_gflops()
    d, i = _results["dprec_implicit_cg"], _results["implicit_cg"]
    summary = dict(
        ratio_s_per_iter_dprec_over_implicit=d["s_per_iter"] / i["s_per_iter"],
        peak_gflops_float32_matmul=peak,
    )
    _results["summary"] = summary
    _results["versions"] = dict(
        dprec=dprec.__version__,
        implicit=implicit.__version__,
        numba=numba.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
        processor=cpu_model(),
        OPENBLAS_CORETYPE=os.environ.get("OPENBLAS_CORETYPE"),
    )
    rows = [("run", "s/iter", "GFLOP/s", "% peak", "P@10")]
    for name in ("dprec_implicit_cg", "implicit_cg", "dprec_implicit_cholesky", "dprec_explicit"):
        r = _results.get(name)
        if r:
            p = r.get("precision_at_10")
            rows.append(
                (
                    name,
                    f"{r['s_per_iter']:.3f}",
                    f"{r['gflops']:.1f}",
                    f"{100 * r['gflops'] / peak:.1f}",
                    "-" if p is None else f"{p:.4f}",
                )
            )
    print()
    for row in rows:
        print("  ".join(f"{c:>24}" for c in row))
    print(
        f"ratio dprec/implicit (s/iter, CG): {summary['ratio_s_per_iter_dprec_over_implicit']:.3f}; "
        f"peak float32 matmul {peak:.0f} GFLOP/s"
    )
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        json.dump(_results, fh, indent=2, sort_keys=True)
