"""``dprec models list|show``: the registered models, their capabilities and their hyperparameters."""

from __future__ import annotations

import json

import click

from .._json import to_jsonable
from ..models.registry import MODELS, get_model, model_names
from ._app import echo, flag_name, table

FORMAT = click.option("--format", "fmt_", type=click.Choice(["table", "json"]), default="table", show_default=True)


@click.group("models")
def models():
    """Registered models and their hyperparameters."""


@models.command("list")
@FORMAT
def models_list(fmt_):
    """List models: DP or not, feedback, whether they predict ratings."""
    rows = [
        {
            "name": n,
            "class": MODELS[n].__name__,
            "private": bool(MODELS[n].is_private),
            "feedback": MODELS[n].feedback,
            "predicts_ratings": bool(MODELS[n].predicts_ratings),
        }
        for n in model_names()
    ]
    if fmt_ == "json":
        echo(json.dumps(rows, indent=2))
        return
    body = [
        [
            r["name"],
            r["class"],
            "yes" if r["private"] else "no",
            r["feedback"],
            "yes" if r["predicts_ratings"] else "no",
        ]
        for r in rows
    ]
    echo(table(["name", "class", "DP", "feedback", "predicts ratings"], body))
    echo("\nhyperparameters of one model: dprec models show NAME")


@models.command("show")
@click.argument("name", metavar="NAME")
@FORMAT
def models_show(name, fmt_):
    """A model's hyperparameters: flag, TOML key ([params] of --config), default and meaning."""
    cls = get_model(name)
    rows = []
    for field, info in cls.Config.model_fields.items():
        if field == "rng":
            continue
        default = None if info.is_required() else info.default
        rows.append(
            {
                "flag": flag_name(field),
                "key": field,
                "default": default,
                "required": info.is_required(),
                "description": info.description or "",
            }
        )
    if fmt_ == "json":
        echo(
            json.dumps(
                to_jsonable(
                    {"name": cls.name, "class": cls.__name__, "private": bool(cls.is_private), "parameters": rows}
                ),
                indent=2,
            )
        )
        return
    kind = "differentially private" if cls.is_private else "non-private"
    echo(f"{cls.name} ({cls.__name__}): {kind}, {cls.feedback} feedback")
    body = [
        [
            r["flag"],
            r["key"],
            "required" if r["required"] else ("auto" if r["default"] is None else str(r["default"])),
            r["description"],
        ]
        for r in rows
    ]
    echo(table(["flag", "TOML key", "default", "meaning"], body))
    echo("\n--seed sets rng (a DP model's noise: reproducibility mode); 'auto' = the model's documented rule")
