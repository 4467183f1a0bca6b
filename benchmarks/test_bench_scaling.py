"""How fit time grows with the number of ratings, and top-k recommendation throughput for all users.

Run::

    pytest benchmarks/test_bench_scaling.py -s          # ~5 minutes on 2 cores

Data: ``dprec.datasets.synthetic`` with 10,000 items and the number of users scaled so that there are
about 1M, 5M and 20M ratings (≈ 71 ratings per user, rank-8 truth; seed 0).

Measured, in one run:

* seconds per iteration of explicit ``ALS`` (32 factors) and of ``DPALS(epsilon=10, factors=8,
  iterations=T)`` at each size, from fits with 1 and 3 iterations (the difference cancels one-off work);
  per-iteration time should grow about linearly with the number of ratings (the solves add a term linear in
  users and items);
* top-10 recommendation throughput (users per second) of a fitted ALS over *all* users, batch by batch
  through ``recommend`` (training items filtered), on the 5M-rating data.

Results go to ``benchmarks/results/scaling.json`` with configuration, seed and versions.
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

SEED, N_ITEMS, PER_USER = 0, 10_000, 71.4
SIZES = {"1M": 14_000, "5M": 70_000, "20M": 280_000}
RESULTS = os.path.join(os.path.dirname(__file__), "results", "scaling.json")
_results: dict = {"fit": {}, "recommend": {}}


def _per_iteration(make, data):
    times = {}
    for T in (1, 3):
        best = np.inf
        for _ in range(2):
            t = time.perf_counter()
            make(T).fit(data)
            best = min(best, time.perf_counter() - t)
        times[T] = best
    return (times[3] - times[1]) / 2


@pytest.fixture(scope="module", params=list(SIZES))
def sized(request):
    n_users = SIZES[request.param]
    return request.param, synthetic(n_users=n_users, n_items=N_ITEMS, rank=8, mean_ratings_per_user=PER_USER, rng=SEED)


def test_fit_scaling(benchmark, sized):
    name, data = sized
    als = lambda T: ALS(feedback="explicit", factors=32, iterations=T, rng=SEED)  # noqa: E731
    dp = lambda T: DPALS(epsilon=10.0, delta=1e-5, factors=8, iterations=T, factor_share=0.8, rng=SEED)  # noqa: E731
    als(1).fit(data)  # compile outside the timings
    dp(1).fit(data)
    s_als = _per_iteration(als, data)
    s_dp = benchmark.pedantic(lambda: _per_iteration(dp, data), rounds=1, iterations=1)
    _results["fit"][name] = {
        "nnz": int(data.nnz),
        "n_users": int(data.n_users),
        "als32_s_per_iter": s_als,
        "dpals8_s_per_iter": s_dp,
    }
    print(f"\n{name}: nnz={data.nnz}  ALS(32) {s_als:.3f} s/iter  DPALS(8) {s_dp:.3f} s/iter")
    assert s_als > 0 and s_dp > 0
    _write()


def test_recommend_throughput(benchmark):
    data = synthetic(n_users=SIZES["5M"], n_items=N_ITEMS, rank=8, mean_ratings_per_user=PER_USER, rng=SEED)
    model = ALS(feedback="explicit", factors=32, iterations=3, rng=SEED).fit(data)
    users = data.user_ids
    batch = 2048

    def all_users():
        for s in range(0, len(users), batch):
            model.recommend(users[s : s + batch], n=10, filter_seen=True)

    t = time.perf_counter()
    benchmark.pedantic(all_users, rounds=1, iterations=1)
    secs = time.perf_counter() - t
    _results["recommend"] = {
        "users": int(len(users)),
        "n_items": N_ITEMS,
        "k": 10,
        "batch": batch,
        "seconds": secs,
        "users_per_second": len(users) / secs,
    }
    print(f"\ntop-10 for all {len(users)} users: {secs:.1f} s ({len(users) / secs:,.0f} users/s)")
    _write()


def _write():
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    out = {
        "config": {
            "n_items": N_ITEMS,
            "ratings_per_user": PER_USER,
            "sizes_users": SIZES,
            "seed": SEED,
            "als": {"factors": 32, "feedback": "explicit"},
            "dpals": {"epsilon": 10.0, "delta": 1e-5, "factors": 8, "factor_share": 0.8},
            "threads": "all (2 cores)",
        },
        "results": _results,
        "versions": {
            "dprec": dprec.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    with open(RESULTS, "w") as fh:
        json.dump(out, fh, indent=2, sort_keys=True)
