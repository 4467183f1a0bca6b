"""DP implicit ALS on MovieLens-100K: NDCG@10 against DP popularity, DP item-item and non-private implicit ALS.

Run (needs ``DPREC_DATA`` holding ``ml-100k/``; ≈ 2 minutes on 2 cores)::

    PYTHONPATH=src python benchmarks/dp_implicit_ml100k.py                 # the reported split (seed 0)
    PYTHONPATH=src python benchmarks/dp_implicit_ml100k.py --split-seed 1  # the tuning split (docs/tuning.md)

Protocol (``benchmarks/configs/ml100k-topn.toml``): per-user holdout of 20% of each user's items
(``dprec.split.user_holdout``), training items excluded, ``dprec.evaluate(..., k=10)``; user-level DP,
δ = 1e-5; mean ± sample std over noise seeds 0, 1, 2. Non-private references: ``ALS(feedback="implicit",
factors=32, iterations=15, alpha=1)`` on the ratings (confidence 1 + r), with its default CG solver and with
``solver="cholesky"`` (which ``DPImplicitALS(epsilon=inf, confidence="value")`` equals for the same seed; the
default ``confidence="binary"`` is the same ALS on the binarised matrix).
Writes ``benchmarks/results/dp_implicit_ml100k[_splitN].json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import warnings

from dprec import evaluate, split
from dprec._provenance import versions
from dprec.datasets import load_dataset
from dprec.models import ALS, DPImplicitALS, DPItemItem, DPPopularity
from dprec.privacy import PrivacyWarning

EPSILONS = [1.0, 5.0, 10.0, math.inf]
SEEDS = [0, 1, 2]
DELTA = 1e-5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split-seed", type=int, default=0)
    args = ap.parse_args()
    train, test = split.user_holdout(load_dataset("ml-100k"), 0.2, rng=args.split_seed)
    models = {"dp-implicit-als": DPImplicitALS, "dp-popularity": DPPopularity, "dp-itemitem": DPItemItem}
    rows = {}
    for name, cls in models.items():
        for eps in EPSILONS:
            vals = []
            for s in SEEDS:
                kw = {"epsilon": eps, "delta": DELTA} if math.isfinite(eps) else {"epsilon": eps}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PrivacyWarning)
                    m = cls(rng=s, **kw).fit(train)
                vals.append(evaluate(m, train, test, k=10)["ndcg_at_k"])
            rows[f"{name} eps={eps:g}"] = {
                "mean": statistics.mean(vals),
                "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                "n": len(vals),
            }
            print(f"{name:16s} ε={eps:<4g} NDCG@10 {rows[f'{name} eps={eps:g}']['mean']:.4f} {vals}", flush=True)
    for solver in ("cg", "cholesky"):  # cg: ALS's default for float32; cholesky: what ε = ∞ equals
        vals = [
            evaluate(
                ALS(feedback="implicit", factors=32, iterations=15, alpha=1.0, solver=solver, rng=s).fit(train),
                train,
                test,
                k=10,
            )["ndcg_at_k"]
            for s in SEEDS
        ]
        key = f"als-implicit-{solver} eps=inf"
        rows[key] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals), "n": len(vals)}
        print(f"{key:28s} NDCG@10 {statistics.mean(vals):.4f} {vals}")
    out = {
        "config": {
            "dataset": "ml-100k",
            "split": "user_holdout(0.2)",
            "split_seed": args.split_seed,
            "delta": DELTA,
            "unit": "user",
            "noise_seeds": SEEDS,
            "metric": "ndcg_at_k (k = 10)",
            "models": "library defaults; ALS(feedback='implicit', factors=32, iterations=15, alpha=1)",
        },
        "versions": versions(),
        "ndcg_at_10": rows,
    }
    suffix = "" if args.split_seed == 0 else f"_split{args.split_seed}"
    path = os.path.join(os.path.dirname(__file__), "results", f"dp_implicit_ml100k{suffix}.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)
    print("wrote", path)


if __name__ == "__main__":
    main()
