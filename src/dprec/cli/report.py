"""``dprec report``: a model file's privacy report — the seed of its model card.

It says: the privacy unit; ε, δ and the per-step mechanisms (statistic, sensitivity, σ, ρ); the public
assumptions; what the file contains and which parts are a DP artifact; the noise origin and the ledger state.
Everything comes from the model's :meth:`~dprec.models._dp.DPModelMixin.privacy_report` (stored in the file's
manifest) and the manifest itself; ``--ledger`` adds the ledger's public summary. Like the privacy report, it
carries no seed, no data fingerprint and no exact user count (per-user arrays are listed without their shape),
so it can be published as the start of a model card.
"""

from __future__ import annotations

import json

import click

from .._json import to_jsonable
from . import options as o
from ._app import echo, fmt
from .budget import budget_lines
from .serve import load_model_file, read_manifest


def build_report(path: str, ledger: str | None = None) -> dict:
    model, kind = load_model_file(path)
    manifest = read_manifest(path) or {}
    cls = type(model)
    public = kind == "dprec-public"
    rep = model.privacy_report() if getattr(cls, "is_private", False) else None
    contents = {
        "format": kind,
        "contains_user_data": bool(manifest.get("contains_user_data", not public)),
        "is_dp_artifact": bool(rep and rep["is_private"] and public),
        # per-user arrays without their shape: a report may be published, an exact user count may not
        "arrays": {
            k: "per-user rows" if "user" in k else v.get("shape")
            for k, v in sorted(manifest.get("arrays", {}).items())
            if not k.startswith("__")
        },
        "n_items": int(len(model.item_ids)),
    }
    out = {
        "file": path,
        "model": cls.name,
        "model_class": cls.__name__,
        "dprec_version": manifest.get("dprec_version"),
        "params": manifest.get("params", {}),
        "rating_bounds": manifest.get("rating_bounds"),
        "contents": contents,
        "privacy": rep,
    }
    if ledger:
        from ..privacy import Ledger

        led = Ledger.open(ledger)
        out["ledger"] = {"path": str(led.path), **led.public_summary()}
    return to_jsonable(out)


def _markdown(r: dict) -> list[str]:
    c, p = r["contents"], r["privacy"]
    lines = [f"# Privacy report: `{r['file']}`", ""]
    lines += [f"- model: {r['model_class']} (`{r['model']}`), written by dprec {r['dprec_version']}"]
    lines += [f"- file: {c['format']}, {c['n_items']} items"]
    if p is None or not p["is_private"]:
        why = "the model is not private" if p is None else "ε = ∞: the non-private reference, no noise"
        lines += [
            "",
            "## Guarantee",
            "",
            f"**None: {why}.** Nothing in this file is a DP artifact; it is computed from the raw data. "
            "Share it only where the raw data could be shared.",
        ]
    else:
        total = p["total_rho"] or 1.0
        lines += [
            "",
            "## Guarantee",
            "",
            f"- privacy unit: **{p['unit']}** (neighbouring datasets differ by one {p['unit']}"
            + (" with all their ratings)" if p["unit"] == "user" else ")"),
            f"- ε = **{fmt(p['epsilon'], 4)}**, δ = **{p['delta']:g}** (verified from the steps: ε = {fmt(p['verified_epsilon'], 4)})",
            f"- accounting: {p['accounting']}",
            f"- noise: {p['noise']}" + ("; OpenDP secure noise" if p.get("secure_noise") else ""),
            f"- ledger: {p['ledger']}",
            "",
            "## Release steps",
            "",
            "| step | statistic | mechanism | L2 sensitivity | σ | count | ρ | share of ρ |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in p["steps"]:
            rho = s["rho"] * s.get("count", 1)
            lines.append(
                f"| {s['name']} | {s.get('statistic', '')} | {s.get('mechanism', '')} | {fmt(s.get('sensitivity_l2'), 4)} "
                f"| {fmt(s.get('sigma'), 4)} | {s.get('count', 1)} | {fmt(s['rho'], 6)} | {100 * rho / total:.1f}% |"
            )
        lines += ["", "## Public assumptions", ""] + [f"- {a}" for a in p["public_assumptions"]]
        lines += ["", "## What is released", ""] + [f"- {k}: {v}" for k, v in p["released"].items()]
        lines += ["", f"Joint DP: {p['joint_dp']}"]
    lines += ["", "## What this file contains", ""]
    if c["is_dp_artifact"]:
        lines.append("This file is the **DP artifact** (`dprec train --export-public`): the released item side and the "
                     "public item ids, no per-user data. It may be shared; serve new users from it with "
                     "`dprec recommend FILE --fold-in RATINGS`.")  # fmt: skip
    elif c["contains_user_data"]:
        dp_part = " Its DP part is what `dprec train --export-public` writes." if p and p["is_private"] else ""
        lines.append(
            "This file holds **per-user state** (user parameters, seen items): it is **not** a DP artifact, keep "
            "it private." + dp_part
        )
    else:
        lines.append("This file holds no per-user data.")
    lines += ["", "| array | shape |", "|---|---|"] + [f"| {k} | {v} |" for k, v in c["arrays"].items()]
    lines += ["", "## Hyperparameters (public inputs)", ""] + [f"- {k}: {v}" for k, v in r["params"].items()]
    if "ledger" in r:
        lines += ["", "## Ledger", "", "```"] + budget_lines(r["ledger"]) + ["```"]
    return lines


@click.command("report", cls=o.GroupedCommand)
@click.argument("model_file", metavar="MODEL.npz")
@o.option("--ledger", metavar="PATH", group="options", help="also show this ledger's state (public summary)")
@o.option(
    "--format",
    "fmt_",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    group="options",
    help="output format",
)
def report(model_file, ledger, fmt_):
    """A model file's privacy report: unit, ε/δ and per-step mechanisms, public assumptions, what the file contains
    and which parts are a DP artifact, noise origin and ledger state."""
    r = build_report(model_file, ledger)
    if fmt_ == "json":
        echo(json.dumps(r, indent=2))
    else:
        echo("\n".join(_markdown(r)))
