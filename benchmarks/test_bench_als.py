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
  path);
* explicit ALS on the same sparsity pattern carrying seeded 1–5 ratings (:func:`with_ratings`; explicit ALS
  refuses constant data): ``solver="cg"`` (3 warm-started CG steps, both sides) against implicit ALS (CG) in
  ABBA rounds (ratio explicit CG / implicit CG, goal ≤ 2), and ``solver="cholesky"`` (exact, the reference);
  held-out RMSE of both explicit solvers on the held-out 20 % (same iterations);
* achieved GFLOP/s against a measured peak (large float32 matmul with numpy on all cores, the fastest of five
  products at the start and five at the end of the run), and for dprec's implicit CG also **paired**: the peak
  (fastest of two products) measured untimed just before each round, and the round's share of that peak
  (``share_of_peak_paired_fastest``: the fastest round's). On a shared VM whose speed drifts during the run the
  unpaired share compares a fit in one machine state with a peak from another; the paired one does not;
* precision@10 on the held-out items of ``EVAL_USERS`` sampled users (training items excluded).

FLOP model per iteration (k factors, m users, n items, N nnz, s CG steps; a multiply-add is 2 flops):
  implicit CG:  2·(m+n)·k² [the two Gram matrices] + (s+1)·(8·N·k + 2·(m+n)·k²)  [per CG pass and side: a
                dot and an axpy of length k per stored entry (4·k·N), a k×k mat-vec per row; two sides]
  explicit CG:  (s+1)·8·N·(k+1)  [no shared Gram; the bias is the (k+1)-th column]
  Cholesky:     2·N·k² [Gram blocks] + (m+n)·k³/3 [factorisations] per side summed (k → k+1 for explicit).
Both libraries run the same CG algorithm, so the same FLOP count is used for both. (Before the explicit CG
rows were added the implicit CG model counted 4·N·k per pass for both sides together, half the work.)

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
ABBA_ROUNDS = 1  # rounds of (implicit, explicit, explicit, implicit) fits

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


def with_ratings(train, test, seed=SEED):
    """The same sparsity patterns carrying seeded ratings in 1..5 from a rank-8 model with biases and noise:
    ``r = clip(round(3.5 + b_u + c_i + p_uᵀq_i + N(0, 0.5²)), 1, 5)`` (b, c ~ N(0, 0.4²), p, q ~ N(0, I/√8))."""
    rng = np.random.default_rng(seed + 1)
    m, n = train.shape
    b, c = rng.normal(0, 0.4, m), rng.normal(0, 0.4, n)
    P, Q = rng.standard_normal((m, 8)) / 8**0.25, rng.standard_normal((n, 8)) / 8**0.25
    out = []
    for M in (train, test):
        coo = M.tocoo()
        r = 3.5 + b[coo.row] + c[coo.col] + np.einsum("ij,ij->i", P[coo.row], Q[coo.col])
        r = np.clip(np.round(r + rng.normal(0, 0.5, M.nnz)), 1, 5).astype(np.float32)
        R = sp.csr_matrix((r, (coo.row, coo.col)), shape=M.shape)
        R.sort_indices()
        out.append(R)
    return tuple(out)


def rmse(model, test):
    coo = test.tocoo()
    pred = model.predict(coo.row, coo.col)  # a model fitted on a raw CSR has ids 0..n-1
    return float(np.sqrt(np.mean((pred - coo.data) ** 2)))


def flops_cg(m, n, nnz, k, s=3):
    return 2.0 * (m + n) * k * k + (s + 1) * (8.0 * nnz * k + 2.0 * (m + n) * k * k)


def flops_cg_explicit(nnz, k, s=3):
    return (s + 1) * 8.0 * nnz * (k + 1)


def flops_chol(m, n, nnz, k):
    return 2.0 * (2.0 * nnz * k * k) + (m + n) * k**3 / 3.0


def peak_gflops(repeats=5):
    """Float32 matmul GFLOP/s (4096², all ``THREADS``): the fastest of ``repeats`` products, so that a moment of
    load from other processes lowers the peak (and raises every share of it) as little as possible."""
    a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    best = np.inf
    with threadpool_limits(limits=THREADS, user_api="blas"):
        a @ a
        for _ in range(repeats):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
    return 2 * 4096**3 / best / 1e9


@pytest.fixture(scope="module")
def data():
    X = synthetic()
    train, test = per_user_holdout(X)
    users = np.random.default_rng(SEED).choice(N_USERS, EVAL_USERS, replace=False)
    # warm numba's cache / JIT on a tiny problem so that compile time is not timed
    small = train[:2000]
    for solver in ("cg", "cholesky"):
        ALS(factors=8, iterations=1, feedback="implicit", solver=solver, rng=0, num_threads=THREADS).fit(small)
    R_train, R_test = with_ratings(train, test)
    for solver in ("cg", "cholesky"):
        ALS(factors=8, iterations=1, feedback="explicit", solver=solver, rng=0, num_threads=THREADS).fit(R_train[:2000])
    _results["peak_gflops_start"] = peak_gflops()  # the summary keeps the larger of this and its own
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
        explicit_ratings="benchmarks/test_bench_als.py::with_ratings (same pattern, rank-8 + biases + noise, 1..5)",
        abba_rounds=ABBA_ROUNDS,
    )
    return train, test, users, R_train, R_test


def _time_fit(benchmark, fn, rounds=ROUNDS, paired=None):
    """Fastest of ``rounds`` timed calls of ``fn`` → (last model, seconds). ``paired``: a list that gets one
    ``(peak GFLOP/s, fit seconds)`` per round, the float32 matmul peak measured (untimed) just before the round,
    so that the round's share of peak compares the fit with the machine in the same state."""
    out = {"seconds": [], "peak": None}

    def setup():
        if paired is not None:
            out["peak"] = peak_gflops(repeats=2)

    def run():
        t = time.perf_counter()
        out["model"] = fn()
        out["seconds"].append(time.perf_counter() - t)
        if paired is not None:
            paired.append((out["peak"], out["seconds"][-1]))

    benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    return out["model"], min(out["seconds"])


def test_dprec_implicit_cg(benchmark, data):
    train, test, users = data[:3]
    paired: list[tuple[float, float]] = []
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
        paired=paired,
    )
    nu, ni = train.shape
    flops = flops_cg(nu, ni, train.nnz, FACTORS) * ITERS
    _results["dprec_implicit_cg"] = dict(
        s_per_iter=sec / ITERS,
        fit_seconds=sec,
        gflops=flops / sec / 1e9,
        round_fit_seconds=[t for _, t in paired],
        round_peak_gflops=[p for p, _ in paired],
        # per round: the fit's GFLOP/s over the peak measured just before it (the fastest round's is the headline)
        share_of_peak_paired=[flops / t / 1e9 / p for p, t in paired],
        share_of_peak_paired_fastest=min((t, flops / t / 1e9 / p) for p, t in paired)[1],
        precision_at_10=precision_at_k(m.user_factors_, m.item_factors_, train, test, users),
    )


def test_implicit_cg(benchmark, data):
    train, test, users = data[:3]
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
    train, test, users = data[:3]
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


def _explicit(solver, iterations):
    return ALS(
        factors=FACTORS, iterations=iterations, feedback="explicit", solver=solver, num_threads=THREADS, rng=SEED
    )


def _implicit_cg():
    return ALS(
        factors=FACTORS,
        regularization=REG,
        alpha=DPREC_ALPHA,
        iterations=ITERS,
        feedback="implicit",
        solver="cg",
        num_threads=THREADS,
        rng=SEED,
    )


def test_dprec_explicit_cg_vs_implicit_cg(benchmark, data):
    """Explicit ALS (CG) and implicit ALS (CG), ITERS iterations each, in ABBA order (fastest of each kept)."""
    train, _, _, R_train, R_test = data
    times = {"implicit": [], "explicit": []}
    models = {}

    def timed(name, fn):
        t = time.perf_counter()
        models[name] = fn()
        times[name].append(time.perf_counter() - t)

    def abba():
        for name in ("implicit", "explicit", "explicit", "implicit"):
            if name == "implicit":
                timed(name, lambda: _implicit_cg().fit(train))
            else:
                timed(name, lambda: _explicit("cg", ITERS).fit(R_train, rating_bounds=(1, 5)))

    benchmark.pedantic(abba, rounds=ABBA_ROUNDS, iterations=1, warmup_rounds=0)
    load = os.getloadavg()
    sec_e, sec_i = min(times["explicit"]), min(times["implicit"])
    nu, ni = train.shape
    _results["dprec_explicit_cg"] = dict(
        s_per_iter=sec_e / ITERS,
        fit_seconds=sec_e,
        iterations=ITERS,
        cg_steps=3,
        gflops=flops_cg_explicit(R_train.nnz, FACTORS) * ITERS / sec_e / 1e9,
        rmse_heldout=rmse(models["explicit"], R_test),
        abba_seconds=times["explicit"],
    )
    _results["explicit_cg_vs_implicit_cg"] = dict(
        ratio_s_per_iter_explicit_cg_over_implicit_cg=sec_e / sec_i,
        implicit_cg_s_per_iter_same_run=sec_i / ITERS,
        implicit_cg_gflops_same_run=flops_cg(nu, ni, train.nnz, FACTORS) * ITERS / sec_i / 1e9,
        implicit_abba_seconds=times["implicit"],
        loadavg_after=list(load),
    )


def test_dprec_explicit(benchmark, data):
    """The exact solver (Cholesky both sides): speed and the reference RMSE for the CG row (same iterations)."""
    _, _, _, R_train, R_test = data
    m, sec = _time_fit(benchmark, lambda: _explicit("cholesky", ITERS).fit(R_train, rating_bounds=(1, 5)), rounds=1)
    nu, ni = R_train.shape
    _results["dprec_explicit"] = dict(
        s_per_iter=sec / ITERS,
        fit_seconds=sec,
        iterations=ITERS,
        gflops=flops_chol(nu, ni, R_train.nnz, FACTORS + 1) * ITERS / sec / 1e9,
        rmse_heldout=rmse(m, R_test),
    )


def test_summary(data):
    if not all(k in _results for k in ("dprec_implicit_cg", "implicit_cg")):
        pytest.skip("run the whole module to get the summary")
    import numba

    peak = max(peak_gflops(), _results.pop("peak_gflops_start", 0.0))
    d, i = _results["dprec_implicit_cg"], _results["implicit_cg"]
    summary = dict(
        ratio_s_per_iter_dprec_over_implicit=d["s_per_iter"] / i["s_per_iter"],
        peak_gflops_float32_matmul=peak,
        loadavg=list(os.getloadavg()),
    )
    for r in _results.values():
        if isinstance(r, dict) and "gflops" in r:
            r["share_of_peak"] = r["gflops"] / peak
    if "explicit_cg_vs_implicit_cg" in _results:
        summary["ratio_s_per_iter_explicit_cg_over_implicit_cg"] = _results["explicit_cg_vs_implicit_cg"][
            "ratio_s_per_iter_explicit_cg_over_implicit_cg"
        ]
    if "dprec_explicit" in _results and "dprec_explicit_cg" in _results:
        e, c = _results["dprec_explicit"], _results["dprec_explicit_cg"]
        summary["ratio_s_per_iter_explicit_cholesky_over_explicit_cg"] = e["s_per_iter"] / c["s_per_iter"]
        summary["rmse_explicit_cg_minus_cholesky"] = c["rmse_heldout"] - e["rmse_heldout"]
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
    rows = [("run", "s/iter", "GFLOP/s", "% peak", "P@10 / RMSE")]
    for name in ("dprec_implicit_cg", "implicit_cg", "dprec_implicit_cholesky", "dprec_explicit", "dprec_explicit_cg"):
        r = _results.get(name)
        if r:
            p = r.get("precision_at_10", r.get("rmse_heldout"))
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
        f"peak float32 matmul {peak:.0f} GFLOP/s; load average {summary['loadavg']}"
    )
    print(f"dprec implicit CG, share of the peak measured just before each round: "
          f"{', '.join(f'{100 * x:.1f}%' for x in d['share_of_peak_paired'])} (fastest round "
          f"{100 * d['share_of_peak_paired_fastest']:.1f}%)")  # fmt: skip
    if "ratio_s_per_iter_explicit_cg_over_implicit_cg" in summary:
        print(
            f"ratio explicit CG / implicit CG (s/iter, ABBA): {summary['ratio_s_per_iter_explicit_cg_over_implicit_cg']:.3f}"
        )
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        json.dump(_results, fh, indent=2, sort_keys=True)
