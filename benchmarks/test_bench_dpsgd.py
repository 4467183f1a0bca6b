"""DP-SGD speed: seconds per epoch against one DP-ALS iteration, at 5M ratings.

Run::

    python -m pytest benchmarks/test_bench_dpsgd.py -s -p no:cacheprovider     # ≈ 3–5 minutes on 2 cores

Data: ``dprec.datasets.synthetic`` shaped like MovieLens-10M (70,000 users, 10,000 items, ≈5M ratings, rank 8;
seed 0), the data of ``test_bench_dpals.py``.

Measured in one run on the same data, rank 8 and threads, paired and interleaved (per round: DP-SGD at
``E1``/``E2`` epochs and DP-ALS at ``T1``/``T2`` iterations, the order flipped every round):

* DP-SGD seconds per epoch ``(t(E2) − t(E1)) / (E2 − E1)`` of ``DPSGD(epsilon=10, factors=8, sampling_rate=q)``
  (user unit; one epoch = ``1/q`` Poisson steps: batch sampling, the clipped-gradient kernel and the dense
  noise) with a fixed noise multiplier; the calibration (dp-accounting PLD bisection, once per fit) is timed
  on its own;
* DP-ALS seconds per iteration ``(t(T2) − t(T1)) / (T2 − T1)`` of ``DPALS(epsilon=10, factors=8, iterations=T)``;
* the **median over rounds of the per-round ratio** (DP-SGD epoch / DP-ALS iteration), with min and max.

Results go to ``benchmarks/results/dpsgd_speed.json`` with configuration, machine and versions.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numba
import numpy as np
import pytest
from _machine import cpu_model

import dprec
from dprec import Interactions
from dprec.datasets import synthetic
from dprec.models import DPALS, DPSGD
from dprec.privacy import accounting as acc

SEED, N_USERS, N_ITEMS, NNZ = 0, 70_000, 10_000, 5_000_000
EPOCHS, ITERS, ROUNDS, Q = (1, 6), (1, 4), 5, 0.2
#: a fixed noise multiplier (its ε fits the DP-SGD half of ε = 10 at both step counts), so no fit pays the
#: calibration's bisection; the calibration is timed on its own
Z = 3.0
RESULTS = os.path.join(os.path.dirname(__file__), "results", "dpsgd_speed.json")


@pytest.fixture(scope="module")
def data():
    d = synthetic(n_users=N_USERS, n_items=N_ITEMS, rank=8, mean_ratings_per_user=NNZ / N_USERS, rng=SEED)
    return Interactions(d.matrix, d.user_ids, d.item_ids, rating_bounds=d.rating_bounds, public_items=True)


def _sgd(data, epochs):
    t = time.perf_counter()
    DPSGD(
        epsilon=10.0, delta=1e-6, factors=8, epochs=epochs, sampling_rate=Q, bias_share=0.5, noise_multiplier=Z, rng=1
    ).fit(data)
    return time.perf_counter() - t


def _als(data, iters):
    t = time.perf_counter()
    DPALS(epsilon=10.0, delta=1e-6, factors=8, iterations=iters, spectral_items=0, rng=1).fit(data)
    return time.perf_counter() - t


def test_dpsgd_epoch_vs_dpals_iteration(data):
    _sgd(data, 1), _als(data, 1)  # warm the numba caches
    ratios, sgd_epoch, als_iter = [], [], []
    for r in range(ROUNDS):
        order = [0, 1] if r % 2 == 0 else [1, 0]
        ts = {}
        for o in order:
            if o == 0:
                ts["s"] = (_sgd(data, EPOCHS[1]) - _sgd(data, EPOCHS[0])) / (EPOCHS[1] - EPOCHS[0])
            else:
                ts["a"] = (_als(data, ITERS[1]) - _als(data, ITERS[0])) / (ITERS[1] - ITERS[0])
        sgd_epoch.append(ts["s"])
        als_iter.append(ts["a"])
        ratios.append(ts["s"] / ts["a"])
        print(f"round {r}: DP-SGD {ts['s']:.2f} s/epoch, DP-ALS {ts['a']:.2f} s/iteration", flush=True)
    t = time.perf_counter()
    acc.dpsgd_noise_multiplier(5.0, 5e-7, Q, int(np.ceil(EPOCHS[1] / Q)), accountant="pld")
    calib = time.perf_counter() - t
    out = {
        "benchmark": "dpsgd_speed",
        "data": {"generator": "dprec.datasets.synthetic", "n_users": N_USERS, "n_items": N_ITEMS, "nnz": int(data.nnz)},
        "config": {
            "factors": 8,
            "sampling_rate": Q,
            "epochs": EPOCHS,
            "dpals_iterations": ITERS,
            "rounds": ROUNDS,
            "noise_multiplier": Z,
        },
        "dpsgd_seconds_per_epoch_median": float(np.median(sgd_epoch)),
        "dpals_seconds_per_iteration_median": float(np.median(als_iter)),
        "ratio_epoch_over_iteration_median": float(np.median(ratios)),
        "ratio_min": float(min(ratios)),
        "ratio_max": float(max(ratios)),
        "pld_calibration_seconds": calib,
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
        "versions": {"dprec": dprec.__version__, "numpy": np.__version__, "numba": numba.__version__},
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))
    assert all(np.isfinite(ratios)) and np.median(ratios) > 0
