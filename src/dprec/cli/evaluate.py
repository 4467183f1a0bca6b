"""``dprec evaluate``: fit a model on a split and report its accuracy (a measurement, never a release)."""

from __future__ import annotations

import json
import os
import time
import warnings

import click

from .._json import to_jsonable
from .._provenance import versions
from ..errors import ConfigError
from ..privacy.units import PrivacyWarning
from . import options as o
from ._app import echo, fmt, table
from .source import load_data, source_label

#: what `dprec evaluate` says about its figures and its model
EVALUATE_NOTICE = (
    "these figures are computed on raw held-out data and are not differentially private; the model "
    "fitted here uses the explicit --seed (reproducibility mode) and is for measurement, not for release"
)

_STRONG = ("heldout_users", "history_fraction", "positive_threshold")


def _split(data, kw):
    from ..split import random_split, strong_generalization, user_holdout

    if kw["split"] == "strong":
        n = kw["heldout_users"]
        try:
            return strong_generalization(
                data,
                n_heldout_users=int(n) if float(n).is_integer() and n >= 1 else float(n),
                history_fraction=kw["history_fraction"],
                positive_threshold=kw["positive_threshold"],
                min_ratings=kw["min_ratings"],
                rng=kw["split_seed"],
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--split strong: {exc}") from None
    fn = random_split if kw["split"] == "random" else user_holdout
    return fn(data, kw["test_fraction"], rng=kw["split_seed"])


def _privacy_report(model):
    rep = getattr(model, "privacy_report", None)
    if rep is None:
        return None
    try:
        return to_jsonable(rep())
    except NotImplementedError:
        return None


E = "evaluation"


@click.command("evaluate", cls=o.GroupedCommand)
@o.data_source_options()
@o.model_options(seed_default=0, seed_help="model seed (rng): evaluate measures, so it is seeded  [default: 0]")
@o.option(
    "--split",
    type=click.Choice(["random", "user", "strong"]),
    default="random",
    show_default=True,
    group=E,
    help="random: random split of ratings; user: per-user holdout; strong: held-out users whose history is "
    "folded in (Liang et al. 2018)",
)
@o.option("--test-fraction", type=float, default=0.2, show_default=True, group=E, help="share of ratings held out")
@o.option(
    "--heldout-users", type=float, group=E, help="--split strong: held-out users, a count or a fraction in (0, 1)"
)
@o.option(
    "--history-fraction",
    type=float,
    group=E,
    help="--split strong: share of a held-out user's items folded in  [default: 0.8]",
)
@o.option(
    "--positive-threshold", type=float, group=E, help="--split strong: keep ratings > this as positives (e.g. 3.5)"
)
@o.option(
    "--min-ratings",
    type=int,
    default=2,
    show_default=True,
    group=E,
    help="--split strong: minimum ratings of a held-out user",
)
@o.option("--split-seed", type=int, default=0, show_default=True, group=E, help="seed of the split")
@o.option("--k", type=int, default=10, show_default=True, group=E, help="length of recommendation lists")
@o.option(
    "--format",
    "fmt_",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    group=E,
    help="output format",
)
@o.privacy_options(ledger_help="privacy ledger charged by the fit")
@click.pass_context
def evaluate(ctx, **kw):
    """Fit a model on a train split and report RMSE, MAE, precision/recall/NDCG@k.

    The figures are computed on raw held-out data (they are not differentially private) and the model is fitted
    with a seed: it is a measurement, not for release. To train a model for release use `dprec train`.
    """
    from .. import __version__
    from ..metrics import evaluate as run_evaluate
    from ..metrics import evaluate_strong

    if kw["k"] < 1:
        raise ConfigError(f"--k must be a positive integer, got {kw['k']}")
    if not 0.0 < kw["test_fraction"] < 1.0:
        raise ConfigError(f"--test-fraction must lie strictly between 0 and 1, got {kw['test_fraction']}")
    model = o.build_model(ctx, kw)
    private = type(model).is_private
    name = type(model).name

    data, source = load_data(kw)
    if private and data.rating_bounds is None:
        raise ConfigError(
            f"model {name!r} is differentially private and needs the public bounds of the rating "
            "scale: pass --rating-bounds LO,HI (e.g. 1,5)"
        )
    if kw["split"] != "strong" and any(kw[x] is not None for x in _STRONG):
        raise ConfigError("--heldout-users, --history-fraction and --positive-threshold apply to --split strong only")
    if kw["split"] == "strong":
        if kw["heldout_users"] is None:
            raise ConfigError("--split strong needs --heldout-users N (a count, or a fraction in (0, 1))")
        if kw["history_fraction"] is None:
            kw["history_fraction"] = 0.8
        split = _split(data, kw)
        train, test = split.train, split.targets
    else:
        train, test = _split(data, kw)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # seeded on purpose: the notice below says so
        warnings.filterwarnings("ignore", message=r".*reproducibility mode", category=PrivacyWarning)
        model.fit(train, ledger=kw["ledger"]) if private and kw["ledger"] else model.fit(train)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = (
        evaluate_strong(model, split, k=kw["k"])
        if kw["split"] == "strong"
        else run_evaluate(model, train, test, k=kw["k"])
    )
    eval_seconds = time.perf_counter() - t0

    config = {
        "command": "evaluate",
        **source,
        "rating_bounds": data.rating_bounds,
        "public_items": data.public_items,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_ratings": data.nnz,
        "n_train": train.nnz,
        "n_test": test.nnz,
        "data_fingerprint": "sha256:" + data.fingerprint(),
        "model": name,
        "model_class": type(model).__name__,
        "model_params": model.get_params(),
        "private": private,
        "epsilon": getattr(model, "epsilon", None) if private else None,
        "delta": getattr(model, "delta", None) if private else None,
        "privacy_unit": getattr(model, "privacy_unit", None) if private else None,
        "ledger": _ledger_label(kw["ledger"]),
        "split": kw["split"],
        "test_fraction": kw["test_fraction"],
        "split_seed": kw["split_seed"],
        **(
            {
                "heldout_users": kw["heldout_users"],
                "history_fraction": kw["history_fraction"],
                "positive_threshold": kw["positive_threshold"],
                "min_ratings": kw["min_ratings"],
                "n_history": split.history.nnz,
            }
            if kw["split"] == "strong"
            else {}
        ),
        "seed": kw["seed"],
        "k": kw["k"],
        "dprec_version": __version__,
        "versions": versions(),
    }
    keys = ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k", "recall_at_20")
    out = {
        **{key: res[key] for key in keys},
        "coverage": res["coverage"],
        "n_users_evaluated": res["n_users_evaluated"],
        "k": kw["k"],
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        "config": config,
        "privacy": _privacy_report(model) if private else None,
        "notice": EVALUATE_NOTICE,
    }
    if kw["fmt_"] == "json":
        echo(json.dumps(to_jsonable(out), indent=2))
        return
    k = kw["k"]
    eps = (
        ""
        if not private
        else f", ε = {fmt(config['epsilon'], 3)}, δ = {config['delta']}, unit = {config['privacy_unit']}"
    )
    if kw["split"] == "strong":
        how = (
            f"strong generalisation: {split.history.n_users} held-out users, history fraction "
            f"{kw['history_fraction']}, folded in at no privacy cost"
        )
    else:
        how = f"{kw['split']} split, test fraction {kw['test_fraction']}"
    echo(f"dprec evaluate: {name} on {source_label(source)} ({how}, split seed {kw['split_seed']}{eps})")
    rows = [
        ["RMSE", fmt(out["rmse"])],
        ["MAE", fmt(out["mae"])],
        [f"precision@{k}", fmt(out["precision_at_k"])],
        [f"recall@{k}", fmt(out["recall_at_k"])],
        [f"NDCG@{k}", fmt(out["ndcg_at_k"])],
        [f"MAP@{k}", fmt(out["map_at_k"])],
        [f"hit rate@{k}", fmt(out["hit_rate_at_k"])],
        *([["recall@20", fmt(out["recall_at_20"])]] if k != 20 else []),
        ["coverage", fmt(out["coverage"])],
        ["users evaluated", str(out["n_users_evaluated"])],
        ["fit time", f"{fit_seconds:.2f} s"],
    ]
    echo(table(["metric", "value"], rows))
    echo("\nconfiguration:")
    for key, val in to_jsonable(config).items():
        echo(f"  {key}: {json.dumps(val) if isinstance(val, (dict, list)) else val}")
    if private and out["privacy"] is not None:
        p = out["privacy"]
        echo(
            f"\nprivacy: {p.get('unit', '?')}-level (ε = {p.get('epsilon')}, δ = {p.get('delta')}); "
            "full report with --format json"
        )
    echo(f"\nnote: {EVALUATE_NOTICE}")


def _ledger_label(ledger: str | None) -> str | None:
    """The ledger as recorded in the evaluation: an absolute file path, or a server URL without its password."""
    if not ledger:
        return None
    from ..privacy.ledger_postgres import is_postgres_url

    if is_postgres_url(ledger):
        from ..privacy.ledger_postgres import redact

        return redact(ledger)
    return os.path.abspath(ledger)
