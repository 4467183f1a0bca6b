"""One tuning cell on MovieLens-100K: fit a registered DP model on a random 80/20 split and print its RMSE.

The DP-SGD grid in docs/tuning.md ("DP-SGD") was run cell by cell with this script on split seed 1 (never the
reported split seed 0). Example (the rating unit at ε = 10, 10 epochs, per-item step)::

    DPREC_DATA=/path/to/datasets PYTHONPATH=src python benchmarks/dpsgd_tuning.py \\
        --unit rating --epsilon 10 --params '{"epochs": 10, "item_scaling": true, "learning_rate": 0.5}'

Measurement only: the fit runs in reproducibility mode (noise seeds given) and is never for release.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np


def main(argv=None) -> None:
    from dprec.datasets import load_dataset
    from dprec.metrics import rmse
    from dprec.models.registry import get_model
    from dprec.split import random_split

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dp-sgd", help="registered model name (default dp-sgd)")
    p.add_argument("--unit", choices=["user", "rating"], default="user")
    p.add_argument("--epsilon", type=float, required=True, help="ε (inf for the non-private fit)")
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--split-seed", type=int, default=1, help="split seed (default 1: not the reported split)")
    p.add_argument("--seeds", default="0", help="comma-separated noise seeds (default 0)")
    p.add_argument("--params", default="{}", help="JSON object of model hyperparameters")
    a = p.parse_args(argv)
    params = json.loads(a.params)
    train, test = random_split(load_dataset("ml-100k"), 0.2, rng=a.split_seed)
    t = test.to_pandas()
    out = []
    for seed in (int(s) for s in a.seeds.split(",")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reproducibility-mode warning: expected here
            m = get_model(a.model)(epsilon=a.epsilon, delta=a.delta, privacy_unit=a.unit, rng=seed, **params)
            m.fit(train)
            pred = m.predict(t["user"].to_numpy(), t["item"].to_numpy())
        out.append(rmse(t["rating"].to_numpy(), pred) if np.isfinite(pred).all() else float("nan"))
    print(f"{a.model} unit={a.unit} ε={a.epsilon} {json.dumps(params)} RMSE {np.mean(out):.4f} per seed {out}")


if __name__ == "__main__":
    main()
