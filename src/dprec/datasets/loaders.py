"""Load registered datasets from a local data directory, downloading only when asked.

Data directory, in order: the ``data_home`` argument, the ``DPREC_DATA`` environment variable, the
per-user cache directory ``platformdirs.user_cache_dir("dprec")`` (on Linux ``$XDG_CACHE_HOME/dprec``, else
``~/.cache/dprec``). A dataset ``name`` lives unpacked in
``<data_home>/<name>/`` (the archive's own folder name, e.g. ``ml-10M100K``, is accepted too).

MovieLens licences forbid redistribution: dprec never ships the files, it reads (or, with
``download=True``, fetches from GroupLens) the user's own copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import platformdirs

from .._provenance import sha256_file
from ..data import Interactions
from ..errors import CorruptFileError
from .registry import DATASETS, DatasetSpec, get_spec

__all__ = ["load_dataset", "list_datasets", "dataset_checksum", "get_data_home", "dataset_path"]

_U_ITEM_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


# --------------------------------------------------------------------------- locations
def get_data_home(data_home=None) -> Path:
    """The data directory: ``data_home``, else ``$DPREC_DATA``, else the per-user cache directory
    ``platformdirs.user_cache_dir("dprec")`` (``$XDG_CACHE_HOME/dprec`` or ``~/.cache/dprec`` on Linux).
    Not created here."""
    if data_home is not None:
        return Path(data_home).expanduser()
    env = os.environ.get("DPREC_DATA")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("dprec", appauthor=False))


def _candidates(spec: DatasetSpec, home: Path) -> list[Path]:
    out = [home / spec.name, home / spec.archive_folder, home / spec.name / spec.archive_folder]
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def dataset_path(name: str, data_home=None) -> Path | None:
    """The unpacked folder of dataset ``name`` if present (contains its ratings file), else ``None``."""
    spec = get_spec(name)
    for folder in _candidates(spec, get_data_home(data_home)):
        if (folder / spec.ratings_file).is_file():
            return folder
    return None


def _missing_message(spec: DatasetSpec, home: Path, reason: str | None = None) -> str:
    lines = [
        f"dataset {spec.name!r} not found: expected {home / spec.name / spec.ratings_file}.",
    ]
    if reason:
        lines.append(reason)
    lines += [
        "To get it, either",
        f"  * let dprec download it (needs network): load_dataset({spec.name!r}, download=True)"
        + (f" with data_home={str(home)!r}" if "DPREC_DATA" not in os.environ else ""),
        f"  * or download {spec.url} yourself and unpack it so that "
        f"{home / spec.name}/ holds {spec.ratings_file} (the archive's folder {spec.archive_folder}/ "
        f"may be renamed to {spec.name}/).",
        "The data directory is the data_home argument, else $DPREC_DATA, else the user cache directory "
        f"(currently {home}).",
        f"Licence: {spec.licence}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- checksums
def dataset_checksum(name: str, data_home=None) -> str:
    """SHA-256 (hex) of the dataset's ratings file, for result files and ledgers.

    Raises
    ------
    FileNotFoundError
        When the dataset is not present under the data directory.
    """
    spec = get_spec(name)
    folder = dataset_path(name, data_home)
    if folder is None:
        raise FileNotFoundError(_missing_message(spec, get_data_home(data_home)))
    return sha256_file(folder / spec.ratings_file)


def _verify_ratings_file(spec: DatasetSpec, path: Path) -> None:
    if spec.ratings_sha256 is None:
        return
    got = sha256_file(path)
    if got != spec.ratings_sha256:
        raise CorruptFileError(
            f"checksum mismatch for {path}: sha256 {got} but the registry expects {spec.ratings_sha256} "
            f"for {spec.name}. The file is corrupted or not the original GroupLens release; delete "
            f"{path.parent} and re-download with load_dataset({spec.name!r}, download=True)."
        )


# --------------------------------------------------------------------------- download
def _known_hash(spec: DatasetSpec) -> str:
    """The archive checksum in pooch's ``"alg:hex"`` form (SHA-256 when known, else MD5, as for ml-10m)."""
    if spec.archive_sha256 is not None:
        return f"sha256:{spec.archive_sha256}"
    if spec.archive_md5 is not None:
        return f"md5:{spec.archive_md5}"
    raise CorruptFileError(f"the registry has no checksum for {spec.name}; refusing an unverifiable download")


def _download(spec: DatasetSpec, home: Path, *, timeout: float = 60.0, downloader=None) -> Path:
    """Fetch, verify and unpack ``spec`` into ``home/spec.name`` (atomic rename). Returns the folder.

    The archive is fetched by :func:`pooch.retrieve` into a temporary folder under ``home`` (pooch streams it to
    a temporary file and moves it into place only once its checksum matches), unpacked next to it, and the
    dataset folder is renamed into place; the archive and the temporaries are removed whatever happens.
    ``downloader`` is a pooch downloader (``callable(url, output_file, pooch)``), by default
    ``pooch.HTTPDownloader`` with ``timeout``.
    """
    import pooch
    import requests

    known_hash = _known_hash(spec)
    home.mkdir(parents=True, exist_ok=True)
    final = home / spec.name
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=home))
    try:
        if downloader is None:
            downloader = pooch.HTTPDownloader(progressbar=False, timeout=timeout)
        try:
            archive = Path(
                pooch.retrieve(
                    spec.url,
                    known_hash=known_hash,
                    fname=f"{spec.name}.zip",
                    path=tmp_dir / "download",
                    downloader=downloader,
                )
            )
        except ValueError as exc:  # pooch's checksum mismatch
            alg = known_hash.split(":", 1)[0]
            raise CorruptFileError(
                f"downloaded {spec.url} does not match its {alg} checksum {known_hash.split(':', 1)[1]} ({exc}); "
                "nothing was installed (the download was corrupted or the archive changed upstream)"
            ) from None
        except (requests.exceptions.RequestException, OSError, TimeoutError) as exc:
            raise FileNotFoundError(
                _missing_message(spec, home, reason=f"Download from {spec.url} failed: {exc}.")
            ) from exc
        unpacked = tmp_dir / "unpacked"
        unpacked.mkdir()
        with zipfile.ZipFile(archive) as zf:
            root = unpacked.resolve()
            for member in zf.namelist():
                target = (unpacked / member).resolve()
                if root != target and root not in target.parents:
                    raise CorruptFileError(f"archive member {member!r} escapes the extraction folder")
            zf.extractall(unpacked)
        extracted = unpacked / spec.archive_folder
        if not (extracted / spec.ratings_file).is_file():
            raise CorruptFileError(f"archive {spec.url} does not contain {spec.archive_folder}/{spec.ratings_file}")
        if final.exists():
            raise FileExistsError(f"{final} appeared while downloading; remove it or load it directly")
        os.replace(extracted, final)
        return final
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


# --------------------------------------------------------------------------- parsing
def _read_ratings(spec: DatasetSpec, path: Path) -> pd.DataFrame:
    cols = ["user", "item", "rating", "timestamp"]
    dtypes = {"user": np.int64, "item": np.int64, "rating": np.float64, "timestamp": np.int64}
    try:
        if spec.ratings_format == "tab":
            df = pd.read_csv(path, sep="\t", header=None, names=cols, dtype=dtypes)
        elif spec.ratings_format == "colons":
            # "u::i::r::t" read with the fast C parser as ":"-separated with empty columns in between
            df = pd.read_csv(path, sep=":", header=None, usecols=[0, 2, 4, 6], names=None)
            df.columns = cols
            df = df.astype(dtypes)
        elif spec.ratings_format == "csv":
            df = pd.read_csv(
                path,
                header=0,
                dtype={"userId": np.int64, "movieId": np.int64, "rating": np.float64, "timestamp": np.int64},
            )
            df = df.rename(columns={"userId": "user", "movieId": "item"})[cols]
        else:  # pragma: no cover - registry invariant
            raise ValueError(f"unknown ratings format {spec.ratings_format!r}")
    except (ValueError, KeyError, pd.errors.ParserError) as exc:
        raise CorruptFileError(f"cannot parse {path} as {spec.name} ratings ({spec.ratings_format}): {exc}") from None
    if len(df) != spec.n_ratings:
        raise CorruptFileError(
            f"{path} has {len(df)} ratings but {spec.name} has {spec.n_ratings}; the file is truncated or "
            f"not the original release. Delete {path.parent} and download it again."
        )
    return df


def _read_colon_table(path: Path, n_fields: int, encoding: str) -> list[list[str]]:
    rows = []
    with open(path, encoding=encoding) as fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if line:
                parts = line.split("::")
                if len(parts) != n_fields:
                    raise CorruptFileError(f"{path}: expected {n_fields} '::'-separated fields in {line!r}")
                rows.append(parts)
    return rows


def _read_items(spec: DatasetSpec, folder: Path) -> pd.DataFrame:
    """The public movie catalog indexed by raw item id, with at least ``title`` and ``genres``."""
    path = folder / spec.items_file
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} (the public movie catalog of {spec.name}) is missing; unpack the complete archive "
            f"{spec.url} into {folder}/"
        )
    if spec.items_format == "u.item":
        names = ["item", "title", "release_date", "video_release_date", "imdb_url", *_U_ITEM_GENRES]
        df = pd.read_csv(path, sep="|", header=None, names=names, encoding=spec.encoding)
        flags = df[list(_U_ITEM_GENRES)].to_numpy(dtype=bool)
        genre_names = np.array(_U_ITEM_GENRES, dtype=object)
        df["genres"] = ["|".join(genre_names[f]) for f in flags]
        items = df[["item", "title", "genres", "release_date", "imdb_url"]]
    elif spec.items_format == "colons":
        rows = _read_colon_table(path, 3, spec.encoding)
        items = pd.DataFrame(rows, columns=["item", "title", "genres"])
        items["item"] = items["item"].astype(np.int64)
    else:
        items = pd.read_csv(path, encoding=spec.encoding).rename(columns={"movieId": "item"})
        items = items[["item", "title", "genres"]]
    return items.set_index("item")


def _read_users(spec: DatasetSpec, folder: Path) -> pd.DataFrame | None:
    if spec.users_file is None:
        return None
    path = folder / spec.users_file
    if not path.is_file():
        return None
    if spec.name == "ml-100k":
        users = pd.read_csv(
            path,
            sep="|",
            header=None,
            names=["user", "age", "gender", "occupation", "zip"],
            encoding=spec.encoding,
            dtype={"zip": str},
        )
    else:
        rows = _read_colon_table(path, 5, spec.encoding)
        users = pd.DataFrame(rows, columns=["user", "gender", "age", "occupation", "zip"])
        users = users.astype({"user": np.int64, "age": np.int64, "occupation": np.int64})
        users = users[["user", "age", "gender", "occupation", "zip"]]
    return users.set_index("user")


# --------------------------------------------------------------------------- public API
def load_dataset(name: str, *, data_home=None, download: bool = False, opted_out=None) -> Interactions:
    """Load a registered dataset as :class:`~dprec.data.Interactions`.

    Parameters
    ----------
    name : str
        A key of :data:`dprec.datasets.DATASETS` (``"ml-100k"``, ``"ml-1m"``, ``"ml-10m"``, ``"ml-20m"``,
        ``"ml-25m"``, ``"ml-latest-small"``).
    data_home : path-like, optional
        Data directory; default ``$DPREC_DATA``, else ``platformdirs.user_cache_dir("dprec")``
        (``~/.cache/dprec`` on Linux).
    download : bool, default False
        Fetch the archive from GroupLens when the dataset is not present (through :func:`pooch.retrieve`,
        which verifies the archive checksum; extracts to a temporary folder, then renames it into place
        atomically). Never done implicitly.
    opted_out : sequence of raw user ids, optional
        Users who opted out (or did not consent): their ratings, their place in the user vocabulary and their
        row of ``side["users"]`` are dropped as the data is read, so they never reach training (see
        :meth:`~dprec.data.Interactions.from_pandas`). Unknown ids are ignored.

    Returns
    -------
    Interactions
        Raw integer user and movie ids as in the files; the item vocabulary is the dataset's public movie
        catalog (``public_items=True``, so it includes movies nobody rated); ``rating_bounds`` from the
        registry; ``timestamps`` (Unix seconds); ``side["items"]`` (title, genres, ...) and, for ml-100k
        and ml-1m, ``side["users"]`` (age, gender, occupation, zip), as DataFrames indexed by raw id;
        ``side["dataset"]`` holds the registry row.

    Raises
    ------
    FileNotFoundError
        The dataset is absent and ``download`` is False, or the download failed (e.g. offline). The
        message says where to put the unpacked folder and how to download it.
    dprec.errors.CorruptFileError
        A checksum or row-count mismatch.
    """
    spec = get_spec(name)
    home = get_data_home(data_home)
    folder = dataset_path(name, home)
    if folder is None:
        if not download:
            raise FileNotFoundError(_missing_message(spec, home))
        folder = _download(spec, home)
    ratings_path = folder / spec.ratings_file
    _verify_ratings_file(spec, ratings_path)
    ratings = _read_ratings(spec, ratings_path)
    items = _read_items(spec, folder)
    users = _read_users(spec, folder)
    if not items.index.is_unique:
        raise CorruptFileError(f"{folder / spec.items_file} lists some movie ids twice")
    user_vocab = None
    if users is not None:
        user_vocab = users.index.to_numpy()
        if not np.isin(ratings["user"].unique(), user_vocab).all():
            user_vocab = None  # fall back to the users seen in the ratings
        else:
            user_vocab = np.sort(user_vocab)
    data = Interactions.from_pandas(
        ratings,
        user_col="user",
        item_col="item",
        rating_col="rating",
        timestamp_col="timestamp",
        rating_bounds=spec.rating_bounds,
        item_catalog=np.sort(items.index.to_numpy()),
        users=user_vocab,
        name=spec.name,
        opted_out=opted_out,
    )
    data.side["items"] = items.sort_index()
    if users is not None:
        if opted_out is not None:  # the opted-out users' attributes go too
            from ..data import _coerce_user_ids

            gone = _coerce_user_ids(opted_out, users.index.to_numpy(), what="opted_out")
            users = users.loc[~users.index.isin(gone)]
        data.side["users"] = users.sort_index()
    data.side["dataset"] = {
        "name": spec.name,
        "url": spec.url,
        "rating_bounds": spec.rating_bounds,
        "licence": spec.licence,
        "citation": spec.citation,
    }
    return data


def list_datasets(data_home=None) -> list[dict]:
    """The registry as a list of rows (dicts), each with ``available`` and ``path`` for this machine."""
    home = get_data_home(data_home)
    rows = []
    for name, spec in DATASETS.items():
        row = spec.as_row()
        folder = dataset_path(name, home)
        row["available"] = folder is not None
        row["path"] = str(folder if folder is not None else home / name)
        rows.append(row)
    return rows
