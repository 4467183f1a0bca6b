"""DP implicit ALS seconds per iteration against ``implicit``'s AlternatingLeastSquares, in the same run.

Run::

    python -m pytest benchmarks/test_bench_dp_implicit.py -s -p no:cacheprovider     # ≈ 5 minutes on 2 cores

Data: ``dprec.datasets.synthetic`` (``N_USERS`` × ``N_ITEMS``, ≈3M interactions, seed 0), binarised.
Models, same rank (16, the DP model's default, and 64), regularization, confidence and threads:

* ``DPImplicitALS(epsilon=10, delta=1e-5, factors=d, solver="cg", head_threshold=0)`` — every item in the
  head, so every item pays its per-item noise (``d(d+1)/2 + d`` Gaussians) and its PSD solve: the most
  expensive configuration; the local user step runs 3 CG steps like implicit's;
* ``implicit.cpu.als.AlternatingLeastSquares`` (CG, 3 steps, float32) through ``dprec.bench.adapters``.

Per round: fits at ``T1`` and ``T2`` iterations of both models back to back (ABBA: the order flips each round),
per-iteration time = ``(t(T2) − t(T1)) / (T2 − T1)`` (one-time costs — data layout, DP counts, weights — cancel),
ratio = DP / implicit of the same round; the summary is the median and range over rounds. Goal: ratio ≤ 1.3.
Beside the ratio: achieved GFLOP/s of each model's dense work per iteration (flop models in :func:`flops_dp` and
:func:`flops_implicit`, on the data's nnz: the DP model's bound k = 60 drops a few entries, so its count is an
upper bound) and the measured float64 / float32 matmul peak on the same threads.
Results go to ``benchmarks/results/dp_implicit_speed_d{16,64}.json`` with configuration, machine and versions.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
import warnings

import numba
import numpy as np
import pytest
from _machine import cpu_model  # benchmarks/_machine.py (pytest puts this folder on sys.path)
from threadpoolctl import threadpool_limits

pytest.importorskip("implicit")

from dprec import Interactions  # noqa: E402
from dprec._provenance import versions  # noqa: E402
from dprec.bench.adapters import ImplicitALS  # noqa: E402
from dprec.datasets import synthetic  # noqa: E402
from dprec.models import DPImplicitALS  # noqa: E402
from dprec.privacy import PrivacyWarning  # noqa: E402

SEED, N_USERS, N_ITEMS, NNZ = 0, 100_000, 10_000, 3_000_000
REG, ALPHA, EPSILON, DELTA = 0.01, 1.0, 10.0, 1e-5
#: the model's default rank (16) and the rank of the other speed benchmarks (64)
FACTORS = (16, 64)
T1, T2, ROUNDS = 1, 3, 3
RESULTS = os.path.join(os.path.dirname(__file__), "results", "dp_implicit_speed_d{factors}.json")


@pytest.fixture(scope="module")
def data():
    d = synthetic(N_USERS, N_ITEMS, 8, mean_ratings_per_user=NNZ / N_USERS, rng=SEED)
    X = d.matrix.copy()
    X.data[:] = 1.0
    return Interactions(X, d.user_ids, d.item_ids, public_items=True, name="synthetic-3m")


def _dp(T, factors):
    return DPImplicitALS(
        epsilon=EPSILON,
        delta=DELTA,
        factors=factors,
        iterations=T,
        regularization=REG,
        alpha=ALPHA,
        solver="cg",
        head_threshold=0.0,
        rng=SEED,
    )


def _implicit(T, factors):
    # implicit's confidence is alpha·r; dprec's 1 + alpha·r: on binary data implicit's alpha = 1 + dprec's
    return ImplicitALS(factors=factors, iterations=T, regularization=REG, alpha=1.0 + ALPHA, rng=SEED)


def flops_implicit(m, n, nnz, k, s=3):
    """implicit's CG sweep (users and items, ``s`` steps, as benchmarks/test_bench_als.py counts it)."""
    return 2.0 * (m + n) * k * k + (s + 1) * (4.0 * nnz * k + 2.0 * (m + n) * k * k)


def flops_dp(m, n, nnz, k, s=3):
    """One DP iteration: the float64 item Grams (``dsyrk``: nnz·k(k+1)), two k×k Cholesky factorisations per
    item (the PSD test and the solve), the user CG sweep (``s`` steps) and the two Gramians ``UᵀU``, ``VᵀV``."""
    return (
        nnz * k * (k + 1) + n * 2.0 * k**3 / 3.0 + (s + 1) * (4.0 * nnz * k + 2.0 * m * k * k) + 2.0 * (m + n) * k * k
    )


def peak_gflops(dtype, size=2048):
    """Measured matmul peak (GFLOP/s) on numba's thread count: the best of three ``size``² products."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    with threadpool_limits(limits=numba.get_num_threads(), user_api="blas"):
        a @ a
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
    return 2.0 * size**3 / best / 1e9


def _seconds(make, data):
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        make().fit(data)
    return time.perf_counter() - t


@pytest.mark.parametrize("factors", FACTORS)
def test_dp_implicit_seconds_per_iteration(data, factors):
    small = Interactions(data.matrix[:2000], data.user_ids[:2000], data.item_ids, public_items=True)
    _dp(1, factors).fit(small)  # compile / load the numba kernels outside the timing
    _implicit(1, factors).fit(small)
    rounds = []
    for r in range(ROUNDS):
        order = ("dp", "implicit") if r % 2 == 0 else ("implicit", "dp")
        per = {}
        for name in order:
            make = _dp if name == "dp" else _implicit
            t1 = _seconds(lambda make=make: make(T1, factors), data)
            t2 = _seconds(lambda make=make: make(T2, factors), data)
            per[name] = {"t1": t1, "t2": t2, "s_per_iter": (t2 - t1) / (T2 - T1)}
        per["ratio"] = per["dp"]["s_per_iter"] / per["implicit"]["s_per_iter"]
        per["loadavg_1_5_15"] = list(os.getloadavg())
        rounds.append(per)
        print(
            f"\nround {r}: DP {per['dp']['s_per_iter']:.3f} s/iter, implicit {per['implicit']['s_per_iter']:.3f} s/iter"
        )
    ratios = [p["ratio"] for p in rounds]
    m, n, nnz = data.n_users, data.n_items, int(data.nnz)
    dp_s = statistics.median(p["dp"]["s_per_iter"] for p in rounds)
    imp_s = statistics.median(p["implicit"]["s_per_iter"] for p in rounds)
    out = {
        "config": {
            "n_users": N_USERS,
            "n_items": N_ITEMS,
            "nnz": int(data.nnz),
            "factors": factors,
            "regularization": REG,
            "alpha_dprec": ALPHA,
            "alpha_implicit": 1.0 + ALPHA,
            "epsilon": EPSILON,
            "delta": DELTA,
            "dp_model": "DPImplicitALS(solver='cg', head_threshold=0: every item noised and PSD-solved)",
            "iterations_timed": [T1, T2],
            "rounds": ROUNDS,
            "seed": SEED,
            "method": "per round both models at T1 and T2 iterations back to back (ABBA); per-iteration time = "
            "(t(T2) - t(T1)) / (T2 - T1); ratio = DP / implicit of the same round",
        },
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "numba_threads": numba.get_num_threads()},
        "versions": versions(),
        "results": {
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "dp_s_per_iter_median": dp_s,
            "implicit_s_per_iter_median": imp_s,
            "dp_gflops": flops_dp(m, n, nnz, factors) / dp_s / 1e9,
            "implicit_gflops": flops_implicit(m, n, nnz, factors) / imp_s / 1e9,
            "peak_gflops_float64_matmul": peak_gflops(np.float64),
            "peak_gflops_float32_matmul": peak_gflops(np.float32),
            "loadavg_1_5_15_end": list(os.getloadavg()),
            "rounds": rounds,
        },
    }
    path = RESULTS.format(factors=factors)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)
    res = out["results"]
    print(f"ratio DP / implicit per iteration: median {res['ratio_median']:.2f} {sorted(ratios)}")
    print(
        f"GFLOP/s: DP {res['dp_gflops']:.1f}, implicit {res['implicit_gflops']:.1f}; matmul peak float64 "
        f"{res['peak_gflops_float64_matmul']:.0f}, float32 {res['peak_gflops_float32_matmul']:.0f}"
    )
    assert np.isfinite(out["results"]["ratio_median"])
