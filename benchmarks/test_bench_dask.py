"""DP-ALS on the Dask backend against the local engine: seconds per iteration as a ratio in one run.

Run::

    python -m pytest benchmarks/test_bench_dask.py -s -p no:cacheprovider          # 5M ratings (default)
    DPREC_BENCH_DASK_NNZ=20000000 \
        DPREC_BENCH_DASK_OUT=benchmarks/results/dask_vs_local_20m.json \
        python -m pytest benchmarks/test_bench_dask.py -s -p no:cacheprovider

Data: ``dprec.datasets.synthetic`` (rank-8 ground truth plus biases, ratings 1..5, seed 0), ``NNZ`` ratings
over ``NNZ / 70`` users and 10,000 items, written as a partitioned Parquet dataset (``PARTS`` files) in a
temporary folder; the Dask side reads and shuffles it on the workers into ``BLOCKS`` blocks of whole users.

Measured, in one run on the same machine state: ``DPALS(epsilon=10, factors=8, iterations=T)`` fitted locally
(numba on all cores, the default) and through ``DaskBackend`` on ``LocalCluster(n_workers=2,
threads_per_worker=1)`` (one numba thread per worker: the same two cores). Per fit, the per-iteration time is
the median duration of sweeps 2..T (item statistics, tree reduction, noise and item solve on the client, user
solves), timestamped by the biased-ALS engine's per-sweep callback, which both paths call. Rounds are paired in
ABBA order (local, Dask, Dask, local; flipped every round); per round the ratio Dask / local; reported: the
median ratio with its range (target ≤ 2), the per-iteration seconds, the whole-fit seconds and the one-off
shuffle (ingest) time, and the load average before and after.

Results go to ``benchmarks/results/dask_vs_local.json`` with configuration, seed, machine and versions.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numba
import numpy as np
import pandas as pd
import pytest
from _machine import cpu_model  # benchmarks/_machine.py (pytest puts this folder on sys.path)

import dprec
from dprec.datasets import synthetic
from dprec.models import DPALS

distributed = pytest.importorskip("distributed")

SEED, N_ITEMS, RATINGS_PER_USER = 0, 10_000, 70
NNZ = int(os.environ.get("DPREC_BENCH_DASK_NNZ", 5_000_000))
PARTS, BLOCKS, T = 8, 4, 5
ROUNDS = int(os.environ.get("DPREC_BENCH_DASK_ROUNDS", 3))
RESULTS = os.environ.get(
    "DPREC_BENCH_DASK_OUT", os.path.join(os.path.dirname(__file__), "results", "dask_vs_local.json")
)


@pytest.fixture(scope="module")
def data():
    n_users = NNZ // RATINGS_PER_USER
    return synthetic(n_users=n_users, n_items=N_ITEMS, rank=8, mean_ratings_per_user=RATINGS_PER_USER, rng=SEED)


@pytest.fixture(scope="module")
def parquet(data, tmp_path_factory):
    """The ratings as a Parquet dataset of PARTS files, users interleaved across files (the shuffle is real)."""
    path = tmp_path_factory.mktemp("bench-dask") / "ratings"
    path.mkdir()
    X = data.matrix.tocoo()
    part = np.random.default_rng(SEED).integers(0, PARTS, X.nnz)
    for p in range(PARTS):
        s = part == p
        pd.DataFrame(
            {"user": data.user_ids[X.row[s]], "item": data.item_ids[X.col[s]], "rating": X.data[s]}
        ).to_parquet(path / f"part-{p}.parquet", index=False)
    return path


class _SweepClock:
    """Timestamps of the sweeps of every :func:`dprec.models._biased_als.run` call (its per-sweep callback)."""

    def __init__(self):
        from dprec.models import _biased_als as engine

        self.engine, self.stamps = engine, []

    def __enter__(self):
        self._orig = self.engine.run

        def run(*args, callback=None, **kwargs):
            stamps = [time.perf_counter()]
            self.stamps.append(stamps)
            return self._orig(*args, callback=lambda t, s: stamps.append(time.perf_counter()), **kwargs)

        self.engine.run = run
        return self

    def __exit__(self, *exc):
        self.engine.run = self._orig

    def last_sweep_median(self) -> float:
        return float(np.median(np.diff(self.stamps[-1])[1:]))


def _model():
    return DPALS(epsilon=10.0, delta=1e-5, factors=8, iterations=T, rng=SEED)


def test_dask_vs_local(benchmark, data, parquet):
    from dprec.distributed import DaskBackend

    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env, silence_logs=40
    )
    client = distributed.Client(cluster)
    try:
        backend = DaskBackend(client, npartitions=BLOCKS)
        t = time.perf_counter()
        ratings = backend.ratings(parquet, items=data.item_ids, rating_bounds=(1, 5), dataset_id="bench")
        ingest = time.perf_counter() - t
        _model().fit(data)  # warm-up: numba compiles/loads outside the timings, on both sides
        backend.fit(_model(), ratings)
        load_before = os.getloadavg()

        def rounds():
            out = []
            with _SweepClock() as clock:
                for r in range(ROUNDS):
                    order = ["local", "dask", "dask", "local"] if r % 2 == 0 else ["dask", "local", "local", "dask"]
                    sweeps, fits = {"local": [], "dask": []}, {"local": [], "dask": []}
                    for which in order:
                        t0 = time.perf_counter()
                        if which == "local":
                            _model().fit(data)
                        else:
                            backend.fit(_model(), ratings)
                        fits[which].append(time.perf_counter() - t0)
                        sweeps[which].append(clock.last_sweep_median())
                    loc, dsk = float(np.mean(sweeps["local"])), float(np.mean(sweeps["dask"]))
                    out.append(
                        {
                            "local_s_per_iter": loc,
                            "dask_s_per_iter": dsk,
                            "ratio": dsk / loc,
                            "local_fit_s": float(np.mean(fits["local"])),
                            "dask_fit_s": float(np.mean(fits["dask"])),
                        }
                    )
            return out

        per_round = benchmark.pedantic(rounds, rounds=1, iterations=1)
        load_after = os.getloadavg()
    finally:
        client.close()
        cluster.close()
    col = lambda k: np.array([r[k] for r in per_round])  # noqa: E731
    ratios = col("ratio")
    res = {
        "ratio_median": float(np.median(ratios)),
        "ratio_min": float(ratios.min()),
        "ratio_max": float(ratios.max()),
        "local_s_per_iter_median": float(np.median(col("local_s_per_iter"))),
        "dask_s_per_iter_median": float(np.median(col("dask_s_per_iter"))),
        "local_fit_s_median": float(np.median(col("local_fit_s"))),
        "dask_fit_s_median": float(np.median(col("dask_fit_s"))),
        "dask_ingest_shuffle_s": ingest,
        "rounds": per_round,
        "loadavg_1_5_15_before": list(load_before),
        "loadavg_1_5_15_after": list(load_after),
    }
    benchmark.extra_info.update({k: v for k, v in res.items() if k != "rounds"})
    print(
        f"\n{data.nnz} ratings: Dask / local seconds per iteration, median of {ROUNDS} paired rounds "
        f"{res['ratio_median']:.2f} (range {res['ratio_min']:.2f}–{res['ratio_max']:.2f}); local "
        f"{res['local_s_per_iter_median']:.3f} s/iter, Dask {res['dask_s_per_iter_median']:.3f} s/iter; whole fit "
        f"{res['local_fit_s_median']:.1f} s vs {res['dask_fit_s_median']:.1f} s; ingest + shuffle {ingest:.1f} s; "
        f"load {load_before[0]:.1f} → {load_after[0]:.1f}"
    )
    _write(data, res)
    assert res["local_s_per_iter_median"] > 0 and res["dask_s_per_iter_median"] > 0


def _write(data, res):
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    import dask

    out = {
        "config": {
            "n_users": int(data.n_users),
            "n_items": N_ITEMS,
            "nnz": int(data.nnz),
            "seed": SEED,
            "model": "DPALS(epsilon=10, delta=1e-5, factors=8, iterations=5)",
            "parquet_files": PARTS,
            "user_blocks": BLOCKS,
            "paired_rounds": ROUNDS,
            "cluster": "LocalCluster(n_workers=2, threads_per_worker=1, processes=True), NUMBA_NUM_THREADS=1 "
            "on the workers; the local fit uses all cores",
            "method": "per fit: median duration of sweeps 2..T from the engine's per-sweep callback; per round "
            "(ABBA, flipped each round) ratio = mean Dask sweep / mean local sweep; summary = median and range",
        },
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "description": "shared 2-core x86-64 Linux VM (noisy: other jobs ran concurrently; see the load averages)",
        },
        "results": res,
        "versions": {
            "dprec": dprec.__version__,
            "numpy": np.__version__,
            "numba": numba.__version__,
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "python": platform.python_version(),
        },
    }
    with open(RESULTS, "w") as fh:
        json.dump(out, fh, indent=2)
