"""dprec: differentially private recommendation on commodity CPUs."""

from ._version import __version__
from .data import Interactions
from .models import Recommender, load_model

__all__ = ["__version__", "Interactions", "Recommender", "load_model"]
from .metrics import evaluate
__all__.append("evaluate")
