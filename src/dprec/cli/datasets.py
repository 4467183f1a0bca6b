"""``dprec datasets list``: the registered datasets, their public facts and whether they are present locally."""

from __future__ import annotations

import json

import click

from .._json import to_jsonable
from ._app import echo, fmt, table


def _data_home(explicit: str | None) -> str:
    from ..datasets import get_data_home

    return str(get_data_home(explicit))


def _licence_summary(text: str | None) -> str:
    return text.split(";")[0].strip() if text else "-"


def dataset_rows(data_home: str | None) -> list[dict]:
    """One row per registered dataset: name, rating bounds, licence summary, presence under the data home."""
    from ..datasets import list_datasets

    rows = []
    for entry in list_datasets(data_home):
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


@click.group("datasets")
def datasets():
    """Registered datasets."""


@datasets.command("list")
@click.option("--data-home", metavar="DIR", help="data directory  [default: $DPREC_DATA, else a user cache]")
@click.option("--format", "fmt_", type=click.Choice(["table", "json"]), default="table", show_default=True)
def datasets_list(data_home, fmt_):
    """List datasets: rating bounds, licence, whether present locally."""
    rows = dataset_rows(data_home)
    if fmt_ == "json":
        echo(json.dumps({"data_home": _data_home(data_home), "datasets": to_jsonable(rows)}, indent=2))
        return
    body = [
        [
            r["name"],
            "-" if r["rating_bounds"] is None else f"{fmt(r['rating_bounds'][0], 1)}-{fmt(r['rating_bounds'][1], 1)}",
            {True: "yes", False: "no", None: "-"}[r["present"]],
            r["licence"] or "-",
        ]
        for r in rows
    ]
    echo(table(["name", "ratings", "local", "licence"], body))
    echo(f"\ndata directory: {_data_home(data_home)} (set DPREC_DATA or --data-home to change)")
