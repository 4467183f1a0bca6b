"""Cost of a charge: the PostgreSQL ledger against the SQLite file ledger, in one run.

Run::

    python -m pytest benchmarks/test_bench_ledger.py -s -p no:cacheprovider     # ≈ 1 minute on 2 cores

Needs the PostgreSQL server binaries on ``PATH`` and psycopg (``dprec[postgres]``); a throwaway server
(:mod:`dprec.testing.postgres`) over a unix socket with ``fsync=on`` (as the SQLite ledger's
``synchronous=FULL``), both data directories under ``/tmp`` on the same file system.

Measured, paired and interleaved (ABBA: SQLite, PostgreSQL, PostgreSQL, SQLite, the order flipped each round):

* **sequential**: one process makes ``N_SEQ`` charges on a fresh ledger; seconds per charge (both backends
  read and verify every earlier charge in each charge, so this is the mean over ledgers of 1..N_SEQ charges);
  per round the ratio PostgreSQL / SQLite; reported the median and range of the per-round ratios;
* **concurrent**: ``N_PROCS`` processes each make ``N_EACH`` charges on one fresh ledger; wall seconds from
  the first start to the last exit (process start-up included, the same for both); charges per second.

The load average before and after is recorded. Results: ``benchmarks/results/ledger_postgres.json``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid

import numpy as np
import pytest
from _machine import cpu_model, git_commit  # benchmarks/_machine.py (pytest puts this folder on sys.path)

import dprec
from dprec.privacy import Ledger

psycopg = pytest.importorskip("psycopg", reason='needs psycopg (v3): pip install "dprec[postgres]"')
from dprec.testing.postgres import ThrowawayServer, missing_binaries  # noqa: E402

N_SEQ, N_PROCS, N_EACH, ROUNDS = 100, 8, 20, 4
RESULTS = os.path.join(os.path.dirname(__file__), "results", "ledger_postgres.json")
OWNER, TRAINER = "bench_owner", "bench_trainer"


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    if missing_binaries():
        pytest.skip(f"PostgreSQL server binaries not on PATH: {missing_binaries()}")
    old_keys = os.environ.get("DPREC_LEDGER_KEY_DIR")
    os.environ["DPREC_LEDGER_KEY_DIR"] = str(tmp_path_factory.mktemp("keys"))
    files = tempfile.mkdtemp(prefix="dprec-bench-ledger-", dir="/tmp")
    with ThrowawayServer(fsync=True) as server:
        with psycopg.connect(server.url("postgres"), autocommit=True) as con:
            con.execute(f"CREATE ROLE {OWNER} LOGIN")
            con.execute(f"CREATE ROLE {TRAINER} LOGIN")
            con.execute(f"CREATE DATABASE bench OWNER {OWNER}")

        def fresh(backend):
            """A new ledger with an ample budget; returns (what to open, dataset id)."""
            ds = f"b{uuid.uuid4().hex[:12]}:fp"
            if backend == "sqlite":
                path = os.path.join(files, ds.split(":")[0] + ".sqlite")
                Ledger.create(path, dataset=ds, epsilon=1000.0, delta=1e-6)
                return path, ds
            Ledger.create(server.url(OWNER, "bench"), dataset=ds, epsilon=1000.0, delta=1e-6, trainer=TRAINER)
            return server.url(TRAINER, "bench"), ds

        yield fresh
    shutil.rmtree(files, ignore_errors=True)
    if old_keys is None:
        os.environ.pop("DPREC_LEDGER_KEY_DIR", None)
    else:
        os.environ["DPREC_LEDGER_KEY_DIR"] = old_keys


def _sequential(fresh, backend):
    where, ds = fresh(backend)
    led = Ledger.open(where, dataset=ds)
    t = time.perf_counter()
    for i in range(N_SEQ):
        led.charge(epsilon=1e-3, model="bench", mechanism="g", label=str(i))
    return (time.perf_counter() - t) / N_SEQ


def _worker(where, ds):
    led = Ledger.open(where, dataset=ds)
    for i in range(N_EACH):
        led.charge(epsilon=1e-3, model="bench", mechanism="g", label=f"{os.getpid()}-{i}")


def _concurrent(fresh, backend):
    where, ds = fresh(backend)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(where, ds)) for _ in range(N_PROCS)]
    t = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t
    assert all(p.exitcode == 0 for p in procs)
    assert len(Ledger.open(where, dataset=ds).charges()) == N_PROCS * N_EACH
    return wall


def _abba(measure, fresh):
    rounds = []
    for r in range(ROUNDS):
        a, b = ("sqlite", "postgresql") if r % 2 == 0 else ("postgresql", "sqlite")
        order = [a, b, b, a]
        got = {"sqlite": [], "postgresql": []}
        for b in order:
            got[b].append(measure(fresh, b))
        s, p = float(np.mean(got["sqlite"])), float(np.mean(got["postgresql"]))
        rounds.append({"sqlite_s": s, "postgresql_s": p, "ratio": p / s})
    ratios = np.array([r["ratio"] for r in rounds])
    return {
        "ratio_median": float(np.median(ratios)),
        "ratio_min": float(ratios.min()),
        "ratio_max": float(ratios.max()),
        "sqlite_s_median": float(np.median([r["sqlite_s"] for r in rounds])),
        "postgresql_s_median": float(np.median([r["postgresql_s"] for r in rounds])),
        "rounds": rounds,
    }


def test_ledger_charge_cost(backends):
    _sequential(backends, "sqlite"), _sequential(backends, "postgresql")  # warm-up (imports, first connection)
    load_before = os.getloadavg()
    seq = _abba(_sequential, backends)
    conc = _abba(_concurrent, backends)
    load_after = os.getloadavg()
    conc["sqlite_charges_per_s"] = N_PROCS * N_EACH / conc["sqlite_s_median"]
    conc["postgresql_charges_per_s"] = N_PROCS * N_EACH / conc["postgresql_s_median"]
    out = {
        "config": {
            "n_sequential": N_SEQ,
            "n_processes": N_PROCS,
            "charges_per_process": N_EACH,
            "rounds": ROUNDS,
            "postgresql": "throwaway server, unix socket, fsync=on, READ COMMITTED + advisory lock per charge",
            "sqlite": "file under /tmp, synchronous=FULL, journal_mode=DELETE, key file and rollback anchor",
            "method": "ABBA rounds (order flipped each round); ratio = PostgreSQL / SQLite of the same round; "
            "sequential: seconds per charge over a fresh ledger's first N charges; concurrent: wall seconds "
            "for all processes",
            "seed": None,
        },
        "results": {"sequential_per_charge": seq, "concurrent_wall": conc},
        "loadavg_1_5_15_before": list(load_before),
        "loadavg_1_5_15_after": list(load_after),
        "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "description": "shared 2-core x86-64 Linux VM"},
        "versions": {
            "dprec": dprec.__version__,
            "psycopg": psycopg.__version__,
            "postgresql": subprocess.run(["postgres", "--version"], capture_output=True, text=True).stdout.strip(),
            "python": platform.python_version(),
            "git_commit": git_commit(),
        },
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as fh:
        json.dump(out, fh, indent=2, sort_keys=True)
    print(json.dumps(out["results"], indent=2))
