"""dprec: differentially private recommendation on commodity CPUs."""

from ._version import __version__
from .data import Interactions
from .models import Recommender, load_model
from .metrics import evaluate
from . import datasets, split, privacy  # noqa: E402  (public subpackages: dprec.datasets.load_dataset, ...)
from .datasets import load_dataset
from .privacy import Ledger

__all__ = ["__version__", "Interactions", "Recommender", "load_model", "evaluate", "datasets", "split",
           "privacy", "load_dataset", "Ledger"]
