"""Public-release user attributes of MovieLens-100K (``u.user``), for per-group audits.

``u.user`` holds ``user id | age | gender | occupation | zip code``. :func:`load_user_attributes` returns the
first four only: zip codes are never read into the result (no audit needs them, and they are the most
identifying column). The file is read from the same data directory as :func:`~dprec.datasets.load_dataset`
(the ``data_home`` argument, else ``$DPREC_DATA``, else the user cache directory).

:func:`load_item_titles` reads the public catalog's titles (raw item id → title) through the loaders' own
parser, for :meth:`~dprec.models.base.Recommender.explain` texts.

These user attributes are *private data* of the dataset's users: per-group figures computed from them are not
differentially private (see ``docs/audit.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import CorruptFileError
from .loaders import dataset_path, get_data_home
from .registry import get_spec

__all__ = ["load_user_attributes", "AGE_BANDS", "age_band"]

#: age bands (years, left-closed) used by the ML-100K audit: the bands of ML-1M's ``users.dat`` coding
AGE_BANDS = ((0, 18), (18, 25), (25, 35), (35, 45), (45, 50), (50, 56), (56, 200))


def age_band(age) -> pd.Series:
    """Label each age with its band of :data:`AGE_BANDS` (``"<18"``, ``"18-24"``, …, ``"56+"``).

    Parameters
    ----------
    age : array-like or pandas Series of int
        Ages in years.

    Returns
    -------
    pandas.Series of str (ordered categorical), with the index of ``age`` when it is a Series.
    """
    s = age if isinstance(age, pd.Series) else pd.Series(np.asarray(age))
    labels = []
    for lo, hi in AGE_BANDS:
        labels.append(f"<{hi}" if lo == 0 else (f"{lo}+" if hi >= 200 else f"{lo}-{hi - 1}"))
    edges = [b[0] for b in AGE_BANDS] + [AGE_BANDS[-1][1]]
    return pd.cut(s, bins=edges, right=False, labels=labels)


def load_user_attributes(name: str = "ml-100k", *, data_home=None, age_bands: bool = True) -> pd.DataFrame:
    """User attributes of MovieLens-100K: ``age``, ``gender``, ``occupation`` (and ``age_band``).

    Parameters
    ----------
    name : str, default "ml-100k"
        Only ``"ml-100k"`` is supported (its ``u.user`` file).
    data_home : path-like, optional
        Data directory, resolved as by :func:`~dprec.datasets.load_dataset`.
    age_bands : bool, default True
        Add an ``age_band`` column (:func:`age_band`).

    Returns
    -------
    pandas.DataFrame
        Indexed by the raw user id (``int``, the ids of ``load_dataset("ml-100k")``), sorted, with columns
        ``age`` (int, years), ``gender`` (``"M"``/``"F"``), ``occupation`` (str) and optionally ``age_band``.
        The zip-code column is not returned.

    Raises
    ------
    ValueError
        For a dataset other than ml-100k.
    FileNotFoundError
        When ``u.user`` is not under the data directory.
    dprec.errors.CorruptFileError
        When the file does not parse as ``u.user`` (wrong field count, repeated ids, bad values).
    """
    if name != "ml-100k":
        raise ValueError(f"load_user_attributes supports only 'ml-100k' (its u.user file), got {name!r}")
    spec = get_spec(name)
    folder = dataset_path(name, data_home)
    if folder is None or not (folder / spec.users_file).is_file():
        home = get_data_home(data_home)
        raise FileNotFoundError(
            f"{spec.users_file} of {name} not found under {home}: unpack {spec.url} so that "
            f"{home / name}/{spec.users_file} exists (set $DPREC_DATA or pass data_home)"
        )
    path = folder / spec.users_file
    try:
        df = pd.read_csv(
            path,
            sep="|",
            header=None,
            names=["user", "age", "gender", "occupation", "zip"],
            usecols=["user", "age", "gender", "occupation"],  # zip codes are never read
            dtype={"user": np.int64, "age": np.int64, "gender": str, "occupation": str},
            encoding=spec.encoding,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise CorruptFileError(f"cannot parse {path} as {name} user attributes: {exc}") from None
    if df["user"].duplicated().any():
        raise CorruptFileError(f"{path} lists some user ids twice")
    if not df["gender"].isin(["M", "F"]).all():
        raise CorruptFileError(f"{path}: gender must be M or F")
    df = df.set_index("user").sort_index()
    if age_bands:
        df["age_band"] = age_band(df["age"])
    return df


def load_item_titles(name: str = "ml-100k", *, data_home=None) -> dict:
    """Raw item id → title from a MovieLens catalog (public metadata), e.g. for
    :meth:`~dprec.models.base.Recommender.explain` ``item_names=``.

    Read from the same data directory as :func:`~dprec.datasets.load_dataset`, with the loader's own catalog
    parser (so ids have the type :func:`~dprec.datasets.load_dataset` gives them: integers for MovieLens).

    Raises
    ------
    FileNotFoundError
        When the catalog file is not under the data directory.
    """
    from .loaders import _read_items

    spec = get_spec(name)
    folder = dataset_path(name, data_home)
    if folder is None or not (folder / spec.items_file).is_file():
        home = get_data_home(data_home)
        raise FileNotFoundError(
            f"{spec.items_file} of {name} not found under {home}: unpack {spec.url} so that "
            f"{home / name}/{spec.items_file} exists (set $DPREC_DATA or pass data_home)"
        )
    items = _read_items(spec, folder)
    return {k: str(v) for k, v in items["title"].items()}
