"""Calibration of ``synthetic(..., exposure="affinity")``: NDCG@10 of implicit ALS over popularity.

Protocol of the ML-100K top-N sweep: ``split.user_holdout(data, 0.2, rng=0)``, ``evaluate(model, train, test,
k=10)``; ``ALS(feedback="implicit", factors=64, iterations=15, alpha=1.0, rng=0)`` against ``Popularity()``.
Data: ``synthetic(n_users, n_items, 8, mean_ratings_per_user=72, implicit=True, exposure=..., rng=seed)``.

    PYTHONPATH=src nice -n 10 python docs/tuning/affinity_exposure.py 5000 2000 --beta 1.5,1.7,2 --seeds 0,1,2
    PYTHONPATH=src nice -n 10 python docs/tuning/affinity_exposure.py 70000 10000 --beta 1.7 --seeds 0

``--beta popularity`` runs the default (popularity-only) exposure for comparison. One line per cell.
"""

from __future__ import annotations

import argparse
import time

import dprec
from dprec.datasets import synthetic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n_users", type=int)
    ap.add_argument("n_items", type=int)
    ap.add_argument("--beta", default="1.7", help="comma list of affinity_strength values, or 'popularity'")
    ap.add_argument("--seeds", default="0", help="comma list of generator seeds")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--factors", type=int, default=64)
    args = ap.parse_args()
    for beta in args.beta.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.perf_counter()
            kw = {} if beta == "popularity" else {"exposure": "affinity", "affinity_strength": float(beta)}
            data = synthetic(args.n_users, args.n_items, 8, mean_ratings_per_user=72, implicit=True, rng=seed, **kw)
            train, test = dprec.split.user_holdout(data, 0.2, rng=0)
            pop = dprec.evaluate(dprec.Popularity().fit(train), train, test, k=10)["ndcg_at_k"]
            als = dprec.ALS(feedback="implicit", factors=args.factors, iterations=15, alpha=args.alpha, rng=0)
            ndcg = dprec.evaluate(als.fit(train), train, test, k=10)["ndcg_at_k"]
            print(
                f"{args.n_users}x{args.n_items} exposure={'popularity' if beta == 'popularity' else 'affinity'} "
                f"beta={beta} seed={seed} popularity={pop:.3f} als={ndcg:.3f} ratio={ndcg / pop:.2f} "
                f"({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
