"""User blocks: the one hook through which the engines' per-user statistics run on a distributed backend.

Every statistic dprec releases is a sum over users of a function of one user's row (and of already released,
public values), so it can be computed per block of whole users and summed: ``Σ_b f(X_b) = f(X)`` up to float64
rounding. A local fit passes a CSR matrix and :func:`user_sum` is ``f(X)``; a distributed backend
(:mod:`dprec.distributed`) passes a handle whose ``map_sum`` evaluates ``f`` on every block where the block
lives and sums the results there. The model code is the same for both; only this hook differs.
"""

from __future__ import annotations

__all__ = ["is_blocked", "user_sum"]


def is_blocked(X) -> bool:
    """True for a distributed backend's user-block handle (a local fit passes a scipy CSR matrix)."""
    return bool(getattr(X, "is_user_blocks", False))


def user_sum(fn, X, /, *args, **kwargs):
    """``Σ_b fn(X_b, *args, **kwargs)`` over the user blocks of ``X``; ``fn(X, ...)`` for a local matrix.

    ``fn`` must be additive over disjoint sets of users (every release's ``statistic`` is).
    """
    if is_blocked(X):
        return X.map_sum(fn, *args, **kwargs)
    return fn(X, *args, **kwargs)
