"""What every ``dprec`` command shares: exit codes, error and warning messages in CLI terms, output helpers.

Exit codes (:data:`EXIT_CODES`; each error is one line on stderr, no traceback):

- 0 success;
- 2 usage error or bad input: click's usage errors, :class:`~dprec.errors.ConfigError` (a bad flag, model
  hyperparameter, model config, ratings file or bench config) and :class:`~dprec.errors.UnknownIdError`;
- 3 privacy budget refused (:class:`~dprec.errors.BudgetExceededError`) or unusable ledger
  (:class:`~dprec.errors.LedgerError`); nothing was trained or charged;
- 4 a file that cannot be trusted (:class:`~dprec.errors.CorruptFileError`: truncated, tampered, wrong format).

Any other exception is a bug and propagates with its traceback. Warnings that dprec emits during a command
(:class:`~dprec.privacy.units.PrivacyWarning`, :class:`~dprec.errors.RankingWarning`, …) are shown once each,
as one ``warning: …`` line on stderr.
"""

from __future__ import annotations

import math
import re
import sys
import warnings

import click
import numpy as np

from ..errors import BudgetExceededError, ConfigError, CorruptFileError, LedgerError, PathError, UnknownIdError

EXIT_OK, EXIT_USAGE, EXIT_BUDGET, EXIT_CORRUPT = 0, 2, 3, 4
#: dprec's errors → (exit code, message prefix); anything else propagates
EXIT_CODES = {
    BudgetExceededError: (EXIT_BUDGET, "privacy budget refused"),
    LedgerError: (EXIT_BUDGET, "privacy ledger refused (nothing was trained or charged)"),
    CorruptFileError: (EXIT_CORRUPT, "untrusted file"),
    ConfigError: (EXIT_USAGE, "error"),
    UnknownIdError: (EXIT_USAGE, "error"),
    PathError: (EXIT_USAGE, "error"),
}

#: the page linked from every ``--epsilon`` help text
CHOOSING_EPSILON = "docs/choosing-epsilon.md"


# ============================================================================ messages in CLI terms
#: library parameter name → the flag a command-line user types
PARAM_FLAGS = {
    "rng": "--seed",
    "num_threads": "--threads",
    "item_catalog": "--items",
    "public_items": "--items",
    "ledger": "--ledger",
    "epsilon": "--epsilon",
    "delta": "--delta",
    "privacy_unit": "--privacy-unit",
}


def flag_name(param: str) -> str:
    """The command-line flag of a library parameter (``max_ratings_per_user`` → ``--max-ratings-per-user``)."""
    return PARAM_FLAGS.get(param, "--" + param.replace("_", "-"))


_ASSIGN = re.compile(r"\b([a-z][a-z0-9_]*)=(?=[^\s=])")


def cli_terms(message: str) -> str:
    """Rewrite a library message for a command-line user: ``delta=1e-5`` → ``--delta 1e-5``, ``rng=None``
    → ``no --seed``, a caller-given rng → ``--seed``; one line."""
    text = " ".join(str(message).split())
    text = text.replace("pass rng=None (fresh OS entropy)", "omit --seed (fresh OS entropy)")
    text = text.replace("a caller-given rng", "--seed")
    text = text.replace("rng=None", "no --seed")
    text = text.replace("epsilon=math.inf", "--epsilon inf")

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name in PARAM_FLAGS or "_" in name or name in _KNOWN_PARAMS:
            return flag_name(name) + " "
        return m.group(0)

    return _ASSIGN.sub(sub, text)


#: hyperparameter names (filled by :mod:`.options` from the registered models' configs)
_KNOWN_PARAMS: set[str] = set()


def message(exc: BaseException) -> str:
    """An exception's message (a KeyError's without the quotes ``str`` adds); input errors in CLI terms (the
    ledger's and the file checks' messages state amounts and facts, not arguments, and are kept as they are)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    text = cli_terms(text) if isinstance(exc, (ConfigError, UnknownIdError)) else " ".join(text.split())
    for python, command in API_HINTS.items():
        text = text.replace(python, command)
    return text


#: library hints that name a Python call → the command that does it
API_HINTS = {
    "create one with Ledger.create(...)": "create one with `dprec budget init`",
    ", or Ledger.create(other_path, ...)": "",
    "Pass ledger=None to train the non-private reference deliberately": "Drop --ledger to train the non-private "
    "reference deliberately",
}


class WarningPrinter:
    """``warnings.showwarning`` for a command: each distinct warning once, as ``warning: …`` on stderr."""

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, msg, category, filename, lineno, file=None, line=None):
        text = cli_terms(str(msg))
        if category is DeprecationWarning and "dprec" not in filename:
            return  # third-party deprecations are not the user's concern
        if text in self.seen:
            return
        self.seen.append(text)
        click.echo(f"warning: {text}", err=True)


def warn(text: str, category=UserWarning) -> None:
    """Emit a CLI warning (shown by :class:`WarningPrinter` as ``warning: text``)."""
    warnings.warn(text, category, stacklevel=2)


def run_command(func):
    """Run ``func()`` with warnings shown as one-line ``warning: …`` messages; returns its result."""
    printer = WarningPrinter()
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # every run reports its own warnings (dedup is per command, above)
        warnings.filterwarnings("ignore", category=ResourceWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        warnings.showwarning = printer
        return func()


# ============================================================================ output helpers
def fmt(x, digits: int = 4) -> str:
    """A number for tables: fixed digits, ∞ for infinity, n/a for None/NaN."""
    if x is None:
        return "n/a"
    if isinstance(x, (float, np.floating)):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "∞" if x > 0 else "-∞"
        return f"{x:.{digits}f}"
    return str(x)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table, left-aligned columns, a dashed rule under the header."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def echo(text: str = "") -> None:
    """Print to stdout (a closed pipe is handled once, in :func:`dprec.cli.main`)."""
    click.echo(text)


def flush_stdout() -> None:
    sys.stdout.flush()
