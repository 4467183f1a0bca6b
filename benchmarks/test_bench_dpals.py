"""DP-ALS overhead against non-private ALS, and the time of a whole default DP-ALS fit at 5M ratings.

Run::

    pytest benchmarks/test_bench_dpals.py -s            # ~4 minutes on 2 cores

Data: ``dprec.datasets.synthetic`` shaped like MovieLens-10M (70,000 users, 10,000 items, ≈5M ratings,
rank-8 ground truth plus biases, ratings rounded to 1..5; seed 0).

Measured, in one run on the same data with the same rank ``d`` and threads:

* seconds per iteration of ``DPALS(epsilon=10, factors=d, iterations=T)`` and of ``ALS(feedback="explicit",
  factors=d, iterations=T)``, from fits with ``T = T1`` and ``T = T2`` iterations (best of ``ROUNDS`` each: the machine is shared):
  ``(t(T2) − t(T1)) / (T2 − T1)`` — the difference cancels the one-off work (biases, the final user solve),
  so it is the cost of one iteration including noise, PSD projection and the noisy item solves;
* the ratio DP-ALS / ALS (goal ≤ 1.3), for ``d`` = 8 (DP-ALS's default rank) and 32;
* the wall time of a default ``DPALS(epsilon=10)`` fit (goal: well under a minute).

Results go to ``benchmarks/results/dpals_overhead.json`` with configuration, seed and versions.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np
import pytest

import dprec
from dprec.datasets import synthetic
from dprec.models import ALS, DPALS

SEED, N_USERS, N_ITEMS, NNZ = 0, 70_000, 10_000, 5_000_000
T1, T2, ROUNDS = 1, 5, 3
RESULTS = os.path.join(os.path.dirname(__file__), "results", "dpals_overhead.json")
_results: dict = {}


@pytest.fixture(scope="module")
def data():
    return synthetic(n_users=N_USERS, n_items=N_ITEMS, rank=8, mean_ratings_per_user=NNZ / N_USERS, rng=SEED)


def _fit_seconds(make, data, iters):
    best = np.inf
    for _ in range(ROUNDS):
        t = time.perf_counter()
        make(iters).fit(data)
        best = min(best, time.perf_counter() - t)
    return best


def _per_iteration(make, data):
    return (_fit_seconds(make, data, T2) - _fit_seconds(make, data, T1)) / (T2 - T1)


@pytest.mark.parametrize("d", [8, 32])
def test_dpals_overhead(benchmark, data, d):
    dp = lambda T: DPALS(epsilon=10.0, delta=1e-5, factors=d, iterations=T, factor_share=0.8, rng=SEED)  # noqa: E731
    als = lambda T: ALS(feedback="explicit", factors=d, iterations=T, rng=SEED)  # noqa: E731
    # warm-up compiles numba kernels outside the timings
    dp(1).fit(data)
    als(1).fit(data)
    s_als = _per_iteration(als, data)
    s_dp = benchmark.pedantic(lambda: _per_iteration(dp, data), rounds=1, iterations=1)
    ratio = s_dp / s_als
    benchmark.extra_info.update({"dpals_s_per_iter": s_dp, "als_s_per_iter": s_als, "ratio": ratio})
    _results[f"d={d}"] = {"dpals_s_per_iter": s_dp, "als_explicit_s_per_iter": s_als, "ratio": ratio}
    print(f"\nd={d}: DP-ALS {s_dp:.3f} s/iter, ALS {s_als:.3f} s/iter, ratio {ratio:.2f}")
    assert s_dp > 0 and s_als > 0


def test_dpals_default_fit(benchmark, data):
    t = time.perf_counter()
    model = benchmark.pedantic(lambda: DPALS(epsilon=10.0, delta=1e-5, rng=SEED).fit(data), rounds=1, iterations=1)
    secs = time.perf_counter() - t
    _results["default_fit_eps10"] = {"seconds": secs, "hyperparameters": model._hp}
    print(f"\ndefault DPALS(epsilon=10) fit on {data.nnz} ratings: {secs:.1f} s")
    _write(data)


def _write(data):
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    out = {
        "config": {"n_users": N_USERS, "n_items": N_ITEMS, "nnz": int(data.nnz), "seed": SEED, "epsilon": 10.0,
                   "delta": 1e-5, "iterations_timed": [T1, T2], "rounds": ROUNDS, "threads": "all (2 cores)",
                   "data_fingerprint": data.fingerprint()},
        "results": _results,
        "versions": {"dprec": dprec.__version__, "numpy": np.__version__, "python": platform.python_version(),
                     "machine": platform.machine(), "cpus": os.cpu_count()},
    }
    with open(RESULTS, "w") as fh:
        json.dump(out, fh, indent=2, sort_keys=True)
