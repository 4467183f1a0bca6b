"""Exception types shared across dprec."""


class DPRecError(Exception):
    """Base class of dprec's own errors."""


class UnknownIdError(KeyError, ValueError):
    """A raw user or item id that is not in the vocabulary."""

    def __str__(self):  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class CorruptFileError(DPRecError, ValueError):
    """A model, ledger or results file that cannot be trusted (truncated, tampered, wrong format)."""


class BudgetExceededError(DPRecError):
    """A privacy charge refused because it would exceed the ledger's total budget. Nothing was charged."""


class LedgerError(DPRecError):
    """The privacy ledger cannot be used (unreadable, locked, mismatched dataset). Training must not proceed."""
