"""Choosing the default DP ranker's rule (dprec.models.ranker.default_ranker) on synthetic data, and the held-out
MovieLens-100K check (see docs/tuning.md, "The default DP ranker").

Run from the repository root:

    PYTHONPATH=src nice -n 10 python docs/tuning/check_ranker.py grid        # synthetic: pop vs item-item α × c
    PYTHONPATH=src python docs/tuning/check_ranker.py table                  # the rule-choosing tables
    PYTHONPATH=src DPREC_DATA=... python docs/tuning/check_ranker.py ml100k  # held out: the rule on ML-100K
    PYTHONPATH=src DPREC_DATA=... python docs/tuning/check_ranker.py nocatalog  # ML-100K read as a ratings file
    PYTHONPATH=src DPREC_DATA=... python docs/tuning/check_ranker.py selection  # DP-SIPS rounds vs one round

``grid`` only looks at synthetic data (``exposure="affinity"``). For each shape, ε and noise seed it fits DP
popularity, and DP item-item once with α = 1; the other blend weights α and noise ridges c are post-processing
of the same releases (B is recomputed from the released Gram matrix), so every (α, c) cell shares the noise.
Raw rows: docs/tuning/results/ranker_grid.csv (one row per evaluated cell).
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from dprec.datasets import synthetic
from dprec.metrics import evaluate
from dprec.models import DPItemItem, DPPopularity, DPRanker, itemitem
from dprec.split import user_holdout

OUT = Path(__file__).resolve().parent / "results"
DELTA = 1e-5
SHAPES = {
    "1k x 1.7k": dict(n_users=1000, n_items=1700, mean_ratings_per_user=100),
    "3k x 2k": dict(n_users=3000, n_items=2000, mean_ratings_per_user=72),
    "10k x 5k": dict(n_users=10000, n_items=5000, mean_ratings_per_user=72),
    "30k x 10k": dict(n_users=30000, n_items=10000, mean_ratings_per_user=72),
}
EPSILONS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
ALPHAS = (0.25, 0.5, 0.75, 1.0)
RIDGES = (4.0, 8.0, 16.0)
SEEDS = (0, 1)
EVAL_USERS = 3000  # evaluate a fixed random subset of users on the large shapes (same users in every cell)


def _data(shape):
    d = synthetic(**SHAPES[shape], rank=8, implicit=True, exposure="affinity", rng=0)
    return user_holdout(d, 0.2, rng=0)


def grid():
    warnings.simplefilter("ignore")
    OUT.mkdir(exist_ok=True)
    path = OUT / "ranker_grid.csv"
    fields = ["shape", "epsilon", "seed", "eps_n", "model", "alpha", "ridge", "ndcg10"]
    captured = {}
    orig = itemitem.ease_weights

    def capture(G, lam):
        captured["G"] = G
        return orig(G, lam)

    itemitem.ease_weights = capture
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for shape in SHAPES:
            tr, te = _data(shape)
            users = None
            if tr.n_users > EVAL_USERS:
                users = tr.user_ids[np.sort(np.random.default_rng(0).choice(tr.n_users, EVAL_USERS, replace=False))]
            for eps in EPSILONS:
                for seed in SEEDS:
                    t0 = time.time()
                    pop = DPPopularity(epsilon=eps, delta=DELTA, rng=seed).fit(tr)
                    n_dp = pop.n_users_dp_
                    row = dict(shape=shape, epsilon=eps, seed=seed, eps_n=eps * n_dp)
                    nd = evaluate(pop, tr, te, users=users)["ndcg_at_k"]
                    w.writerow(dict(row, model="dp-popularity", alpha="", ridge="", ndcg10=nd))
                    m = DPItemItem(epsilon=eps, delta=DELTA, alpha=1.0, rng=seed).fit(tr)
                    G = captured["G"]
                    step = next(s for s in m.privacy_report()["steps"] if s["name"] == "item_cooccurrence")
                    msel = len(m.selected_)
                    for c in RIDGES:
                        m.weights_ = orig(G, c * step["sigma"] * math.sqrt(msel) + m.regularization)
                        for a in ALPHAS:
                            m.alpha_ = a
                            nd = evaluate(m, tr, te, users=users)["ndcg_at_k"]
                            w.writerow(dict(row, model="dp-itemitem", alpha=a, ridge=c, ndcg10=nd))
                    fh.flush()
                    print(shape, eps, seed, f"{time.time() - t0:.0f}s", flush=True)


def table():
    import pandas as pd

    from dprec.models.ranker import default_ranker

    df = pd.read_csv(OUT / "ranker_grid.csv")
    pop = df[df.model == "dp-popularity"].groupby(["shape", "epsilon"])["ndcg10"].mean()
    ii = df[df.model == "dp-itemitem"].groupby(["shape", "epsilon", "ridge", "alpha"])["ndcg10"].mean()
    en = df.groupby(["shape", "epsilon"])["eps_n"].mean()
    print(
        "| shape | ε | ε·ñ | DP popularity | best item-item (c, α) | the rule: choice (nearest grid cell) | NDCG@10 |"
    )
    print("|---|---|---|---|---|---|---|")
    for shape in [s for s in SHAPES if s in set(df["shape"])]:
        for eps in EPSILONS:
            p, sub = pop.loc[(shape, eps)], ii.loc[(shape, eps)]
            (c, a), best = sub.idxmax(), sub.max()
            ch = default_ranker(eps, DELTA, en.loc[(shape, eps)] / eps, 2)
            if ch.name == "dp-popularity":
                rule, val = "DP popularity", p
            else:
                ra = min(ALPHAS, key=lambda x: abs(x - ch.params["alpha"]))
                rc = min(RIDGES, key=lambda x: abs(math.log(x / ch.params["noise_regularization"])))
                rule, val = f"item-item ({rc:g}, {ra:g})", sub.loc[(rc, ra)]
            print(
                f"| {shape} | {eps:g} | {en.loc[(shape, eps)]:.0f} | {p:.4f} | {best:.4f} ({c:g}, {a:g}) | {rule} | "
                f"{val:.4f} |"
            )


def _ml100k(public: bool):
    import pandas as pd

    from dprec.data import Interactions
    from dprec.datasets import load_dataset

    if public:
        data = load_dataset("ml-100k")
    else:  # ML-100K read as a ratings file: no catalog
        root = Path(os.environ["DPREC_DATA"]) / "ml-100k" / "u.data"
        df = pd.read_csv(root, sep="\t", names=["user", "item", "rating", "ts"])
        data = Interactions.from_pandas(df[["user", "item", "rating"]], rating_bounds=(1, 5))
    return user_holdout(data, 0.2, rng=0)


def ml100k(public: bool = True, epsilons=(0.5, 1.0, 2.0, 5.0, 10.0)):
    warnings.simplefilter("ignore")
    tr, te = _ml100k(public)
    print("| ε | DP popularity | DP ranker | chosen | items released |")
    print("|---|---|---|---|---|")
    out = {}
    for eps in epsilons:
        p, r, n, ch = [], [], [], set()
        for seed in (0, 1, 2):
            mp = DPPopularity(epsilon=eps, delta=DELTA, rng=seed).fit(tr)
            mr = DPRanker(epsilon=eps, delta=DELTA, rng=seed).fit(tr)
            p.append(evaluate(mp, tr, te)["ndcg_at_k"])
            r.append(evaluate(mr, tr, te)["ndcg_at_k"])
            n.append(int(mr.released_item_mask_.sum()))
            ch.add(mr.choice_.name)
        out[eps] = (np.mean(p), np.std(p, ddof=1), np.mean(r), np.std(r, ddof=1))
        print(
            f"| {eps:g} | {np.mean(p):.4f} ± {np.std(p, ddof=1):.4f} | {np.mean(r):.4f} ± {np.std(r, ddof=1):.4f} "
            f"| {', '.join(sorted(ch))} | {np.mean(n):.0f} |",
            flush=True,
        )
    return out


def selection():
    """Items released by one threshold vs DP-SIPS rounds, DP popularity's NDCG@10 (synthetic, no catalog)."""
    from dprec.data import Interactions
    from dprec.models import _dp

    warnings.simplefilter("ignore")
    print("| data | ε | rounds, growth | items released | DP popularity NDCG@10 |")
    print("|---|---|---|---|---|")
    sets = {"ML-100K (ratings file)": _ml100k(False)} if os.environ.get("DPREC_DATA") else {}
    for shape in ("1k x 1.7k", "10k x 5k"):
        tr, te = _data(shape)
        tr = Interactions(tr.matrix, tr.user_ids, tr.item_ids, rating_bounds=tr.rating_bounds, public_items=False)
        sets[f"synthetic {shape}"] = (tr, te)
    for shape, (tr, te) in sets.items():
        for eps in (1.0, 10.0):
            for rounds, growth in ((1, 1.0), (2, 2.0), (3, 2.0), (3, 3.0)):
                _dp.SELECTION_ROUNDS, _dp.SELECTION_GROWTH = rounds, growth
                n, nd = [], []
                for seed in (0, 1, 2):
                    m = DPPopularity(epsilon=eps, delta=DELTA, rng=seed).fit(tr)
                    n.append(int(m.released_item_mask_.sum()))
                    nd.append(evaluate(m, tr, te)["ndcg_at_k"])
                print(
                    f"| {shape} | {eps:g} | {rounds}, {growth:g} | {np.mean(n):.0f} | {np.mean(nd):.4f} |", flush=True
                )
    _dp.SELECTION_ROUNDS, _dp.SELECTION_GROWTH = 1, 2.0


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "table"
    if what == "grid":
        grid()
    elif what == "table":
        table()
    elif what == "ml100k":
        ml100k(True)
    elif what == "nocatalog":
        ml100k(False)
    elif what == "selection":
        selection()
    else:
        raise SystemExit(f"unknown experiment {what!r}")
