"""Numba kernels (plain functions over arrays; no globals, no RNG inside)."""

from .als import (
    balanced_bounds,
    cg_rows,
    explicit_sq_error,
    gram,
    implicit_loss,
    item_stats,
    reduce_stats,
    row_gram_solve,
    solve_batched,
    solve_rows,
    topk_dense,
)

__all__ = [
    "balanced_bounds",
    "cg_rows",
    "explicit_sq_error",
    "gram",
    "implicit_loss",
    "item_stats",
    "reduce_stats",
    "row_gram_solve",
    "solve_batched",
    "solve_rows",
    "topk_dense",
]
