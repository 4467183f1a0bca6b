"""dprec's exceptions: one hierarchy under :class:`DPRecError`.

The command line maps exactly these to exit codes (``dprec.cli``); any other exception is a bug and shows its
traceback. Errors about bad values also subclass :class:`ValueError` (and unknown ids :class:`KeyError`), so
code written against the built-in types keeps working.
"""

from __future__ import annotations

import difflib

__all__ = [
    "DPRecError",
    "ConfigError",
    "NotFittedError",
    "UnknownIdError",
    "CorruptFileError",
    "BudgetExceededError",
    "LedgerError",
    "PathError",
    "DataError",
    "did_you_mean",
    "RankingWarning",
    "DataWarning",
    "IgnoredParameterWarning",
    "SelectionWarning",
]


class DPRecError(Exception):
    """Base class of dprec's own errors."""


class ConfigError(DPRecError, ValueError):
    """A configuration (model hyperparameters, a benchmark TOML) that cannot run; the message names the key
    (as a path, e.g. ``models[2].params.factors``) and the fix."""


class NotFittedError(DPRecError, RuntimeError):
    """A model method that needs a fitted model was called before ``fit`` (or ``load``)."""


class UnknownIdError(DPRecError, KeyError, ValueError):
    """A raw user or item id that is not in the vocabulary."""

    def __str__(self):  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class CorruptFileError(DPRecError, ValueError):
    """A model, ledger or results file that cannot be trusted (truncated, tampered, wrong format)."""


class DataError(ConfigError):
    """Data that cannot be used as given: a rating model on implicit data, a raw matrix whose user axis a DP fit
    needs declared, ids that mix strings and numbers. The message names the argument and the fix. A
    :class:`ConfigError` (the combination of model and data cannot run), so also a ``ValueError``."""


class PathError(DPRecError, FileNotFoundError):
    """A file path that cannot be used as given: a missing file or folder, or a directory where a file is
    expected. The message names the path as the caller passed it. A :class:`FileNotFoundError` (there is no
    usable file at that path), so code catching the built-in keeps working."""


class BudgetExceededError(DPRecError):
    """A privacy charge refused because it would exceed the ledger's total budget. Nothing was charged."""


class LedgerError(DPRecError):
    """The privacy ledger cannot be used (unreadable, locked, mismatched dataset). Training must not proceed."""


class RankingWarning(UserWarning):
    """``recommend()`` on a model that the committed top-N benchmarks show ranking worse than DP popularity
    (the explicit-rating DP models); the message names the ranking models to use instead."""


class DataWarning(UserWarning):
    """Legal input that is almost surely a mistake and would give a meaningless result without an error: a rating
    model on data whose values are all equal (implicit data), every user with one rating, a matrix that looks
    transposed, or an RMSE worse than predicting the training mean. The message says what to do instead."""


class SelectionWarning(DataWarning):
    """DP item selection (no public catalog) released no or very few items, so the model can recommend only
    those: declare the item catalog public. A :class:`DataWarning` (a legal fit whose result is nearly empty)."""


class IgnoredParameterWarning(UserWarning):
    """A parameter passed explicitly that the model ignores (e.g. ``alpha`` with ``ALS(feedback="explicit")``,
    ``num_threads`` on a model that runs no threaded kernel)."""


def did_you_mean(word: str, choices) -> str:
    """``"did you mean 'x'? "`` for the closest of ``choices`` (or ``""``): the one spelling-hint helper."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""
