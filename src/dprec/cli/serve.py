"""``dprec recommend``: top-N lists from a model file, for known users or for new users folded in from their
own ratings (``--fold-in``; from a public DP artifact this costs no privacy budget); ``--explain ITEM`` shows
instead which of each user's own ratings drive that item's score (:meth:`~dprec.models.base.Recommender.explain`)."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile

import click
import numpy as np

from .._json import to_jsonable
from ..errors import ConfigError, CorruptFileError, UnknownIdError
from . import options as o
from ._app import echo, table, warn
from .source import read_table


def read_manifest(path: str) -> dict | None:
    """The JSON manifest of a dprec file, or None if unreadable (the loader then reports what is wrong). Only
    for display and dispatch: the loaders verify every checksum."""
    try:
        with zipfile.ZipFile(path) as z, z.open("__manifest__.npy") as fh:
            raw = np.lib.format.read_array(fh, allow_pickle=False)
        manifest = json.loads(raw.tobytes().decode())
        return manifest if isinstance(manifest, dict) else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError):
        return None


def file_format(path: str) -> str | None:
    """The ``format`` of a dprec file's manifest (``dprec-model`` / ``dprec-public``), or None."""
    return (read_manifest(path) or {}).get("format")


def load_model_file(path: str, *, flag: str = "MODEL"):
    """(model, manifest format) of a model file written by ``dprec train`` (``--out`` or ``--export-public``)."""
    from ..models._dp import DPModelMixin
    from ..models.base import Recommender

    if not os.path.isfile(path):
        raise ConfigError(f"{flag}: model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(
            f"{path} is not a dprec model file (`dprec train` writes them with --out / --export-public)"
        )
    kind = file_format(path)
    if kind == "dprec-public":
        return DPModelMixin.load_public(path), kind
    return Recommender.load(path), kind or "dprec-model"


def _as_model_ids(values, model_ids: np.ndarray, what: str):
    """Command-line / file ids converted to the model's id type (integers when the model's ids are)."""
    if model_ids.dtype.kind in "iu":
        out = []
        for v in values:
            try:
                out.append(int(v))
            except (TypeError, ValueError):
                raise ConfigError(f"{what} {v!r}: the model's ids are integers") from None
        return out
    return [str(v) for v in values]


def _fold_in(model, kw) -> list:
    """Fold the users of the --fold-in ratings file into ``model``; returns their ids."""
    from ..data import Interactions

    path = kw["fold_in"]
    df = read_table(path, flag="--fold-in", sep=kw.get("sep"), no_header=bool(kw.get("no_header")))
    ucol, icol = kw.get("user_col") or "user", kw.get("item_col") or "item"
    rcol = kw.get("rating_col") or "rating"
    rcol = None if rcol.lower() in ("none", "") else rcol
    missing = [c for c in (ucol, icol, rcol) if c is not None and c not in df.columns]
    if missing:
        raise ConfigError(
            f"--fold-in {path}: column(s) {missing} not found (columns: {list(df.columns)}); name them with "
            "--user-col/--item-col/--rating-col"
        )
    df = df.copy()
    df[icol] = _as_model_ids(df[icol].tolist(), model.item_ids, "--fold-in: item")
    users = df[ucol].tolist()
    df[ucol] = (
        _as_model_ids(users, model.user_ids, "--fold-in: user")
        if len(model.user_ids)
        else [int(u) if model.item_ids.dtype.kind in "iu" and str(u).lstrip("-").isdigit() else str(u) for u in users]
    )
    known_items = set(model.item_ids.tolist())
    unknown = ~df[icol].isin(known_items)
    if unknown.any():
        warn(
            f"--fold-in: {int(unknown.sum())} rating(s) of items the model does not serve were ignored "
            f"(first: {df[icol][unknown].iloc[0]!r}; a DP model serves only its released items)"
        )
        df = df[~unknown]
    if df.empty:
        raise ConfigError(f"--fold-in {path}: no rating of an item the model serves")
    already = sorted(set(df[ucol]) & set(model.user_ids.tolist()), key=str)
    if already:
        raise ConfigError(f"--fold-in: user {already[0]!r} is already in the model; fold-in serves new users")
    kind = "strings" if isinstance(df[ucol].iloc[0], str) else "ints"
    if len(model.user_ids) and (model.user_ids.dtype.kind in "iu") != (kind == "ints"):
        raise ConfigError("--fold-in: the new users' ids must have the type of the model's user ids")
    try:
        new = Interactions.from_pandas(
            df, user_col=ucol, item_col=icol, rating_col=rcol, rating_bounds=model.rating_bounds_, name="fold-in"
        )
    except ValueError as exc:
        raise ConfigError(f"--fold-in {path}: {exc}") from None
    return list(model.fold_in_many(new))  # bad ids and ratings were refused above, in the flags' terms


@click.command("recommend", cls=o.GroupedCommand)
@click.argument("model_file", metavar="MODEL.npz")
@o.option("--user", "users", multiple=True, metavar="ID", group="users", help="a user id (repeat for several)")
@o.option("--users-file", metavar="FILE", group="users", help="user ids, one per line")
@o.option("--fold-in", metavar="RATINGS", group="users", help="ratings of new users (columns as for --ratings): "
          "they are folded into the model from their own ratings (no privacy cost) and served")  # fmt: skip
@o.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True, group="output", help="list length")
@o.option("--include-seen", is_flag=True, group="output", help="also recommend items the user already rated")
@o.option("--explain", "explain_item", metavar="ITEM", group="explain",
          help="instead of a list: why ITEM scores as it does for each user (their own ratings, with shares)")  # fmt: skip
@o.option("--titles", metavar="DATASET", group="explain",
          help="name items by their titles from DATASET's catalog under $DPREC_DATA (e.g. ml-100k)")  # fmt: skip
@o.option(
    "--format",
    "fmt_",
    type=click.Choice(["table", "md", "json", "csv"]),
    default="table",
    show_default=True,
    group="output",
    help="output format",
)
@o.option("--user-col", metavar="NAME", group="--fold-in file", help="user id column  [default: user]")
@o.option("--item-col", metavar="NAME", group="--fold-in file", help="item id column  [default: item]")
@o.option(
    "--rating-col", metavar="NAME", group="--fold-in file", help="rating column, 'none' = implicit  [default: rating]"
)
@o.option("--sep", metavar="SEP", group="--fold-in file", help="field separator  [default: ',' or tab for .tsv]")
@o.option("--no-header", is_flag=True, group="--fold-in file", help="the file has no header")
def recommend(model_file, users, users_file, fold_in, n, include_seen, explain_item, titles, fmt_, **kw):
    """Top-N recommendations from MODEL.npz (a `dprec train --out` file or a `--export-public` artifact).

    Known users are served from the model; new users from --fold-in RATINGS, which folds them in from their own
    ratings using only the model's (released) item side. Without --user, --fold-in serves every user in it.
    With --explain ITEM: a plain-English summary and a table of which of the user's own ratings drive ITEM's
    score (signed shares of the explained part; the rest is the item's baseline, not about the user).
    """
    model, kind = load_model_file(model_file)
    folded = []
    if fold_in:
        folded = _fold_in(model, {**kw, "fold_in": fold_in})
    ids = list(users)
    if users_file:
        if not os.path.isfile(users_file):
            raise ConfigError(f"--users-file: file not found: {users_file}")
        with open(users_file, encoding="utf-8") as fh:
            ids += [line.strip() for line in fh if line.strip()]
    if not ids:
        if not folded:
            raise click.UsageError(
                "give --user ID (repeatable), --users-file FILE, or --fold-in RATINGS for new users"
                + (" (this public artifact holds no users: use --fold-in)" if kind == "dprec-public" else "")
            )
        ids = folded
    else:
        ids = _as_model_ids(ids, model.user_ids, "--user")
        known = set(model.user_ids.tolist())
        unknown = [u for u in ids if u not in known]
        if unknown:  # the library would serve its fallback list; on the command line that hides a typo
            raise UnknownIdError(
                f"--user {unknown[0]!r} is not in {model_file}"
                + (" (a public artifact holds no users)" if kind == "dprec-public" else "")
                + "; serve a new user from their own ratings with --fold-in RATINGS"
            )
    if explain_item is not None:
        return _explain(model, model_file, ids, explain_item, titles, fmt_, n)
    results = []
    for u in ids:
        items, scores = model.recommend(u, n=n, filter_seen=not include_seen)
        results.append({"user": u, "items": [{"item": i, "score": float(s)} for i, s in zip(items, scores)]})
    if fmt_ == "json":
        echo(json.dumps(to_jsonable({"model": model_file, "n": n, "recommendations": results}), indent=2))
    elif fmt_ == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["user", "rank", "item", "score"])
        for r in results:
            for rank, it in enumerate(r["items"], 1):
                w.writerow([r["user"], rank, it["item"], f"{it['score']:.6g}"])
        echo(buf.getvalue().rstrip("\n"))
    else:
        rows = [
            [str(r["user"]), str(rank), str(it["item"]), f"{it['score']:.4f}"]
            for r in results
            for rank, it in enumerate(r["items"], 1)
        ]
        echo((md_table if fmt_ == "md" else table)(["user", "rank", "item", "score"], rows))


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown (GitHub) table; ``|`` in cells is escaped."""
    cell = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    return "\n".join(
        ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
        + ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    )


def _explain(model, model_file, users, item, titles, fmt_, n) -> None:
    """``--explain ITEM``: the model's explanation of ITEM's score for each user (at most ``n`` rated items)."""
    names = {}
    if titles:
        from ..datasets.attributes import load_item_titles

        try:
            names = load_item_titles(titles)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise ConfigError(f"--titles {titles}: {exc}") from None
    (item,) = _as_model_ids([item], model.item_ids, "--explain")
    out = []
    for u in users:
        df = model.explain(u, item, item_names=names)
        rows = [
            {
                "item": r.item,
                "title": names.get(r.item),
                "rating": float(r.rating),
                "contribution": float(r.contribution),
                "share": float(r.share),
            }
            for r in df.head(n).itertuples(index=False)  # keeps the id dtype (iterrows casts to float)
        ]
        out.append({"user": u, "item": item, "rows": rows, "rated_items": len(df), **dict(df.attrs)})
    if fmt_ == "json":
        echo(json.dumps(to_jsonable({"model": model_file, "explanations": out}), indent=2))
        return
    if fmt_ == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["user", "item", "rated_item", "rating", "contribution", "share"])
        for e in out:
            for r in e["rows"]:
                w.writerow([e["user"], e["item"], r["item"], f"{r['rating']:g}", f"{r['contribution']:.6g}",
                            f"{r['share']:.4f}"])  # fmt: skip
        echo(buf.getvalue().rstrip("\n"))
        return
    fmt_table = md_table if fmt_ == "md" else table
    for k, e in enumerate(out):
        if k:
            echo()
        head = f"user {e['user']}, item {e['item']}: score {e['ranking_score']:.4f} = baseline {e['baseline']:.4f}"
        echo(("**" + head + " + contributions**") if fmt_ == "md" else head + " + contributions")
        echo()
        echo(e["text"])
        echo()
        cols = ["rated item", *(["title"] if names else []), "rating", "contribution", "share"]
        body = [
            [str(r["item"]), *([str(r["title"] or "")] if names else []), f"{r['rating']:g}",
             f"{r['contribution']:+.4f}", f"{r['share']:+.1%}"]
            for r in e["rows"]
        ]  # fmt: skip
        echo(fmt_table(cols, body))
        if e["rated_items"] > len(e["rows"]):
            echo(f"({e['rated_items'] - len(e['rows'])} more rated item(s) with smaller contributions; raise -n)")
