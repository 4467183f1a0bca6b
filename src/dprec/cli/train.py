"""``dprec train``: fit a model on all the data, charge the ledger, save the model (and its public DP artifact)."""

from __future__ import annotations

import json
import math
import os
import warnings

import click

from .._json import to_jsonable
from ..errors import ConfigError, PathError, SelectionWarning
from ..models.io import check_save_path
from . import options as o
from ._app import echo, fmt, warn
from .source import load_data, source_label

#: what the privacy report says when a DP fit ran with --no-ledger
NO_LEDGER_STATE = (
    "no ledger: trained with `dprec train --no-ledger`; this fit's privacy cost is not tracked by any ledger"
)
#: DP item selection that keeps less than this share of the items the data names warns (pointing to --items)
FEW_ITEMS_SHARE = 0.5

OUT = "output"


@click.command("train", cls=o.GroupedCommand)
@o.data_source_options()
@o.model_options()
@o.privacy_options(no_ledger=True)
@o.option(
    "--out",
    required=True,
    metavar="MODEL.npz",
    group=OUT,
    help="model file to write (holds per-user state: not a DP artifact)",
)
@o.option(
    "--export-public",
    metavar="PUBLIC.npz",
    group=OUT,
    help="also write the DP artifact: the released item side only (DP models)",
)
@o.option(
    "--format",
    "fmt_",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    group=OUT,
    help="output format",
)
@click.pass_context
def train(ctx, **kw):
    """Fit a model on all the data, charge the privacy ledger, save it.

    A DP fit needs a ledger (--ledger PATH, created by `dprec budget init`), or an explicit --no-ledger that the
    privacy report records. Noise comes from fresh OS entropy unless --seed is given (reproducibility mode: the
    report says so; not for release). --export-public writes the file to share: the DP item side, which serves
    new users with `dprec recommend PUBLIC.npz --fold-in RATINGS` at no privacy cost.
    """
    model = o.build_model(ctx, kw)
    cls = type(model)
    private = cls.is_private and not math.isinf(model.epsilon)
    if cls.is_private and not private and (kw["ledger"] or kw["no_ledger"]):
        raise ConfigError("--epsilon inf is a non-private fit: it charges no ledger (drop --ledger/--no-ledger)")
    if private and not kw["ledger"] and not kw["no_ledger"]:
        raise ConfigError(
            f"model {cls.name!r} is differentially private: pass --ledger PATH (create it with `dprec budget "
            "init`), or --no-ledger to fit without tracking the budget (the privacy report records it)"
        )
    if kw["ledger"] and kw["no_ledger"]:
        raise click.UsageError("--ledger and --no-ledger are not allowed together")
    if kw["export_public"] and not cls.is_private:
        raise ConfigError(f"--export-public: model {cls.name!r} is not private; only DP models have a public artifact")
    # both output paths are checked before the fit: a DP fit charges the ledger, so a bad path found only at
    # save time would spend budget for nothing
    for flag, path in (("--out", kw["out"]), ("--export-public", kw["export_public"])):
        if path:
            try:
                check_save_path(path)
            except PathError:
                raise ConfigError(_path_problem(flag, path)) from None

    data, source = load_data(kw)
    if cls.is_private and data.rating_bounds is None:
        raise ConfigError(
            f"model {cls.name!r} is differentially private and needs the public bounds of the rating scale: "
            "pass --rating-bounds LO,HI (e.g. 1,5)"
        )
    with warnings.catch_warnings():  # the command's own warning below says it in flags (--items), once
        warnings.simplefilter("ignore", SelectionWarning)
        model.fit(data, ledger=kw["ledger"]) if kw["ledger"] else model.fit(data)
    if private and kw["no_ledger"]:
        # recorded in the privacy report (and so in both files' manifests) through the report's ledger field
        model._ledger_state = NO_LEDGER_STATE
    if private and not data.public_items:
        mask = model.released_item_mask_
        if mask.mean() < FEW_ITEMS_SHARE:
            warn(
                f"DP item selection released {int(mask.sum())} of the {len(mask)} items in the data (no public "
                "catalog); the others are never recommended. Pass --items CATALOG_FILE (a public list of item "
                "ids) to release every item and spend no budget on selection"
            )
    written = {"model": model.save(kw["out"])}
    if kw["export_public"]:
        written["public"] = model.export_public(kw["export_public"])
    report = model.privacy_report() if cls.is_private else None
    out = {
        "model": cls.name,
        "source": source,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "public_items": data.public_items,
        "params": {k: v for k, v in model.get_params().items() if k != "rng"},
        "files": written,
        "privacy": None
        if report is None
        else {
            k: report.get(k) for k in ("is_private", "unit", "epsilon", "delta", "verified_epsilon", "noise", "ledger")
        },
    }
    if kw["fmt_"] == "json":
        echo(json.dumps(to_jsonable(out), indent=2))
        return
    echo(f"dprec train: {cls.name} on {source_label(source)} ({data.n_users} users × {data.n_items} items)")
    if report is not None and not report["is_private"]:
        echo("  privacy:  none: ε = ∞ is the non-private reference of this model (no noise; not a DP artifact)")
    elif report is not None:
        echo(
            f"  privacy:  {report['unit']}-level DP, ε = {fmt(report['epsilon'], 3)}, δ = {report['delta']:g} "
            f"(verified ε = {fmt(report['verified_epsilon'], 4)})"
        )
        echo(f"  noise:    {report['noise']}")
        echo(f"  ledger:   {report['ledger']}" + (f" ({kw['ledger']})" if kw["ledger"] else ""))
    echo(f"  model:    {written['model']} (holds per-user state: keep it private; not a DP artifact)")
    if "public" in written:
        what = "the DP artifact: shareable" if private else "item side only, NOT a DP artifact (ε = ∞)"
        echo(f"  public:   {written['public']} ({what}, no per-user data)")
    echo(f"  next:     dprec report {written['model']}")


def _path_problem(flag: str, path: str) -> str:
    """What is wrong with an output path, in shell terms (the library's message speaks Python)."""
    if os.path.isdir(path) or path.endswith(os.sep):
        return f"{flag} {path}: is a directory; pass a file path such as {os.path.join(path, 'model.npz')}"
    d = os.path.dirname(os.path.abspath(path))
    return f"{flag} {path}: the directory {d} does not exist; create it first (mkdir -p {d})"
