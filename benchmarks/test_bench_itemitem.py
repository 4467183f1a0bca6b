"""DP item-item (EASE) fit time: M = 2,000 items on ≈5M interactions (goal: under 10 s on 2 cores).

Run::

    python -m pytest benchmarks/test_bench_itemitem.py -s -p no:cacheprovider     # ≈ 1 minute on 2 cores

Data: ``dprec.datasets.synthetic`` (70,000 users × 10,000 items, ≈5M ratings, seed 0) read as interactions.
Measured: the wall time of ``DPItemItem(epsilon=10, delta=1e-5, n_selected=2000)`` — the DP counts, the
co-occurrence release of the 2,000 most-counted items (a sparse Gram product and ≈2M noise draws) and the dense
EASE solve — and of the same fit at ε = ∞ (no noise), in one run. Results go to
``benchmarks/results/itemitem_fit.json`` with configuration, seed, machine and versions.
"""

from __future__ import annotations

import json
import os
import time

import numba
import pytest
from _machine import cpu_model  # benchmarks/_machine.py (pytest puts this folder on sys.path)

from dprec._provenance import versions
from dprec.datasets import synthetic
from dprec.models import DPItemItem

SEED, N_USERS, N_ITEMS, NNZ, M = 0, 70_000, 10_000, 5_000_000, 2000
RESULTS = os.path.join(os.path.dirname(__file__), "results", "itemitem_fit.json")
_results: dict = {}


@pytest.fixture(scope="module")
def data():
    return synthetic(N_USERS, N_ITEMS, 8, mean_ratings_per_user=NNZ / N_USERS, rng=SEED)


@pytest.mark.parametrize("epsilon", [10.0, float("inf")])
def test_itemitem_fit(benchmark, data, epsilon):
    kw = {"delta": 1e-5} if epsilon != float("inf") else {}
    t = time.perf_counter()
    model = benchmark.pedantic(
        lambda: DPItemItem(epsilon=epsilon, n_selected=M, rng=SEED, **kw).fit(data), rounds=1, iterations=1
    )
    secs = time.perf_counter() - t
    _results[f"eps={epsilon:g}"] = {"seconds": secs, "n_selected": int(len(model.selected_))}
    print(f"\nDPItemItem(epsilon={epsilon:g}, n_selected={M}) fit on {data.nnz} interactions: {secs:.1f} s")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    out = {
        "config": {"n_users": N_USERS, "n_items": N_ITEMS, "nnz": int(data.nnz), "n_selected": M, "seed": SEED},
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "numba_threads": numba.get_num_threads()},
        "versions": versions(),
        "results": _results,
    }
    with open(RESULTS, "w") as fh:
        json.dump(out, fh, indent=2)
