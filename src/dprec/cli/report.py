"""``dprec report``: a model file's model card (the privacy report, and more).

The card is built by :func:`dprec.card.model_card` (one home) and says: the data (public name, the DP user count
ñ rounded, the item count when public or a DP output), the privacy unit, ε/δ spent with the per-step
mechanisms (statistic, sensitivity, σ, ρ), the contribution bounds, the public assumptions, what the file
contains and which parts are a DP artifact, the noise origin and the ledger state (``--ledger``), the intended
use and the known limitations. It carries no seed, no data fingerprint, no ledger hash or time and no exact
count, so it can be published.

Evaluation and audit figures are **opt-in** (``--evaluation EVAL.json`` from ``dprec evaluate --format json``,
``--audit AUDIT.json`` from ``dprec audit --format json``): they are computed on private data, so the card
labels them as not DP, rounds them and drops their counts, seeds and checksums.
"""

from __future__ import annotations

import json

import click

from ..card import card_markdown, model_card
from ..errors import ConfigError
from . import options as o
from ._app import echo


def build_report(
    path: str,
    ledger: str | None = None,
    *,
    dataset_name: str | None = None,
    evaluation: str | None = None,
    audit: str | None = None,
    intended_use: str | None = None,
) -> dict:
    """The model card of ``path`` (:func:`dprec.card.model_card`), with errors naming the flags."""
    import os

    if not os.path.isfile(path):
        raise ConfigError(f"MODEL: model file not found: {path}")
    try:
        return model_card(
            path,
            ledger=ledger,
            dataset_name=dataset_name,
            evaluation=evaluation,
            audit=audit,
            intended_use=intended_use,
        )
    except ConfigError as exc:
        text = str(exc)
        for word, flag in (("evaluation", "--evaluation"), ("audit", "--audit")):
            if text.startswith(word):
                raise ConfigError(flag + text[len(word) :]) from None
        raise


@click.command("report", cls=o.GroupedCommand)
@click.argument("model_file", metavar="MODEL.npz")
@o.option("--ledger", metavar="PATH", group="options", help="also show this ledger's state (public summary)")
@o.option(
    "--dataset-name",
    metavar="NAME",
    group="card",
    help="public name of the training data (a public input; default: the --ledger's label)",
)
@o.option(
    "--evaluation",
    metavar="EVAL.json",
    group="card",
    help="opt in: add the figures of `dprec evaluate --format json` (computed on private data, labelled not DP)",
)
@o.option(
    "--audit",
    metavar="AUDIT.json",
    group="card",
    help="opt in: add the audit of `dprec audit --format json` at the model's ε (private data, labelled not DP)",
)
@o.option("--intended-use", metavar="TEXT", group="card", help="the owner's statement of intended use")
@o.option(
    "--format",
    "fmt_",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    group="options",
    help="output format",
)
def report(model_file, ledger, dataset_name, evaluation, audit, intended_use, fmt_):
    """A model file's model card: data (DP counts only), privacy unit, ε/δ and per-step mechanisms, bounds, public
    assumptions, what the file contains and which parts are a DP artifact, noise origin, ledger state, intended use
    and known limitations; evaluation and audit results only on request (--evaluation, --audit), labelled not DP."""
    r = build_report(
        model_file, ledger, dataset_name=dataset_name, evaluation=evaluation, audit=audit, intended_use=intended_use
    )
    if fmt_ == "json":
        echo(json.dumps(r, indent=2))
    else:
        echo(card_markdown(r))
