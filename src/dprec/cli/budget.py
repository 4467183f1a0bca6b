"""``dprec budget init|show``: a dataset's persistent privacy budget (the ledger of :mod:`dprec.privacy`: an SQLite
file, or a shared ledger on a PostgreSQL server given as a ``postgresql://`` URL)."""

from __future__ import annotations

import json
import math

import click

from .._json import to_jsonable
from ..errors import ConfigError
from . import options as o
from ._app import echo, fmt, table
from .source import load_data


def _dataset_id(kw) -> str | None:
    """The dataset id fits use (``Interactions.dataset_id``) for the data source given, or None if none."""
    if all(kw.get(k) is None for k in ("dataset", "ratings", "synthetic")):
        if kw.get("items") is not None:
            raise ConfigError("--items needs --ratings FILE (the catalog is part of the dataset's identity)")
        return None
    data, _ = load_data(kw)
    return data.dataset_id


def _ledger_path(kw, dataset_id: str | None) -> str:
    from ..privacy import Ledger

    if kw.get("ledger"):
        return kw["ledger"]
    if dataset_id is None:
        raise ConfigError("give --ledger PATH|URL, or --dataset NAME / --ratings FILE to use the default ledger path")
    return str(Ledger.default_path(dataset_id))


def budget_lines(d: dict) -> list[str]:
    """The ledger summary as text. Under zCDP the ε of the spent budget is stated at the ledger's total δ (δ
    is not used up charge by charge); only explicit δ's (DP item selection's threshold) are subtracted from it."""
    total_d = d["total_delta"]
    explicit = max(0.0, total_d - d["remaining_delta"]) if d["spent_rho"] > 0 else d["spent_delta"]
    lines = [
        f"privacy ledger {d['path']}",
        f"  dataset:   {d['dataset']}",
        f"  total:     ε = {fmt(d['total_epsilon'])}, δ = {total_d:g}",
    ]
    if d["spent_rho"] > 0:
        lines.append(
            f"  spent:     ε = {fmt(d['spent_epsilon'])} at δ = {total_d:g} (zCDP, ρ = {fmt(d['spent_rho'], 6)}; "
            "its ε is stated at the total δ)"
        )
    else:
        lines.append(f"  spent:     ε = {fmt(d['spent_epsilon'])}, δ = {d['spent_delta']:g}")
    if explicit > 0:
        lines.append(f"             of the total δ, {explicit:g} is used by explicit-δ steps (DP item selection)")
    lines.append(
        f"  remaining: ε = {fmt(d['remaining_epsilon'])} (ρ = {fmt(d['remaining_rho'], 6)}); "
        f"δ left for further fits: {d['remaining_delta']:g}"
    )
    return lines


def print_budget(led, fmt_: str) -> None:
    """Print the ledger's public summary (no MACs, digests, sequence numbers, times or parameters)."""
    d = {"path": str(led.path), **led.public_summary()}
    if fmt_ == "json":
        echo(json.dumps(to_jsonable(d), indent=2))
        return
    for line in budget_lines(d):
        echo(line)
    if d["charges"]:
        rows = [
            [
                str(i),
                str(c["model"]),
                str(c["mechanism"]),
                fmt(c["rho"], 6),
                fmt(c["epsilon"]),
                f"{c['delta']:g}",
                str(c["label"]),
            ]
            for i, c in enumerate(d["charges"], 1)
        ]
        echo()
        echo(table(["#", "model", "mechanism", "ρ", "ε", "δ", "label"], rows))
    else:
        echo("  no charges yet")


FORMAT = o.option(
    "--format",
    "fmt_",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    group="output",
    help="output format",
)
LEDGER = o.option(
    "--ledger",
    metavar="PATH|URL",
    group="ledger",
    callback=o.check_ledger,
    help="ledger file, or a shared ledger on a PostgreSQL server: postgresql://USER@HOST:PORT/DB (docs/ledger.md)  "
    "[default: the dataset's default path]",
)
TRAINER_ROLE = o.option(
    "--trainer-role",
    "trainer_roles",
    metavar="ROLE",
    multiple=True,
    group="ledger",
    help="PostgreSQL ledger only (init connects as the schema's owner): a role that may charge the ledger and "
    "nothing else (repeatable)",
)


@click.group("budget")
def budget():
    """Create or inspect a dataset's persistent privacy budget (ledger)."""


@budget.command("init", cls=o.GroupedCommand)
@o.data_source_options(required=True)
@o.option(
    "--epsilon",
    type=o.EPSILON,
    required=True,
    group="budget",
    help="total ε (finite) of everything released from this data; how to choose it: " + o.CHOOSING_EPSILON,
)
@o.option("--delta", type=o.TOTAL_DELTA, required=True, group="budget", help="total δ in (0, 1), e.g. 1e-5")
@LEDGER
@TRAINER_ROLE
@FORMAT
def budget_init(epsilon, delta, ledger, trainer_roles, fmt_, **kw):
    """Create the ledger of a dataset with a total (ε, δ) budget (idempotent with the same totals).

    The ledger is bound to the dataset's identity: the data, the rating bounds and the --items catalog. Fits
    charge it before drawing any noise and are refused once the budget would be exceeded.
    """
    from ..privacy import Ledger
    from ..privacy.ledger_postgres import is_postgres_url

    if math.isinf(epsilon):
        raise ConfigError("--epsilon must be finite: a ledger tracks a finite budget")
    kw["ledger"] = ledger
    dataset_id = _dataset_id(kw)
    path = _ledger_path(kw, dataset_id)
    if trainer_roles and not is_postgres_url(path):
        raise ConfigError("--trainer-role applies to a PostgreSQL ledger (--ledger postgresql://...), not a file")
    trainer = list(trainer_roles) or None
    led = Ledger.create(path, dataset=dataset_id, epsilon=epsilon, delta=delta, trainer=trainer)
    print_budget(led, fmt_)


@budget.command("show", cls=o.GroupedCommand)
@o.data_source_options(required=False)
@LEDGER
@FORMAT
def budget_show(ledger, fmt_, **kw):
    """Show a ledger: totals, spent, remaining, charges (public summary: no digests, times or seeds)."""
    from ..privacy import Ledger

    kw["ledger"] = ledger
    dataset_id = _dataset_id(kw)
    led = Ledger.open(_ledger_path(kw, dataset_id), dataset=dataset_id)
    print_budget(led, fmt_)
