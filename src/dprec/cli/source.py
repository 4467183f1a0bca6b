"""Data for the commands: ``--dataset``, ``--ratings`` (with its column options), ``--synthetic``, and the public
item catalog ``--items``.

A ratings file is read with pandas (CSV/TSV/Parquet) and turned into :class:`~dprec.data.Interactions` with
the declared public facts: ``--rating-bounds`` and the ``--items`` catalog (then ``public_items`` is True and a
DP fit skips DP item selection). Every problem is a :class:`~dprec.errors.ConfigError` naming the flag.
"""

from __future__ import annotations

import math
import os

from .._provenance import sha256_file
from ..errors import ConfigError, DataError, DPRecError
from ._app import message
from .options import FILE_OPTIONS

__all__ = ["load_data", "read_table", "read_catalog", "read_user_list", "parse_bounds"]


def parse_bounds(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--rating-bounds must be LO,HI (two numbers, e.g. 1,5), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ConfigError(f"--rating-bounds must be finite with LO < HI, got {text!r}")
    return lo, hi


def read_table(path: str, *, flag: str, sep=None, no_header=False):
    """A pandas DataFrame of a ratings file (``flag`` names the option in messages)."""
    import pandas as pd

    if not os.path.isfile(path):
        raise ConfigError(f"{flag}: ratings file not found: {path}")
    lower = path.lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
        else:
            sep = sep if sep is not None else ("\t" if lower.endswith((".tsv", ".data")) else ",")
            sep = "\t" if sep in ("\\t", "tab") else sep
            df = pd.read_csv(
                path, sep=sep, header=None if no_header else "infer", engine="python" if len(sep) > 1 else "c"
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ImportError) as exc:
        raise ConfigError(f"{flag}: cannot read ratings file {path}: {exc}") from None
    if no_header:
        df.columns = [str(c) for c in df.columns]
    return df


def read_catalog(path: str, *, column: str | None, item_col: str = "item") -> list:
    """The ids of a public item catalog: one id per line, or column ``column`` (default ``item_col``) of a CSV
    with a header. Numeric ids become integers (as pandas reads the ratings file's ids)."""
    import pandas as pd

    if not os.path.isfile(path):
        raise ConfigError(f"--items: catalog file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--items {path}: cannot read ({exc})") from None
    sep = "\t" if "\t" in first else ","
    try:
        if column is None and sep not in first:  # one id per line, no header
            ids = pd.read_csv(path, header=None, dtype=str, skip_blank_lines=True).iloc[:, 0]
            ids = ids.str.strip()
            if len(ids) and not _is_number(ids.iloc[0]) and all(_is_number(v) for v in ids.iloc[1:50]):
                ids = ids.iloc[1:]  # a one-column file with a header line
        else:
            df = pd.read_csv(path, sep=sep)
            col = column or item_col
            if col not in df.columns:
                raise ConfigError(
                    f"--items {path}: no column {col!r} (columns: {list(df.columns)}); name it with --items-col"
                )
            ids = df[col].astype(str).str.strip()
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"--items {path}: cannot read the catalog ({exc})") from None
    ids = [v for v in ids.tolist() if v]
    if not ids:
        raise ConfigError(f"--items {path}: the catalog is empty")
    if all(_is_int(v) for v in ids):
        ids = [int(v) for v in ids]
    if len(set(ids)) != len(ids):
        dup = next(v for i, v in enumerate(ids) if v in ids[:i])
        raise ConfigError(f"--items {path}: item {dup!r} is listed twice")
    return ids


def read_user_list(path: str, *, flag: str) -> list[str]:
    """Raw user ids of a text file, one per line; blank lines and lines starting with ``#`` are skipped.

    The ids stay text here; :mod:`dprec.data` converts them to integers when the data's user ids are integers
    (and refuses a mismatch, which would otherwise honour no opt-out)."""
    if not os.path.isfile(path):
        raise ConfigError(f"{flag}: users file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            ids = [ln.strip() for ln in fh]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{flag} {path}: cannot read ({exc})") from None
    return [v for v in ids if v and not v.startswith("#")]


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _is_int(v: str) -> bool:
    try:
        int(v)
        return True
    except ValueError:
        return False


def _catalog_like(catalog: list, ids):
    """The catalog with the dtype of the ratings' item ids (a numeric catalog for string ids → strings)."""
    kind = getattr(ids, "dtype", None)
    if kind is not None and kind.kind not in "iu":
        return [str(v) for v in catalog]
    return catalog


def load_data(kw: dict):
    """(Interactions, description dict) from the data-source options of a command (``kw``: the click kwargs)."""
    from ..data import Interactions

    items = kw.get("items")
    opted = read_user_list(kw["opted_out"], flag="--opted-out") if kw.get("opted_out") else None
    if kw.get("dataset") is not None or kw.get("synthetic") is not None:
        flag = "--dataset" if kw.get("dataset") is not None else "--synthetic"
        typed = [o for o in FILE_OPTIONS if kw.get(o) not in (None, False)]
        if typed:
            raise ConfigError(
                f"--{typed[0].replace('_', '-')} applies to --ratings files; {flag} sources declare their own "
                "columns and rating bounds"
            )
        if items is not None:
            raise ConfigError(f"--items applies to --ratings files; {flag} sources declare their own public catalog")
    if kw.get("synthetic") is not None:
        from .demo import demo_interactions

        data = demo_interactions(kw["synthetic"])
        if opted:
            data = _consent_errors(lambda: data.without_users(opted), "--opted-out")
        return data, {"synthetic": kw["synthetic"], "dataset": data.name}
    if kw.get("dataset") is not None:
        from ..datasets import dataset_checksum, load_dataset

        name = kw["dataset"]
        try:
            data = load_dataset(name, data_home=kw.get("data_home"), download=bool(kw.get("download")), opted_out=opted)
            checksum = "sha256:" + dataset_checksum(name, data_home=kw.get("data_home"))
        except DPRecError:
            raise
        except (ValueError, KeyError, OSError) as exc:  # unknown name, absent files, failed download
            raise ConfigError(f"--dataset {name}: {message(exc)}") from None
        return data, {"dataset": name, "dataset_checksum": checksum}

    path = kw["ratings"]
    bounds = parse_bounds(kw["rating_bounds"]) if kw.get("rating_bounds") is not None else None
    df = read_table(path, flag="--ratings", sep=kw.get("sep"), no_header=bool(kw.get("no_header")))
    rating_col = kw.get("rating_col") or "rating"
    rating_col = None if rating_col.lower() in ("none", "") else rating_col
    columns = {
        "user_col": kw.get("user_col") or "user",
        "item_col": kw.get("item_col") or "item",
        "rating_col": rating_col,
        "timestamp_col": kw.get("timestamp_col"),
    }
    catalog = None
    if items is not None:
        catalog = read_catalog(items, column=kw.get("items_col"), item_col=columns["item_col"])
        if columns["item_col"] in df.columns:
            catalog = _catalog_like(catalog, df[columns["item_col"]])
            missing = set(df[columns["item_col"]].unique()) - set(catalog)
            if missing:
                first = sorted(missing, key=str)[0]
                raise ConfigError(
                    f"--items {items}: the ratings name {len(missing)} item(s) missing from the catalog "
                    f"(first: {first!r}); the catalog must list every item"
                )
    try:
        data = Interactions.from_pandas(
            df,
            **columns,
            rating_bounds=bounds,
            item_catalog=catalog,
            name=os.path.basename(path),
            consent_col=kw.get("consent_col"),
            opted_out=opted,
        )
    except DataError as exc:  # consent input (e.g. --opted-out ids of the wrong kind)
        raise ConfigError(f"--ratings {path}: {message(exc)}") from None
    except DPRecError:
        raise
    except (ValueError, KeyError) as exc:  # Interactions' validation: missing column, rating out of bounds, …
        raise ConfigError(f"--ratings {path}: {message(exc)}") from None
    desc = {"ratings_file": os.path.abspath(path), **columns, "dataset_checksum": "sha256:" + sha256_file(path)}
    if items is not None:
        desc["items_file"] = os.path.abspath(items)
    return data, desc


def _consent_errors(func, flag: str):
    from ..errors import DataError

    try:
        return func()
    except DataError as exc:
        raise ConfigError(f"{flag}: {message(exc)}") from None


def source_label(desc: dict) -> str:
    return desc.get("ratings_file") or desc.get("dataset") or "?"
