"""dprec: differentially private recommendation on commodity CPUs.

The public API: the models (``dprec.ALS``, ``dprec.DPALS``, ``dprec.DPGlobalEffects``, ``dprec.DPItemItem``,
``dprec.DPImplicitALS``, ``dprec.DPRanker``, ``dprec.DPPopularity``, ``dprec.Popularity``; ``dprec.load_model``
reads any saved one), the data container and loaders (``Interactions``, ``load_dataset``, the ``split``
module), ``evaluate``, the privacy ledger and the error classes. Everything else lives in the subpackages
(``dprec.privacy``, ``dprec.datasets``, ``dprec.models``).
"""

from . import datasets, privacy, split
from ._version import __version__
from .data import Interactions
from .datasets import load_dataset
from .errors import (
    BudgetExceededError,
    ConfigError,
    CorruptFileError,
    DataError,
    DataWarning,
    DPRecError,
    IgnoredParameterWarning,
    LedgerError,
    NotFittedError,
    PathError,
    RankingWarning,
    SelectionWarning,
    UnknownIdError,
)
from .metrics import evaluate
from .models import (
    ALS,
    DPALS,
    DPGlobalEffects,
    DPImplicitALS,
    DPItemItem,
    DPPopularity,
    DPRanker,
    Popularity,
    Recommender,
    load_model,
)
from .privacy import Ledger, PrivacyWarning

__all__ = [
    "__version__",
    # models
    "ALS",
    "DPALS",
    "DPGlobalEffects",
    "DPImplicitALS",
    "DPItemItem",
    "DPRanker",
    "DPPopularity",
    "Popularity",
    "Recommender",
    "load_model",
    # data, splits, evaluation
    "Interactions",
    "load_dataset",
    "split",
    "evaluate",
    # privacy
    "Ledger",
    "PrivacyWarning",
    # errors
    "DPRecError",
    "ConfigError",
    "NotFittedError",
    "UnknownIdError",
    "CorruptFileError",
    "BudgetExceededError",
    "LedgerError",
    "RankingWarning",
    "SelectionWarning",
    "PathError",
    "DataError",
    "DataWarning",
    "IgnoredParameterWarning",
    # subpackages
    "datasets",
    "privacy",
]

from .models import DPSGD  # noqa: E402

__all__ += ["DPSGD"]
