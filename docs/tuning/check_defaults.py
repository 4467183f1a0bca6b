"""Synthetic re-check of dprec's data-derived defaults (see docs/tuning.md).

Run from the repository root (no install needed):

    PYTHONPATH=src nice -n 10 python docs/tuning/check_defaults.py ge     # DPGlobalEffects: k × B × ε grid
    PYTHONPATH=src nice -n 10 python docs/tuning/check_defaults.py ibr    # DPALS item_bias_reg at ε = ∞
    PYTHONPATH=src nice -n 10 python docs/tuning/check_defaults.py bands  # DP-ALS rule bands vs ε·ñ
    PYTHONPATH=src nice -n 10 python docs/tuning/check_defaults.py fb     # DP-ALS factor residual bound B
    PYTHONPATH=src python docs/tuning/check_defaults.py table             # print the tables in docs/tuning.md

Raw results go to docs/tuning/results/<experiment>.csv (one row per fit). Only synthetic data is used:
nothing here looks at MovieLens.
"""

from __future__ import annotations

import csv
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

import dprec
from dprec.datasets import synthetic
from dprec.models import DPALS, DPGlobalEffects

OUT = Path(__file__).resolve().parent / "results"
DELTA = 1e-5

# Shapes: "small" ≈ MovieLens-100K (943 users × 1,682 items, 106 ratings/user); "small-noisy" the same with
# rating noise 0.8 instead of the generator's 0.5, so that residuals are about as large as ML-100K's (ALS
# RMSE ≈ 0.9 there); "large" 10,000 users × 2,000 items.
SHAPES = {
    "small": dict(n_users=1000, n_items=1700, mean_ratings_per_user=100, noise=0.5),
    "small-noisy": dict(n_users=1000, n_items=1700, mean_ratings_per_user=100, noise=0.8),
    "large": dict(n_users=10000, n_items=2000, mean_ratings_per_user=100, noise=0.5),
    # heavier-tailed activity (Zipf exponent 1.0 instead of 0.4): 23% of users have < 20 training ratings,
    # so that k = 5 … 80 actually binds (in the other shapes every user has ≥ 37 training ratings)
    "small-skewed": dict(n_users=1000, n_items=1700, mean_ratings_per_user=100, noise=0.8, activity_exponent=1.0),
}


def data(shape):
    p = SHAPES[shape]
    d = synthetic(
        p["n_users"],
        p["n_items"],
        rank=8,
        mean_ratings_per_user=p["mean_ratings_per_user"],
        noise=p["noise"],
        activity_exponent=p.get("activity_exponent", 0.4),
        rng=0,
    )
    return dprec.split.random_split(d, 0.2, rng=0)


def write(name, rows):
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("wrote", path, len(rows), "rows")


def run_ge(shapes=None):
    """``ge [shape ...]``: (re)run the grid for the given shapes (default all), keeping other shapes' rows."""
    shapes = shapes or list(SHAPES)
    rows = [r for r in _read("ge") if r["shape"] not in shapes] if (OUT / "ge.csv").exists() else []
    for shape in shapes:
        train, test = data(shape)
        for k, B, eps, seed in itertools.product(
            [5, 10, 20, 40, 80], [0.5, 1.0, 1.5, 2.0], [0.5, 1, 2, 5, 10], [0, 1, 2]
        ):
            m = DPGlobalEffects(epsilon=eps, delta=DELTA, max_ratings_per_user=k, residual_bound=B, rng=seed).fit(train)
            r = dprec.evaluate(m, train, test)
            rows.append(dict(shape=shape, k=k, B=B, epsilon=eps, seed=seed, rmse=r["rmse"]))
        print(shape, "done", flush=True)
    write("ge", rows)


def run_ibr():
    rows = []
    for shape, seeds in (("small", [0, 1]), ("small-noisy", [0, 1]), ("large", [0])):
        train, test = data(shape)
        for ibr, seed in itertools.product([0.0, 10.0, 30.0, 100.0, 300.0, 1000.0], seeds):
            t = time.time()
            m = DPALS(epsilon=math.inf, item_bias_regularization=ibr, rng=seed).fit(train)
            r = dprec.evaluate(m, train, test)
            rows.append(
                dict(
                    shape=shape,
                    item_bias_regularization=ibr,
                    seed=seed,
                    rmse=r["rmse"],
                    ndcg10=r["ndcg_at_k"],
                    seconds=round(time.time() - t, 1),
                )
            )
            print(rows[-1], flush=True)
    write("ibr", rows)


# The three bands of dprec.models.dpals.default_hyperparameters, forced explicitly.
BANDS = {
    "biases": dict(factors=0, iterations=0),
    "spectral": dict(
        factors=8,
        iterations=0,
        factor_share=0.3,
        spectral_items=200,
        spectral_share=1.0,
        regularization=0.3,
        user_regularization=0.3,
        bias_regularization=10.0,
    ),
    "spectral+2it": dict(
        factors=8,
        iterations=2,
        factor_share=0.8,
        spectral_items=200,
        spectral_share=0.1,
        regularization=0.1,
        user_regularization=0.03,
        bias_regularization=10.0,
    ),
}


def run_bands():
    rows = []
    grid = {"small-noisy": [5, 10, 20, 40, 80], "large": [0.5, 1, 2, 5, 10]}
    for shape, epss in grid.items():
        train, test = data(shape)
        for eps, band, seed in itertools.product(epss, BANDS, [0, 1]):
            m = DPALS(epsilon=eps, delta=DELTA, rng=seed, **BANDS[band]).fit(train)
            r = dprec.evaluate(m, train, test)
            rows.append(
                dict(
                    shape=shape,
                    epsilon=eps,
                    eps_n=round(eps * m.n_users_dp_),
                    band=band,
                    seed=seed,
                    rmse=r["rmse"],
                    ndcg10=r["ndcg_at_k"],
                )
            )
            print(rows[-1], flush=True)
    write("bands", rows)


def run_fb():
    """``fb``: DP-ALS's factor-statistics residual bound B (default 1.5) in the ε·ñ ≥ 80,000 band (defaults otherwise)."""
    rows = []
    for shape, eps in (("large", 10), ("small-noisy", 80)):
        train, test = data(shape)
        for B, seed in itertools.product([0.5, 1.0, 1.5, 2.0], [0, 1]):
            m = DPALS(epsilon=eps, delta=DELTA, residual_bound=B, rng=seed).fit(train)
            r = dprec.evaluate(m, train, test)
            rows.append(dict(shape=shape, epsilon=eps, B=B, seed=seed, iterations=m._hp["iterations"], rmse=r["rmse"]))
            print(rows[-1], flush=True)
    write("fb", rows)


def _read(name):
    with open(OUT / f"{name}.csv") as f:
        return list(csv.DictReader(f))


def _ms(vals):
    v = np.array(vals, float)
    return v.mean(), (v.std(ddof=1) if len(v) > 1 else 0.0)


def table():
    if (OUT / "ge.csv").exists():
        rows = _read("ge")
        for shape in SHAPES:
            R = [r for r in rows if r["shape"] == shape]
            epss = sorted({float(r["epsilon"]) for r in R})
            ks = sorted({int(r["k"]) for r in R})
            Bs = sorted({float(r["B"]) for r in R})
            print(f"\n### DPGlobalEffects, {shape}: best (k, B) per ε, RMSE mean ± std over seeds")
            print(
                "| ε | best k | best B | RMSE at best | RMSE at default (k=20, B=" + "rule" + ") | Δ (default − best) |"
            )
            print("|---|---|---|---|---|---|")
            for e in epss:
                cell = {}
                for k, B in itertools.product(ks, Bs):
                    cell[(k, B)] = _ms(
                        [r["rmse"] for r in R if float(r["epsilon"]) == e and int(r["k"]) == k and float(r["B"]) == B]
                    )
                best = min(cell, key=lambda c: cell[c][0])
                dB = 1.0 if e < 2 else 1.5
                dm, ds = cell[(20, dB)]
                bm, bs = cell[best]
                print(
                    f"| {e:g} | {best[0]} | {best[1]:g} | {bm:.4f} ± {bs:.4f} | {dm:.4f} ± {ds:.4f} | {dm - bm:+.4f} |"
                )
            print(f"\nRMSE by k (B at the default rule), {shape}:")
            print("| ε | " + " | ".join(f"k={k}" for k in ks) + " |")
            print("|---|" + "---|" * len(ks))
            for e in epss:
                dB = 1.0 if e < 2 else 1.5
                print(
                    f"| {e:g} | "
                    + " | ".join(
                        "{:.4f}".format(
                            _ms(
                                [
                                    r["rmse"]
                                    for r in R
                                    if float(r["epsilon"]) == e and int(r["k"]) == k and float(r["B"]) == dB
                                ]
                            )[0]
                        )
                        for k in ks
                    )
                    + " |"
                )
            print(f"\nRMSE by B (k = 20), {shape}:")
            print("| ε | " + " | ".join(f"B={B:g}" for B in Bs) + " |")
            print("|---|" + "---|" * len(Bs))
            for e in epss:
                print(
                    f"| {e:g} | "
                    + " | ".join(
                        "{:.4f}".format(
                            _ms(
                                [
                                    r["rmse"]
                                    for r in R
                                    if float(r["epsilon"]) == e and int(r["k"]) == 20 and float(r["B"]) == B
                                ]
                            )[0]
                        )
                        for B in Bs
                    )
                    + " |"
                )
    if (OUT / "ibr.csv").exists():
        rows = _read("ibr")
        print("\n### DPALS(epsilon=inf) item_bias_reg: RMSE / NDCG@10 (mean over seeds)")
        shapes = list(dict.fromkeys(r["shape"] for r in rows))
        print("| item_bias_reg | " + " | ".join(shapes) + " |")
        print("|---|" + "---|" * len(shapes))
        for ibr in sorted({float(r["item_bias_reg"]) for r in rows}):
            cells = []
            for s in shapes:
                R = [r for r in rows if r["shape"] == s and float(r["item_bias_reg"]) == ibr]
                cells.append(f"{_ms([r['rmse'] for r in R])[0]:.4f} / {_ms([r['ndcg10'] for r in R])[0]:.4f}")
            print(f"| {ibr:g} | " + " | ".join(cells) + " |")
    if (OUT / "bands.csv").exists():
        rows = _read("bands")
        print("\n### DP-ALS bands forced: RMSE mean ± std over seeds (ε·ñ from the DP user count)")
        print("| shape | ε | ε·ñ | biases | spectral | spectral+2it | rule picks |")
        print("|---|---|---|---|---|---|---|")
        for shape in dict.fromkeys(r["shape"] for r in rows):
            for e in sorted({float(r["epsilon"]) for r in rows if r["shape"] == shape}):
                R = [r for r in rows if r["shape"] == shape and float(r["epsilon"]) == e]
                en = np.mean([float(r["eps_n"]) for r in R])
                cells = [("{:.4f} ± {:.4f}".format(*_ms([r["rmse"] for r in R if r["band"] == b]))) for b in BANDS]
                pick = "biases" if en < 15000 else ("spectral" if en < 80000 else "spectral+2it")
                print(f"| {shape} | {e:g} | {en:,.0f} | " + " | ".join(cells) + f" | {pick} |")
    if (OUT / "fb.csv").exists():
        rows = [r for r in _read("fb") if int(r["iterations"]) > 0]  # fits whose DP count put them in the band
        print("\n### DP-ALS factor-statistics residual bound B (rules' defaults otherwise): RMSE mean ± std (n seeds)")
        Bs = sorted({float(r["B"]) for r in rows})
        print("| shape | ε | " + " | ".join(f"B={B:g}" for B in Bs) + " |")
        print("|---|---|" + "---|" * len(Bs))
        for shape in dict.fromkeys(r["shape"] for r in rows):
            R = [r for r in rows if r["shape"] == shape]
            print(
                f"| {shape} | {R[0]['epsilon']} | "
                + " | ".join(
                    "{:.4f} ± {:.4f} ({})".format(
                        *_ms([r["rmse"] for r in R if float(r["B"]) == B]), sum(float(r["B"]) == B for r in R)
                    )
                    for B in Bs
                )
                + " |"
            )


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "table"
    if cmd == "ge":
        run_ge(sys.argv[2:])
    else:
        {"ibr": run_ibr, "bands": run_bands, "fb": run_fb, "table": table}[cmd]()
