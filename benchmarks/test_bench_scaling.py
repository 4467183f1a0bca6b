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

* the scaling curve of the *default* ``DPALS(epsilon=10, delta=1e-5)`` fit (the rules choose every other
  hyperparameter) on Netflix-prize-shaped data, 17,770 items and ≈ 208 ratings per user, at 1M, 5M, 20M and
  100M ratings (480,189 users: the Netflix prize's size): seconds of the whole fit and peak resident memory,
  each size in a fresh subprocess (``ru_maxrss`` there is the size's own peak; a sampler thread also records
  the peak during the fit alone). ``DPREC_SCALING_SIZES=1M,5M`` runs a subset. The rules see ñ: at 1M (4,802
  users) they choose the spectral start without iterations, from 5M on 2 iterations (``resolved`` per row).

Results go to ``benchmarks/results/scaling.json`` with configuration, seed, machine, load averages and versions.
The default-fit curve alone::

    pytest benchmarks/test_bench_scaling.py -s -k default_fit     # ~6 minutes on 2 cores (100M: ~10 GB)
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from _machine import cpu_model  # benchmarks/_machine.py (pytest puts this folder on sys.path)

import dprec
from dprec.datasets import synthetic
from dprec.models import ALS, DPALS

SEED, N_ITEMS, PER_USER = 0, 10_000, 71.4
SIZES = {"1M": 14_000, "5M": 70_000, "20M": 280_000}
RESULTS = os.path.join(os.path.dirname(__file__), "results", "scaling.json")
#: the default-fit curve: Netflix-prize shape (17,770 items; 100,480,507 ratings of 480,189 users ≈ 209 per user)
DEFAULT_ITEMS, DEFAULT_PER_USER = 17_770, 208.25
DEFAULT_SIZES = {"1M": 4_802, "5M": 24_009, "20M": 96_038, "100M": 480_189}
DEFAULT_FIT = {"epsilon": 10.0, "delta": 1e-5}
_results: dict = {"fit": {}, "recommend": {}, "default_fit": {}}


def _load_existing():
    """Keep the sections of an earlier run that this run does not re-measure (each test rewrites its own)."""
    try:
        with open(RESULTS) as fh:
            old = json.load(fh).get("results", {})
    except (OSError, ValueError):
        return
    for key, val in old.items():
        if key in _results and not _results[key]:
            _results[key] = val


_load_existing()


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


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(n_users: int) -> dict:
    """One size of the default-fit curve, run in this (fresh) process: generate, then fit, timed apart.

    Peak memory: ``ru_maxrss`` (the process's peak over generation and fit) and, from a thread sampling the
    resident set every 20 ms, the peak during the fit alone (so the fit's own temporaries are visible).
    """
    warm = synthetic(n_users=2_000, n_items=500, rng=1)  # numba compilation outside the timings
    DPALS(**DEFAULT_FIT, rng=SEED).fit(warm)
    del warm
    t = time.perf_counter()
    data = synthetic(n_users=n_users, n_items=DEFAULT_ITEMS, rank=8, mean_ratings_per_user=DEFAULT_PER_USER, rng=SEED)
    gen_s = time.perf_counter() - t
    rss_data = _rss_bytes()
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    load = os.getloadavg()
    sampler.start()
    t = time.perf_counter()
    c0 = time.process_time()
    model = DPALS(**DEFAULT_FIT, rng=SEED).fit(data)
    fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c0
    stop.set()
    sampler.join()
    return {
        "nnz": int(data.nnz),
        "n_users": int(data.n_users),
        "n_items": int(data.n_items),
        "generate_s": gen_s,
        "fit_s": fit_s,
        "fit_cpu_s": fit_cpu,
        "rss_after_generate_gb": rss_data / 1e9,
        "fit_peak_rss_gb": max(peak[0], _rss_bytes()) / 1e9,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "resolved": model.resolved_.to_dict(),
        "load_avg_before": list(load),
        "load_avg_after": list(os.getloadavg()),
    }


def _selected_sizes() -> list[str]:
    env = os.environ.get("DPREC_SCALING_SIZES")
    return [s.strip() for s in env.split(",")] if env else list(DEFAULT_SIZES)


@pytest.mark.parametrize("name", list(DEFAULT_SIZES))
def test_default_fit_scaling(benchmark, name):
    if name not in _selected_sizes():
        pytest.skip(f"{name} not in DPREC_SCALING_SIZES")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(DEFAULT_SIZES[name])]
    proc = benchmark.pedantic(
        lambda: subprocess.run(cmd, capture_output=True, text=True, env=env), rounds=1, iterations=1
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["s_per_million_ratings"] = row["fit_s"] / (row["nnz"] / 1e6)
    row["bytes_per_rating"] = row["fit_peak_rss_gb"] * 1e9 / row["nnz"]
    _results["default_fit"][name] = row
    ref = _results["default_fit"].get("1M")
    if ref is not None:  # the curve as ratios to the smallest size of the same file
        row["time_ratio_to_1M"] = row["fit_s"] / ref["fit_s"]
        row["nnz_ratio_to_1M"] = row["nnz"] / ref["nnz"]
    print(
        f"\n{name}: nnz={row['nnz']:,}  fit {row['fit_s']:.1f} s (cpu {row['fit_cpu_s']:.1f} s)  generate "
        f"{row['generate_s']:.1f} s  peak RSS {row['peak_rss_gb']:.2f} GB (fit {row['fit_peak_rss_gb']:.2f} GB)  "
        f"load {row['load_avg_before'][0]:.2f}"
    )
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
            "default_fit": {
                "model": "DPALS",
                "params": DEFAULT_FIT,
                "seed": SEED,
                "n_items": DEFAULT_ITEMS,
                "ratings_per_user": DEFAULT_PER_USER,
                "sizes_users": DEFAULT_SIZES,
                "rank_of_truth": 8,
            },
        },
        "results": _results,
        "versions": {
            "dprec": dprec.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "memory_gb": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9,
            "description": "shared 2-core x86-64 Linux VM (noisy: other jobs ran concurrently; see the load averages)",
        },
    }
    with open(RESULTS, "w") as fh:
        json.dump(out, fh, indent=2, sort_keys=True)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    print(json.dumps(_worker(int(sys.argv[2]))))
