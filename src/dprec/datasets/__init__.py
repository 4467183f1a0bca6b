"""Datasets: a registry of public benchmarks (MovieLens), their loaders, and a synthetic generator.

MovieLens files are never shipped with dprec (their licence forbids redistribution): :func:`load_dataset`
reads them from ``$DPREC_DATA/<name>/`` (or downloads them when ``download=True``). :func:`synthetic`
needs no download.
"""

from .loaders import dataset_checksum, get_data_home, list_datasets, load_dataset
from .registry import DATASETS, DatasetSpec
from .synthetic import synthetic

__all__ = [
    "load_dataset",
    "list_datasets",
    "synthetic",
    "dataset_checksum",
    "DATASETS",
    "DatasetSpec",
    "get_data_home",
]
