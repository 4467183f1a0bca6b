"""Registry of known datasets: where they come from, how to verify them, their licence and public facts.

Checksums
---------
``archive_sha256`` values are the SHA-256 of the GroupLens zip archives as recorded in TensorFlow
Datasets' ``url_checksums/movielens.txt`` (ml-100k, ml-1m, ml-20m, ml-25m, ml-latest-small). No verified
SHA-256 was found for ml-10m, so only its MD5 (published alongside the archive by GroupLens and repeated
in several loaders) is recorded; MD5 detects corruption, not tampering. ``ratings_sha256`` is the
SHA-256 of the *extracted* ratings file where we could hash a known-good copy (ml-100k ``u.data``); the
loader checks it on every load, so a locally unpacked folder is verified too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from types import MappingProxyType

__all__ = ["DatasetSpec", "DATASETS", "MOVIELENS_LICENCE", "MOVIELENS_CITATION", "get_spec"]

MOVIELENS_LICENCE = (
    "GroupLens MovieLens licence: research use only; acknowledge use in publications (cite Harper & "
    "Konstan 2015); do not redistribute without permission; no commercial or revenue-bearing use "
    "without permission; do not state or imply endorsement by the University of Minnesota or GroupLens."
)
MOVIELENS_CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
    "ACM Transactions on Interactive Intelligent Systems (TiiS) 5, 4, Article 19. "
    "https://doi.org/10.1145/2827872"
)

_BASE_URL = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the registry.

    Attributes
    ----------
    name : str
        Registry key and the folder name under the data directory (``<data_home>/<name>/``).
    url : str
        Download URL of the zip archive.
    archive_sha256, archive_md5 : str or None
        Checksums of the zip archive (verified after download; at least one is known for every entry).
    archive_folder : str
        Top-level folder inside the archive (renamed to ``name`` on extraction).
    ratings_file : str
        Ratings file inside the folder.
    ratings_format : str
        ``"tab"`` (user, item, rating, timestamp; no header), ``"colons"`` (``::``-separated, no header)
        or ``"csv"`` (header ``userId,movieId,rating,timestamp``).
    items_file, items_format : str
        The public movie catalog (``"u.item"``, ``"colons"`` or ``"csv"``).
    users_file : str or None
        User demographics, when the dataset has them.
    encoding : str
        Text encoding of the item/user files.
    rating_bounds : (float, float)
        Public bounds of the rating scale.
    n_ratings : int
        Number of ratings in the ratings file (checked on load to catch truncated files).
    ratings_sha256 : str or None
        SHA-256 of the extracted ratings file, checked on load when known.
    has_side_tables : bool
        Whether :func:`load_dataset` fills ``Interactions.side`` with ``"users"`` and/or ``"items"``.
    licence, citation, description : str
    """

    name: str
    url: str
    archive_sha256: str | None
    archive_md5: str | None
    archive_folder: str
    ratings_file: str
    ratings_format: str
    items_file: str
    items_format: str
    users_file: str | None
    encoding: str
    rating_bounds: tuple[float, float]
    n_ratings: int
    ratings_sha256: str | None = None
    has_side_tables: bool = True
    description: str = ""
    licence: str = MOVIELENS_LICENCE
    citation: str = MOVIELENS_CITATION
    side_tables: tuple[str, ...] = field(default=("items",))

    def as_row(self) -> dict:
        """A plain dict of this spec (for tables and the ``dprec datasets list`` command)."""
        return asdict(self)


_SPECS = [
    DatasetSpec(
        name="ml-100k",
        url=_BASE_URL + "ml-100k.zip",
        archive_sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        archive_md5="0e33842e24a9c977be4e0107933c0723",
        archive_folder="ml-100k",
        ratings_file="u.data",
        ratings_format="tab",
        items_file="u.item",
        items_format="u.item",
        users_file="u.user",
        encoding="latin-1",
        rating_bounds=(1.0, 5.0),
        n_ratings=100_000,
        ratings_sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        side_tables=("users", "items"),
        description="MovieLens 100K (1998): 100,000 ratings 1-5 from 943 users on 1,682 movies, "
        "with user demographics.",
    ),
    DatasetSpec(
        name="ml-1m",
        url=_BASE_URL + "ml-1m.zip",
        archive_sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        archive_md5="c4d9eecfca2ab87c1945afe126590906",
        archive_folder="ml-1m",
        ratings_file="ratings.dat",
        ratings_format="colons",
        items_file="movies.dat",
        items_format="colons",
        users_file="users.dat",
        encoding="latin-1",
        rating_bounds=(1.0, 5.0),
        n_ratings=1_000_209,
        side_tables=("users", "items"),
        description="MovieLens 1M (2003): 1,000,209 ratings 1-5 from 6,040 users on ~3,900 movies, "
        "with user demographics.",
    ),
    DatasetSpec(
        name="ml-10m",
        url=_BASE_URL + "ml-10m.zip",
        archive_sha256=None,
        archive_md5="ce571fd55effeba0271552578f2648bd",
        archive_folder="ml-10M100K",
        ratings_file="ratings.dat",
        ratings_format="colons",
        items_file="movies.dat",
        items_format="colons",
        users_file=None,
        encoding="utf-8",
        rating_bounds=(0.5, 5.0),
        n_ratings=10_000_054,
        description="MovieLens 10M (2009): 10,000,054 half-star ratings 0.5-5 from 69,878 users on "
        "~10,700 movies (archive folder ml-10M100K).",
    ),
    DatasetSpec(
        name="ml-20m",
        url=_BASE_URL + "ml-20m.zip",
        archive_sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        archive_md5="cd245b17a1ae2cc31bb14903e1204af3",
        archive_folder="ml-20m",
        ratings_file="ratings.csv",
        ratings_format="csv",
        items_file="movies.csv",
        items_format="csv",
        users_file=None,
        encoding="utf-8",
        rating_bounds=(0.5, 5.0),
        n_ratings=20_000_263,
        description="MovieLens 20M (2015): 20,000,263 half-star ratings 0.5-5 from 138,493 users on 27,278 movies.",
    ),
    DatasetSpec(
        name="ml-25m",
        url=_BASE_URL + "ml-25m.zip",
        archive_sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        archive_md5="6b51fb2759a8657d3bfcbfc42b592ada",
        archive_folder="ml-25m",
        ratings_file="ratings.csv",
        ratings_format="csv",
        items_file="movies.csv",
        items_format="csv",
        users_file=None,
        encoding="utf-8",
        rating_bounds=(0.5, 5.0),
        n_ratings=25_000_095,
        description="MovieLens 25M (2019): 25,000,095 half-star ratings 0.5-5 from 162,541 users on 62,423 movies.",
    ),
    DatasetSpec(
        name="ml-latest-small",
        url=_BASE_URL + "ml-latest-small.zip",
        archive_sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        archive_md5=None,
        archive_folder="ml-latest-small",
        ratings_file="ratings.csv",
        ratings_format="csv",
        items_file="movies.csv",
        items_format="csv",
        users_file=None,
        encoding="utf-8",
        rating_bounds=(0.5, 5.0),
        n_ratings=100_836,
        description="MovieLens latest-small (2018 snapshot): 100,836 half-star ratings 0.5-5 from 610 "
        "users on 9,742 movies. GroupLens may refresh 'latest' datasets; a refreshed archive fails the "
        "checksum and must be re-registered.",
    ),
]

#: Read-only mapping ``name -> DatasetSpec`` of every registered dataset.
DATASETS = MappingProxyType({s.name: s for s in _SPECS})


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; raises ``ValueError`` listing the known names otherwise."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)} "
            "(or use dprec.datasets.synthetic(...) for generated data)"
        ) from None
