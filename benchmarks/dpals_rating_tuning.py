"""Grid behind DP-ALS's rating-unit rules (docs/tuning.md, "DP-ALS at the rating unit").

Runs ``DPALS(privacy_unit="rating")`` with a forced spectral-only factor part on MovieLens-100K, **split seed 1**
(random 80/20; no reported table uses this split), noise seeds 0 and 1 (reproducibility mode: measurements,
not releases), and prints the mean held-out RMSE of each cell next to the DP baseline's::

    DPREC_DATA=../shared/datasets python benchmarks/dpals_rating_tuning.py --epsilon 10 --k 100 --bound 0.5 \\
        --items 800 --factors 16 --user-regularization 0.3 --share 0.8

``--k`` / ``--bound`` set the rating-unit spectral bounds (module constants of :mod:`dprec.models._spectral`).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

import dprec
from dprec.metrics import evaluate
from dprec.models import _spectral as S
from dprec.split import random_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilon", type=float, nargs="+", default=[10.0])
    ap.add_argument("--k", type=int, default=S.SPECTRAL_K_RATING)
    ap.add_argument("--bound", type=float, default=S.SPECTRAL_BOUND_RATING)
    ap.add_argument("--items", type=int, default=800)
    ap.add_argument("--factors", type=int, default=16)
    ap.add_argument("--user-regularization", type=float, default=0.3)
    ap.add_argument("--share", type=float, default=0.8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    S.SPECTRAL_K_RATING, S.SPECTRAL_BOUND_RATING = args.k, args.bound
    warnings.simplefilter("ignore")  # reproducibility-mode warnings: these fits are measurements
    train, test = random_split(dprec.load_dataset("ml-100k"), 0.2, rng=1)
    for eps in args.epsilon:
        kw = dict(epsilon=eps, delta=1e-5, privacy_unit="rating")
        dp = [
            evaluate(
                dprec.DPALS(
                    **kw,
                    factors=args.factors,
                    iterations=0,
                    factor_share=args.share,
                    spectral_items=args.items,
                    spectral_share=1.0,
                    user_regularization=args.user_regularization,
                    rng=s,
                ).fit(train),
                train,
                test,
            )["rmse"]
            for s in args.seeds
        ]
        base = [evaluate(dprec.DPGlobalEffects(**kw, rng=s).fit(train), train, test)["rmse"] for s in args.seeds]
        print(f"ε = {eps:g}: DP-ALS spectral {np.mean(dp):.4f}   DP baseline {np.mean(base):.4f}", flush=True)


if __name__ == "__main__":
    main()
