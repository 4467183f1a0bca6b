"""``dprec forget MODEL --users FILE [--ledger PATH] [--out PATH]``: erase users from a served model file.

The users' ids, user factors/biases and stored ratings are removed (:meth:`dprec.models.base.Recommender.forget`)
and the file is written again (in place, atomically, or to ``--out``) with no trace of them. The DP item side is
left as it is: it reflects any one erased user by at most the claimed ε; the erasure note saved in the file (shown
by ``dprec report``, ``privacy.erasure``) says so and that a retrain without them is due before the next
release. ``--ledger`` records the erasure in the dataset's ledger (:meth:`dprec.privacy.Ledger.record_erasure`):
the record holds the event and the model class only, no ids and no counts.

A public export (``--export-public``) holds no user data, so there is nothing to forget in it: refused.
"""

from __future__ import annotations

import json
import os

import click

from .._json import to_jsonable
from ..errors import ConfigError
from . import options as o
from ._app import echo
from .serve import load_model_file
from .source import read_user_list


@click.command("forget", cls=o.GroupedCommand)
@click.argument("model_path", metavar="MODEL.npz")
@o.option("--users", "users_file", metavar="FILE", required=True, group="erasure",
          help="the users to erase, one raw id per line ('#' comments)")  # fmt: skip
@o.option("--ledger", metavar="PATH", group="erasure",
          help="the dataset's privacy ledger: records that an erasure happened (no ids, no counts)")  # fmt: skip
@o.option("--out", metavar="PATH", group="erasure", help="write the model here  [default: MODEL, in place]")
@o.option("--format", "fmt_", type=click.Choice(["text", "json"]), default="text", show_default=True,
          group="output", help="output format")  # fmt: skip
def forget(model_path, users_file, ledger, out, fmt_):
    """Erase users from a model file: their ids, user factors and stored ratings (no privacy cost).

    The item side, computed from everyone's data at fit time, stays: DP models reflect any one erased user by at
    most the claimed ε; non-private models reflect them exactly. Retrain without them (`dprec train
    --opted-out FILE`) before the next release; the note saved in the model says so.
    """
    from ..models.io import check_save_path

    users = read_user_list(users_file, flag="--users")
    if not users:
        raise ConfigError(f"--users {users_file}: the file lists no user")
    model, kind = load_model_file(model_path)
    if kind == "dprec-public":
        raise ConfigError(
            f"MODEL {model_path} is a public export (--export-public): it holds no user data, so there is "
            "nothing to forget in it; forget users in the served model file (dprec train --out)"
        )
    target = check_save_path(out or model_path)
    led = None
    if ledger:
        from ..privacy import Ledger
        from ..privacy.ledger_postgres import is_postgres_url

        if not is_postgres_url(ledger) and not os.path.isfile(ledger):
            raise ConfigError(f"--ledger: ledger file not found: {ledger}")
        led = Ledger.open(ledger)  # verified before the model file is touched (fail closed)
    n_before = len(model.user_ids)
    note = model.forget(users)
    n_erased = n_before - len(model.user_ids)
    written = model.save(target)
    # nothing erased (none of the ids was a user of the model): nothing to record
    record = led.record_erasure(model=type(model).__name__) if led is not None and n_erased else None
    result = {
        "model": written,
        # shown to the model's owner only (never saved): how many of the listed users the model knew
        "erased": n_erased,
        "listed": len(users),
        "erasure": note,
        "ledger": None if led is None else {"path": str(led.path), "recorded": record},
    }
    if fmt_ == "json":
        echo(json.dumps(to_jsonable(result), indent=2))
        return
    echo(f"erased {n_erased} of the {len(users)} listed user(s) from {written}")
    echo(f"removed: {note['removed']}")
    if not n_erased:
        if led is not None:
            echo("ledger: nothing to record")
        return
    echo(f"item side: {note['item_side']}")
    echo(f"retrain due: {note['retrain_due']['reason']}")
    if led is not None:
        echo(f"ledger {led.path}: erasure recorded (no ids, no counts)")
    else:
        echo("ledger: not recorded (pass --ledger PATH to record the erasure)")
