"""The ``dprec`` command.

::

    dprec datasets list [--data-home DIR] [--format table|json]
    dprec evaluate (--dataset NAME | --ratings FILE [column options]) --model NAME [hyperparameters]
                   [--split random|user --test-fraction 0.2 --split-seed 0 --seed 0 --k 10]
                   [--split strong --heldout-users N --history-fraction 0.8 --positive-threshold T --min-ratings 2]
                   [--epsilon E --delta D --privacy-unit user|rating --ledger PATH] [--format table|json]
    dprec demo [--seed 0] [--ledger PATH] [--format table|json]
    dprec budget init (--dataset NAME | --ratings FILE [column options]) --epsilon E --delta D [--ledger PATH]
    dprec budget show [--dataset NAME | --ratings FILE [column options]] [--ledger PATH] [--format json|table]

Exit codes (:data:`EXIT_CODES`; each error is one line on stderr, no traceback):

- 0 success;
- 2 usage error or bad input: argparse errors, :class:`~dprec.errors.ConfigError` (a bad flag, model
  hyperparameter, ratings file or bench config) and :class:`~dprec.errors.UnknownIdError`;
- 3 privacy budget refused (:class:`~dprec.errors.BudgetExceededError`) or unusable ledger
  (:class:`~dprec.errors.LedgerError`); nothing was trained or charged;
- 4 a file that cannot be trusted (:class:`~dprec.errors.CorruptFileError`: truncated, tampered, wrong format).

Any other exception is a bug and propagates with its traceback. Bad input is turned into dprec's errors where
it enters (flag parsing, data loading, model construction), never by catching built-in exceptions here.

Models are the registered ones (:mod:`dprec.models.registry`): a model written in one file with
``@register_model("name")`` is available as ``--model name``; ``is_private`` says whether it takes the privacy
options. The hyperparameter options are passed when given and must be fields of the model's ``Config``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from typing import Any

import numpy as np

from ._json import to_jsonable
from ._provenance import sha256_file, versions
from .bench import adapters as _adapters  # noqa: F401  (registers the bench's implicit-als reference)
from .errors import (
    BudgetExceededError,
    ConfigError,
    CorruptFileError,
    DPRecError,
    LedgerError,
    UnknownIdError,
)
from .models.registry import get_model as _model_class
from .models.registry import model_names as _model_names
from .privacy.units import PrivacyWarning, check_delta, check_epsilon

__all__ = ["main", "build_parser", "EXIT_CODES"]

EXIT_OK, EXIT_USAGE, EXIT_BUDGET, EXIT_CORRUPT = 0, 2, 3, 4
#: dprec's errors → (exit code, message prefix); anything else propagates
EXIT_CODES = {
    BudgetExceededError: (EXIT_BUDGET, "privacy budget refused"),
    LedgerError: (EXIT_BUDGET, "privacy ledger refused (nothing was trained or charged)"),
    CorruptFileError: (EXIT_CORRUPT, "untrusted file"),
    ConfigError: (EXIT_USAGE, "error"),
    UnknownIdError: (EXIT_USAGE, "error"),
}

#: deprecated name of :class:`dprec.errors.ConfigError` (bad command-line input)
UsageError = ConfigError


# ============================================================================================ models
#: Command-line hyperparameter options → model parameters (passed only when given on the command line).
HYPERPARAMETERS = ("factors", "iterations", "regularization", "feedback", "alpha")
PRIVACY_OPTIONS = ("epsilon", "delta", "privacy_unit")


def _build_model(name: str, args: argparse.Namespace):
    """A fresh model from the command line: hyperparameter options given (``--factors`` …) as parameters,
    ``--seed`` as ``rng``, ``--threads`` as ``num_threads``, and for a private model ``--epsilon``, ``--delta``,
    ``--privacy-unit``. Invalid values raise :class:`~dprec.errors.ConfigError` naming the model."""
    cls = _model_class(name)
    private = cls.is_private
    accepted = set(cls.Config.model_fields)
    kwargs: dict[str, Any] = {}
    for opt in HYPERPARAMETERS:
        val = getattr(args, opt, None)
        if val is None:
            continue
        if opt not in accepted:
            raise ConfigError(f"model {name!r} does not take --{opt.replace('_', '-')}")
        kwargs[opt] = val
    if private:
        if getattr(args, "epsilon", None) is None:
            raise ConfigError(f"model {name!r} is differentially private: pass --epsilon (and --delta)")
        kwargs.update({opt: getattr(args, opt) for opt in PRIVACY_OPTIONS if getattr(args, opt, None) is not None})
    if "rng" in accepted and getattr(args, "seed", None) is not None:
        kwargs["rng"] = args.seed
    if "num_threads" in accepted and getattr(args, "threads", None) is not None:
        kwargs["num_threads"] = args.threads
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None


# ============================================================================================ helpers
def _number_arg(check, what: str):
    """An argparse ``type``: the text as a float, checked by ``check`` (its message on failure)."""

    def parse(text: str) -> float:
        try:
            value = float(text)  # accepts "inf"
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


_epsilon_arg = _number_arg(check_epsilon, "a number > 0 (or 'inf')")
_delta_arg = _number_arg(lambda v: check_delta(v, allow_zero=True), "a number in [0, 1)")
_total_delta_arg = _number_arg(check_delta, "a number in (0, 1)")


def _parse_bounds(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--rating-bounds must be LO,HI (two numbers, e.g. 1,5), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ConfigError(f"--rating-bounds must be finite with LO < HI, got {text!r}")
    return lo, hi


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (float, np.floating)):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "∞" if x > 0 else "-∞"
        return f"{x:.{digits}f}"
    return str(x)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _privacy_report(model):
    rep = getattr(model, "privacy_report", None)
    if rep is None:
        return None
    try:
        return to_jsonable(rep())
    except NotImplementedError:
        return None


# ============================================================================================ datasets
def _data_home(explicit: str | None) -> str:
    from .datasets import get_data_home

    return str(get_data_home(explicit))


def _licence_summary(text: str | None) -> str:
    if not text:
        return "-"
    return text.split(";")[0].strip()


def _dataset_rows(data_home: str | None) -> list[dict]:
    """One row per registered dataset: name, rating bounds, licence summary, presence under the data home."""
    from .datasets import list_datasets

    rows = []
    for entry in list_datasets(data_home):
        if not isinstance(entry, dict):  # tolerate a list of names or spec objects
            entry = entry.as_row() if hasattr(entry, "as_row") else {"name": str(entry)}
        bounds = entry.get("rating_bounds")
        rows.append(
            {
                "name": entry.get("name"),
                "rating_bounds": None if bounds is None else [float(b) for b in bounds],
                "licence": _licence_summary(entry.get("licence")),
                "present": entry.get("available"),
                "path": entry.get("path"),
                "description": entry.get("description", ""),
            }
        )
    return rows


def _cmd_datasets_list(args) -> int:
    rows = _dataset_rows(args.data_home)
    if args.format == "json":
        print(json.dumps({"data_home": _data_home(args.data_home), "datasets": to_jsonable(rows)}, indent=2))
        return EXIT_OK
    table = [
        [
            r["name"],
            "-" if r["rating_bounds"] is None else f"{_fmt(r['rating_bounds'][0], 1)}-{_fmt(r['rating_bounds'][1], 1)}",
            {True: "yes", False: "no", None: "-"}[r["present"]],
            r["licence"] or "-",
        ]
        for r in rows
    ]
    print(_table(["name", "ratings", "local", "licence"], table))
    print(f"\ndata directory: {_data_home(args.data_home)} (set DPREC_DATA or --data-home to change)")
    return EXIT_OK


# ============================================================================================ evaluate
_FILE_OPTIONS = ("user_col", "item_col", "rating_col", "timestamp_col", "rating_bounds", "sep", "no_header")


def _load_data(args):
    """(Interactions, description dict) from --dataset or --ratings."""
    from .data import Interactions

    if args.dataset is not None:
        given = [o for o in _FILE_OPTIONS if getattr(args, o) not in (None, False)]
        if given:
            raise ConfigError(
                f"--{given[0].replace('_', '-')} applies to --ratings files; registered datasets declare their own "
                "columns and rating bounds"
            )
        from .datasets import dataset_checksum, load_dataset

        try:
            data = load_dataset(args.dataset, data_home=args.data_home, download=args.download)
            checksum = "sha256:" + dataset_checksum(args.dataset, data_home=args.data_home)
        except DPRecError:
            raise
        except (ValueError, KeyError, OSError) as exc:  # unknown name, absent files, failed download
            raise ConfigError(f"--dataset {args.dataset}: {_message(exc)}") from None
        return data, {"dataset": args.dataset, "dataset_checksum": checksum}

    path = args.ratings
    if not os.path.isfile(path):
        raise ConfigError(f"ratings file not found: {path}")
    bounds = _parse_bounds(args.rating_bounds) if args.rating_bounds is not None else None
    import pandas as pd

    lower = path.lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
        else:
            sep = args.sep if args.sep is not None else ("\t" if lower.endswith((".tsv", ".data")) else ",")
            sep = "\t" if sep in ("\\t", "tab") else sep
            df = pd.read_csv(
                path, sep=sep, header=None if args.no_header else "infer", engine="python" if len(sep) > 1 else "c"
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ImportError) as exc:
        raise ConfigError(f"cannot read ratings file {path}: {exc}") from None
    if args.no_header:
        df.columns = [str(c) for c in df.columns]
    rating_col = args.rating_col or "rating"
    rating_col = None if rating_col.lower() in ("none", "") else rating_col
    columns = {
        "user_col": args.user_col or "user",
        "item_col": args.item_col or "item",
        "rating_col": rating_col,
        "timestamp_col": args.timestamp_col,
    }
    try:
        data = Interactions.from_pandas(df, **columns, rating_bounds=bounds, name=os.path.basename(path))
    except DPRecError:
        raise
    except (ValueError, KeyError) as exc:  # Interactions' validation: missing column, rating out of bounds, …
        raise ConfigError(f"--ratings {path}: {_message(exc)}") from None
    return data, {"ratings_file": os.path.abspath(path), **columns, "dataset_checksum": "sha256:" + sha256_file(path)}


def _message(exc: BaseException) -> str:
    """An exception's message (a KeyError's without the quotes ``str`` adds)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _split(data, args):
    from .split import random_split, strong_generalization, user_holdout

    if args.split == "strong":
        n = args.heldout_users
        try:
            return strong_generalization(
                data,
                n_heldout_users=int(n) if float(n).is_integer() and n >= 1 else float(n),
                history_fraction=args.history_fraction,
                positive_threshold=args.positive_threshold,
                min_ratings=args.min_ratings,
                rng=args.split_seed,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--split strong: {exc}") from None
    fn = random_split if args.split == "random" else user_holdout
    return fn(data, args.test_fraction, rng=args.split_seed)


def _check_privacy_args(args, private: bool) -> None:
    given = [o for o in ("epsilon", "delta", "privacy_unit", "ledger") if getattr(args, o, None) is not None]
    if given and not private:
        dp = [n for n in _model_names() if _model_class(n).is_private]
        raise ConfigError(
            f"model {args.model!r} is not private: --{given[0].replace('_', '-')} applies only to differentially "
            f"private models ({', '.join(dp)})"
        )


def _fit(model, train, ledger):
    t0 = time.perf_counter()
    if ledger is not None:
        model.fit(train, ledger=ledger)
    else:
        model.fit(train)
    return time.perf_counter() - t0


#: what `dprec evaluate` says about its figures and its model
EVALUATE_NOTICE = (
    "these figures are computed on raw held-out data and are not differentially private; the model "
    "fitted here uses the explicit --seed (reproducibility mode) and is for measurement, not for release"
)


def _cmd_evaluate(args) -> int:
    from . import __version__
    from .metrics import evaluate, evaluate_strong

    if args.k < 1:
        raise ConfigError(f"--k must be a positive integer, got {args.k}")
    if not 0.0 < args.test_fraction < 1.0:
        raise ConfigError(f"--test-fraction must lie strictly between 0 and 1, got {args.test_fraction}")
    private = _model_class(args.model).is_private
    _check_privacy_args(args, private)
    model = _build_model(args.model, args)

    data, source = _load_data(args)
    if private and data.rating_bounds is None:
        raise ConfigError(
            f"model {args.model!r} is differentially private and needs the public bounds of the rating "
            "scale: pass --rating-bounds LO,HI (e.g. 1,5)"
        )
    if args.split != "strong" and any(
        getattr(args, o) is not None for o in ("heldout_users", "history_fraction", "positive_threshold")
    ):
        raise ConfigError("--heldout-users, --history-fraction and --positive-threshold apply to --split strong only")
    if args.split == "strong":
        if args.heldout_users is None:
            raise ConfigError("--split strong needs --heldout-users N (a count, or a fraction in (0, 1))")
        if args.history_fraction is None:
            args.history_fraction = 0.8
        split = _split(data, args)
        train, test = split.train, split.targets
    else:
        train, test = _split(data, args)
    fit_seconds = _fit(model, train, args.ledger if private else None)
    t0 = time.perf_counter()
    if args.split == "strong":
        res = evaluate_strong(model, split, k=args.k)
    else:
        res = evaluate(model, train, test, k=args.k)
    eval_seconds = time.perf_counter() - t0

    get_params = getattr(model, "get_params", None)
    config = {
        "command": "evaluate",
        **source,
        "rating_bounds": data.rating_bounds,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_ratings": data.nnz,
        "n_train": train.nnz,
        "n_test": test.nnz,
        "data_fingerprint": "sha256:" + data.fingerprint(),
        "model": args.model,
        "model_class": type(model).__name__,
        "model_params": get_params() if callable(get_params) else None,
        "private": private,
        "epsilon": getattr(model, "epsilon", args.epsilon) if private else None,
        "delta": getattr(model, "delta", args.delta) if private else None,
        "privacy_unit": getattr(model, "privacy_unit", args.privacy_unit) if private else None,
        "ledger": os.path.abspath(args.ledger) if args.ledger else None,
        "split": args.split,
        "test_fraction": args.test_fraction,
        "split_seed": args.split_seed,
        **(
            {
                "heldout_users": args.heldout_users,
                "history_fraction": args.history_fraction,
                "positive_threshold": args.positive_threshold,
                "min_ratings": args.min_ratings,
                "n_history": split.history.nnz,
            }
            if args.split == "strong"
            else {}
        ),
        "seed": args.seed,
        "k": args.k,
        "dprec_version": __version__,
        "versions": versions(),
    }
    out = {
        "rmse": res["rmse"],
        "mae": res["mae"],
        "precision_at_k": res["precision_at_k"],
        "recall_at_k": res["recall_at_k"],
        "ndcg_at_k": res["ndcg_at_k"],
        "map_at_k": res["map_at_k"],
        "hit_rate_at_k": res["hit_rate_at_k"],
        "recall_at_20": res["recall_at_20"],
        "coverage": res["coverage"],
        "n_users_evaluated": res["n_users_evaluated"],
        "k": args.k,
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        "config": config,
        "privacy": _privacy_report(model) if private else None,
        "notice": EVALUATE_NOTICE,
    }
    if args.format == "json":
        print(json.dumps(to_jsonable(out), indent=2))
        return EXIT_OK
    k = args.k
    src = source.get("dataset") or source.get("ratings_file")
    eps = (
        ""
        if not private
        else f", ε = {_fmt(config['epsilon'], 3)}, δ = {config['delta']}, unit = {config['privacy_unit']}"
    )
    if args.split == "strong":
        how = (
            f"strong generalisation: {split.history.n_users} held-out users, history fraction "
            f"{args.history_fraction}, folded in at no privacy cost"
        )
    else:
        how = f"{args.split} split, test fraction {args.test_fraction}"
    print(f"dprec evaluate: {args.model} on {src} ({how}, split seed {args.split_seed}{eps})")
    rows = [
        ["RMSE", _fmt(out["rmse"])],
        ["MAE", _fmt(out["mae"])],
        [f"precision@{k}", _fmt(out["precision_at_k"])],
        [f"recall@{k}", _fmt(out["recall_at_k"])],
        [f"NDCG@{k}", _fmt(out["ndcg_at_k"])],
        [f"MAP@{k}", _fmt(out["map_at_k"])],
        [f"hit rate@{k}", _fmt(out["hit_rate_at_k"])],
        *([["recall@20", _fmt(out["recall_at_20"])]] if k != 20 else []),
        ["coverage", _fmt(out["coverage"])],
        ["users evaluated", str(out["n_users_evaluated"])],
        ["fit time", f"{fit_seconds:.2f} s"],
    ]
    print(_table(["metric", "value"], rows))
    print("\nconfiguration:")
    for key, val in to_jsonable(config).items():
        print(f"  {key}: {json.dumps(val) if isinstance(val, (dict, list)) else val}")
    if private and out["privacy"] is not None:
        p = out["privacy"]
        print(
            f"\nprivacy: {p.get('unit', '?')}-level (ε = {p.get('epsilon')}, δ = {p.get('delta')}); "
            "full report with --format json"
        )
    print(f"\nnote: {EVALUATE_NOTICE}")
    return EXIT_OK


# ============================================================================================ demo
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
    ("rankings", "dp-itemitem", "DPItemItem", True),
)
DEMO_HYPERPARAMETERS = {
    ("ratings", "als"): {"factors": DEMO_SHAPE["rank"], "iterations": 10},
    ("rankings", "als"): {"factors": 32, "iterations": 10, "feedback": "implicit", "alpha": 1.0},
}


def _demo_data(seed: int):
    """The embedded default: seeded low-rank synthetic ratings on the public 1–5 scale (no download), and binary
    interactions whose exposure depends on affinity (where personalisation matters), with their splits."""
    from .datasets import synthetic
    from .split import random_split, user_holdout

    ratings = synthetic(
        DEMO_SHAPE["n_users"],
        DEMO_SHAPE["n_items"],
        DEMO_SHAPE["rank"],
        mean_ratings_per_user=DEMO_SHAPE["n_ratings"] / DEMO_SHAPE["n_users"],
        rating_bounds=(1.0, 5.0),
        rng=seed,
    )
    r = DEMO_RANKING_SHAPE
    interactions = synthetic(
        r["n_users"], r["n_items"], r["rank"], mean_ratings_per_user=r["per_user"], implicit=True,
        exposure="affinity", rng=seed,
    )  # fmt: skip
    return {
        "ratings": (ratings, random_split(ratings, 0.2, rng=seed), "random 80/20 split"),
        "rankings": (interactions, user_holdout(interactions, 0.2, rng=seed), "per-user 20% holdout"),
    }


def _cmd_demo(args) -> int:
    from .metrics import evaluate

    t_start = time.perf_counter()
    tasks = _demo_data(args.seed)
    results = []
    for task, name, label, private in DEMO_MODELS:
        _, (train, test), _ = tasks[task]
        for eps in DEMO_EPSILONS if private else (None,):
            hp = DEMO_HYPERPARAMETERS.get((task, name), {})
            runs = []
            for seed in range(args.seed, args.seed + (DEMO_NOISE_SEEDS if private else 1)):
                ns = argparse.Namespace(
                    model=name,
                    # charged to a real budget: fresh OS entropy (one seed reused across the ε's would share noise)
                    seed=None if private and args.ledger else seed,
                    threads=args.threads,
                    privacy_unit=None,
                    epsilon=eps,
                    delta=None if eps is None or math.isinf(eps) else DEMO_DELTA,
                    **{h: None for h in HYPERPARAMETERS} | {k: v for k, v in hp.items() if k in HYPERPARAMETERS},
                )
                model = _build_model(name, ns)
                for k, v in hp.items():  # options the CLI has no flag for
                    if k not in HYPERPARAMETERS:
                        setattr(model, k, v)
                with warnings.catch_warnings():
                    # seeded on purpose (a measurement, as the output says)
                    warnings.filterwarnings("ignore", message=r".*reproducibility mode", category=PrivacyWarning)
                    fit_s = _fit(model, train, args.ledger if private else None)
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
    info.update(seed=args.seed, delta=DEMO_DELTA)
    if args.format == "json":
        print(json.dumps(to_jsonable({"results": results, "data": info, "total_seconds": total}), indent=2))
        return EXIT_OK
    for task, what in (("ratings", "rating prediction (RMSE, lower is better)"), ("rankings", "top-10 rankings")):
        d, _, split = tasks[task]
        kind = "ratings on a 1–5 scale" if task == "ratings" else "interactions, exposure following affinity"
        print(
            f"dprec demo — {what}: synthetic data, {d.n_users} users × {d.n_items} items, {d.nnz} {kind} "
            f"(seed {args.seed}); {split}; user-level DP, δ = {DEMO_DELTA}; DP rows: mean of {DEMO_NOISE_SEEDS} noise seeds"
        )
        rows = [
            [r["model"], "-" if r["epsilon"] is None else _fmt(r["epsilon"], 0)]
            + ([_fmt(r["rmse"])] if task == "ratings" else [])
            + [_fmt(r["ndcg_at_10"]), f"{r['fit_seconds']:.2f}"]
            for r in results
            if r["task"] == task
        ]
        head = ["model", "ε"] + (["RMSE"] if task == "ratings" else []) + ["NDCG@10", "fit s"]
        print(_table(head, rows) + "\n")
    print("For rankings use a ranking model (DPItemItem); rating models (DPALS) rank poorly.")
    print(f"\nε = ∞ is the same code path without noise or clipping (non-private reference). Total {total:.1f} s.")
    print("Figures are computed on raw held-out data (not DP); the demo's models are for measurement, not for release.")
    return EXIT_OK


# ============================================================================================ budget
def _budget_dataset_id(args) -> str | None:
    """The dataset id fits use (``Interactions.dataset_id``) for --dataset/--ratings, or None if neither."""
    if getattr(args, "dataset", None) is None and getattr(args, "ratings", None) is None:
        return None
    data, _ = _load_data(args)
    return data.dataset_id


def _budget_ledger_path(args, dataset_id: str | None) -> str:
    from .privacy import Ledger

    if args.ledger:
        return args.ledger
    if dataset_id is None:
        raise ConfigError("give --ledger PATH, or --dataset NAME / --ratings FILE to use the default ledger path")
    return str(Ledger.default_path(dataset_id))


def _print_budget(led, args) -> None:
    """Print the ledger's public summary (no MACs, digests, sequence numbers, times or parameters)."""
    d = {"path": str(led.path), **led.public_summary()}
    if args.format == "json":
        print(json.dumps(to_jsonable(d), indent=2))
        return
    print(f"privacy ledger {d['path']}")
    print(f"  dataset:   {d['dataset']}")
    print(f"  total:     ε = {_fmt(d['total_epsilon'])}, δ = {d['total_delta']:g}")
    print(f"  spent:     ε = {_fmt(d['spent_epsilon'])}, δ = {d['spent_delta']:g} (ρ = {_fmt(d['spent_rho'], 6)})")
    print(f"  remaining: ε = {_fmt(d['remaining_epsilon'])}, δ = {d['remaining_delta']:g}")
    if d["charges"]:
        rows = [
            [
                str(i),
                str(c["model"]),
                str(c["mechanism"]),
                _fmt(c["rho"], 6),
                _fmt(c["epsilon"]),
                f"{c['delta']:g}",
                str(c["label"]),
            ]
            for i, c in enumerate(d["charges"], 1)
        ]
        print()
        print(_table(["#", "model", "mechanism", "ρ", "ε", "δ", "label"], rows))
    else:
        print("  no charges yet")


def _cmd_budget_init(args) -> int:
    from .privacy import Ledger

    if math.isinf(args.epsilon):
        raise ConfigError("--epsilon must be finite: a ledger tracks a finite budget")
    dataset_id = _budget_dataset_id(args)
    path = _budget_ledger_path(args, dataset_id)
    led = Ledger.create(path, dataset=dataset_id, epsilon=args.epsilon, delta=args.delta)
    _print_budget(led, args)
    return EXIT_OK


def _cmd_budget_show(args) -> int:
    from .privacy import Ledger

    dataset_id = _budget_dataset_id(args)
    path = _budget_ledger_path(args, dataset_id)
    led = Ledger.open(path, dataset=dataset_id)
    _print_budget(led, args)
    return EXIT_OK


def _add_budget_source(q, *, required: bool) -> None:
    src = q.add_mutually_exclusive_group(required=required)
    src.add_argument("--dataset", metavar="NAME", help="a registered dataset (its id is the one fits charge)")
    src.add_argument("--ratings", metavar="FILE", help="a ratings file, read as `dprec evaluate --ratings` reads it")
    q.add_argument("--data-home", help="data directory for --dataset")
    q.add_argument("--download", action="store_true", help="download --dataset if it is not present")
    f = q.add_argument_group("ratings file options (as for evaluate)")
    f.add_argument("--user-col")
    f.add_argument("--item-col")
    f.add_argument("--rating-col")
    f.add_argument("--timestamp-col")
    f.add_argument("--rating-bounds", metavar="LO,HI")
    f.add_argument("--sep")
    f.add_argument("--no-header", action="store_true")
    q.add_argument("--ledger", metavar="PATH", help="ledger file (default: Ledger.default_path(dataset id))")
    q.add_argument("--format", choices=("table", "json"), default="table")


# ============================================================================================ parser
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="dprec", description="Differentially private recommendation.")
    p.add_argument("--version", action="version", version=f"dprec {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("datasets", help="registered datasets")
    dsub = d.add_subparsers(dest="datasets_command", metavar="ACTION")
    dsub.required = True
    dl = dsub.add_parser("list", help="list datasets: rating bounds, licence, whether present locally")
    dl.add_argument("--data-home", help="data directory (default: $DPREC_DATA, else a user cache)")
    dl.add_argument("--format", choices=("table", "json"), default="table")
    dl.set_defaults(func=_cmd_datasets_list)

    e = sub.add_parser(
        "evaluate",
        help="fit a model on a split and report accuracy",
        description="Fit a model on a train split and report RMSE, MAE, precision/recall/NDCG@k.",
    )
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME", help="a registered dataset (see `dprec datasets list`)")
    src.add_argument("--ratings", metavar="FILE", help="a ratings file (CSV/TSV/Parquet)")
    e.add_argument("--data-home", help="data directory for --dataset")
    e.add_argument("--download", action="store_true", help="download --dataset if it is not present")
    f = e.add_argument_group("ratings file options")
    f.add_argument("--user-col", help="user id column (default: user)")
    f.add_argument("--item-col", help="item id column (default: item)")
    f.add_argument("--rating-col", help="rating column (default: rating; 'none' = implicit feedback)")
    f.add_argument("--timestamp-col", help="timestamp column (optional)")
    f.add_argument("--rating-bounds", metavar="LO,HI", help="public bounds of the rating scale (required by DP models)")
    f.add_argument("--sep", help="field separator (default: ',' or tab for .tsv/.data)")
    f.add_argument("--no-header", action="store_true", help="the file has no header; columns are named 0, 1, 2, …")
    m = e.add_argument_group("model")
    m.add_argument("--model", required=True, metavar="NAME", help=f"one of: {', '.join(_model_names())}")
    m.add_argument("--factors", type=int)
    m.add_argument("--iterations", type=int)
    m.add_argument("--regularization", type=float)
    m.add_argument("--alpha", type=float, help="confidence scaling for implicit feedback")
    m.add_argument("--feedback", choices=("explicit", "implicit"))
    m.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    s = e.add_argument_group("evaluation")
    s.add_argument(
        "--split",
        choices=("random", "user", "strong"),
        default="random",
        help="random: random split of ratings; user: per-user holdout; strong: held-out users whose history "
        "is folded in (Liang et al. 2018) (default: random)",
    )
    s.add_argument("--test-fraction", type=float, default=0.2)
    s.add_argument(
        "--heldout-users", type=float, help="--split strong: held-out users, a count or a fraction in (0, 1)"
    )
    s.add_argument(
        "--history-fraction", type=float, help="--split strong: share of a held-out user's items folded in (0.8)"
    )
    s.add_argument(
        "--positive-threshold", type=float, help="--split strong: keep ratings > this as positives (e.g. 3.5)"
    )
    s.add_argument("--min-ratings", type=int, default=2, help="--split strong: minimum ratings of a held-out user")
    s.add_argument("--split-seed", type=int, default=0)
    s.add_argument("--seed", type=int, default=0, help="model seed (rng)")
    s.add_argument("--k", type=int, default=10, help="length of recommendation lists")
    s.add_argument("--format", choices=("table", "json"), default="table")
    pr = e.add_argument_group("privacy (DP models only)")
    pr.add_argument("--epsilon", type=_epsilon_arg, help="privacy budget ε > 0 ('inf' = non-private reference)")
    pr.add_argument("--delta", type=_delta_arg, help="δ (required for finite ε)")
    pr.add_argument("--privacy-unit", choices=("user", "rating"))
    pr.add_argument("--ledger", metavar="PATH", help="privacy ledger charged by the fit")
    e.set_defaults(func=_cmd_evaluate)

    dm = sub.add_parser("demo", help="compare models on embedded synthetic data (no download)")
    dm.add_argument("--seed", type=int, default=0)
    dm.add_argument("--threads", type=int, default=None)
    dm.add_argument("--ledger", metavar="PATH", help="privacy ledger charged by the DP fits")
    dm.add_argument("--format", choices=("table", "json"), default="table")
    dm.set_defaults(func=_cmd_demo)

    bg = sub.add_parser("budget", help="create or inspect a dataset's persistent privacy budget (ledger)")
    bsub = bg.add_subparsers(dest="budget_command", metavar="ACTION")
    bsub.required = True
    bi = bsub.add_parser("init", help="create the ledger of a dataset with a total (ε, δ) budget")
    _add_budget_source(bi, required=True)
    bi.add_argument("--epsilon", type=_epsilon_arg, required=True, help="total ε (finite)")
    bi.add_argument("--delta", type=_total_delta_arg, required=True, help="total δ in (0, 1)")
    bi.set_defaults(func=_cmd_budget_init)
    bsh = bsub.add_parser("show", help="show a ledger: totals, spent, remaining, charges")
    _add_budget_source(bsh, required=False)
    bsh.set_defaults(func=_cmd_budget_show)

    from . import bench  # benchmark sweeps (dprec.bench): `bench` and `bench-summary`

    b = sub.add_parser("bench", help="run an accuracy-versus-privacy sweep from a TOML config")
    bench.add_bench_arguments(b).set_defaults(func=bench.run_cli)
    bs = sub.add_parser("bench-summary", help="regenerate a sweep's summary.md/.csv and plots from results.jsonl")
    bench.add_summary_arguments(bs).set_defaults(func=bench.run_summary_cli)
    return p


def main(argv=None) -> int:
    """Run the ``dprec`` command; returns the exit code (0 ok; 2 bad input: argparse, ConfigError,
    UnknownIdError; 3 privacy budget refused or unusable ledger; 4 CorruptFileError — see :data:`EXIT_CODES`).
    Any other exception propagates with its traceback: it is a bug."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except tuple(EXIT_CODES) as exc:
        code, prefix = next(v for cls, v in EXIT_CODES.items() if isinstance(exc, cls))
        print(f"dprec: {prefix}: {_message(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
