"""``dprec demo``: the main job on the embedded default — synthetic data, no download, about 15 s."""

from __future__ import annotations

import json
import math
import time
import warnings

import click
import numpy as np

from .._json import to_jsonable
from ..models.registry import get_model
from ..privacy.units import PrivacyWarning
from ._app import echo, fmt, table

DEMO_SHAPE = dict(n_users=2000, n_items=1000, n_ratings=60_000, rank=8)
#: the rankings part: binary interactions whose exposure follows affinity (datasets.synthetic, exposure="affinity")
DEMO_RANKING_SHAPE = dict(n_users=5000, n_items=1000, per_user=30, rank=8)
DEMO_EPSILONS = (1.0, 10.0, math.inf)
DEMO_DELTA = 1e-5
#: DP rows are the mean over this many noise seeds (seed, seed + 1, …): one draw can sit well off its mean
DEMO_NOISE_SEEDS = 3
#: (task, registry name, label, DP?) rows of the demo; DP rows run at every ε of DEMO_EPSILONS
DEMO_MODELS = (
    ("ratings", "popularity", "Popularity", False),
    ("ratings", "als", "ALS", False),
    ("ratings", "dp-baseline", "DPGlobalEffects", True),
    ("ratings", "dpals", "DPALS", True),
    ("rankings", "popularity", "Popularity", False),
    ("rankings", "als", "ALS (implicit)", False),
    ("rankings", "dp-popularity", "DPPopularity", True),
    ("rankings", "dp-ranker", "DPRanker (default)", True),
)
DEMO_HYPERPARAMETERS = {
    ("ratings", "als"): {"factors": DEMO_SHAPE["rank"], "iterations": 10},
    ("rankings", "als"): {"factors": 32, "iterations": 10, "feedback": "implicit", "alpha": 1.0},
}


def demo_interactions(kind: str, seed: int = 0):
    """The demo's data (``--synthetic ratings|rankings``): seeded low-rank ratings on the public 1–5 scale, or
    binary interactions whose exposure depends on affinity (where personalisation matters)."""
    from ..datasets import synthetic

    if kind == "ratings":
        s = DEMO_SHAPE
        return synthetic(
            s["n_users"], s["n_items"], s["rank"], mean_ratings_per_user=s["n_ratings"] / s["n_users"],
            rating_bounds=(1.0, 5.0), rng=seed,
        )  # fmt: skip
    r = DEMO_RANKING_SHAPE
    return synthetic(
        r["n_users"], r["n_items"], r["rank"], mean_ratings_per_user=r["per_user"], implicit=True,
        exposure="affinity", rng=seed,
    )  # fmt: skip


def _demo_data(seed: int):
    from ..split import random_split, user_holdout

    ratings, interactions = demo_interactions("ratings", seed), demo_interactions("rankings", seed)
    return {
        "ratings": (ratings, random_split(ratings, 0.2, rng=seed), "random 80/20 split"),
        "rankings": (interactions, user_holdout(interactions, 0.2, rng=seed), "per-user 20% holdout"),
    }


def _fit(model, train, ledger):
    t0 = time.perf_counter()
    model.fit(train, ledger=ledger) if ledger is not None else model.fit(train)
    return time.perf_counter() - t0


@click.command("demo")
@click.option("--seed", type=int, default=0, show_default=True, help="data, split and noise seed")
@click.option("--threads", type=click.IntRange(min=0), default=None, help="numba threads  [default: all cores]")
@click.option("--ledger", metavar="PATH", help="privacy ledger charged by the DP fits (noise then from fresh entropy)")
@click.option("--format", "fmt_", type=click.Choice(["table", "json"]), default="table", show_default=True)
def demo(seed, threads, ledger, fmt_):
    """Compare models on embedded synthetic data (no download, about 15 s).

    Two tables: rating prediction (RMSE) and top-10 rankings (NDCG@10), non-private references against DP
    models at ε = 1, 10 and ∞. Figures are computed on raw held-out data (not DP); nothing fitted is released.
    """
    from ..metrics import evaluate

    t_start = time.perf_counter()
    tasks = _demo_data(seed)
    results = []
    for task, name, label, private in DEMO_MODELS:
        _, (train, test), _ = tasks[task]
        for eps in DEMO_EPSILONS if private else (None,):
            hp = dict(DEMO_HYPERPARAMETERS.get((task, name), {}))
            runs = []
            for s in range(seed, seed + (DEMO_NOISE_SEEDS if private else 1)):
                params = dict(hp)
                # charged to a real budget: fresh OS entropy (one seed reused across the ε's would share noise)
                params["rng"] = None if private and ledger else s
                if threads is not None:
                    params["num_threads"] = threads
                if private:
                    params.update(epsilon=eps, delta=None if math.isinf(eps) else DEMO_DELTA)
                model = get_model(name)(**params)
                with warnings.catch_warnings():
                    # seeded on purpose (a measurement, as the output says)
                    warnings.filterwarnings("ignore", message=r".*reproducibility mode", category=PrivacyWarning)
                    fit_s = _fit(model, train, ledger if private else None)
                    res = evaluate(model, train, test, k=10)
                runs.append((res["rmse"], res["ndcg_at_k"], fit_s))
            rmse, ndcg, fit_s = (float(np.mean(v)) for v in zip(*runs))
            results.append({"task": task, "model": label, "epsilon": eps, "rmse": rmse if task == "ratings" else None,
                            "ndcg_at_10": ndcg, "fit_seconds": fit_s, "noise_seeds": len(runs) if private else 0})  # fmt: skip
    total = time.perf_counter() - t_start
    info = {
        task: {"n_users": d.n_users, "n_items": d.n_items, "n_interactions": d.nnz, "split": split}
        for task, (d, _, split) in tasks.items()
    }
    info.update(seed=seed, delta=DEMO_DELTA)
    if fmt_ == "json":
        echo(json.dumps(to_jsonable({"results": results, "data": info, "total_seconds": total}), indent=2))
        return
    for task, what in (("ratings", "rating prediction (RMSE, lower is better)"), ("rankings", "top-10 rankings")):
        d, _, split = tasks[task]
        kind = "ratings on a 1–5 scale" if task == "ratings" else "interactions, exposure following affinity"
        echo(
            f"dprec demo — {what}: synthetic data, {d.n_users} users × {d.n_items} items, {d.nnz} {kind} "
            f"(seed {seed}); {split}; user-level DP, δ = {DEMO_DELTA}; DP rows: mean of {DEMO_NOISE_SEEDS} noise seeds"
        )
        rows = [
            [r["model"], "-" if r["epsilon"] is None else fmt(r["epsilon"], 0)]
            + ([fmt(r["rmse"])] if task == "ratings" else [])
            + [fmt(r["ndcg_at_10"]), f"{r['fit_seconds']:.2f}"]
            for r in results
            if r["task"] == task
        ]
        head = ["model", "ε"] + (["RMSE"] if task == "ratings" else []) + ["NDCG@10", "fit s"]
        echo(table(head, rows) + "\n")
    echo("For rankings use the default DP ranker (DPRanker, `--model dp-ranker`); rating models (DPALS) rank poorly.")
    echo(f"\nε = ∞ is the same code path without noise or clipping (non-private reference). Total {total:.1f} s.")
    echo("Figures are computed on raw held-out data (not DP); the demo's models are for measurement, not for release.")
    echo("Train, save and serve a model: `dprec train --help`; choosing ε: docs/choosing-epsilon.md.")
