"""Numba kernels (plain functions over arrays; no globals, no RNG inside).

:mod:`.als` — ALS stages (item statistics, batched and per-row solves, CG, losses, residuals);
:mod:`.cg` — matrix-free warm-started CG for per-row ridge systems (explicit ALS's ``solver="cg"``);
:mod:`.psd` — the small symmetric eigensolver and the noisy PSD solve of DP-ALS's item step.
"""

from .als import (
    balanced_bounds,
    cg_rows,
    clipped_weighted_residuals,
    explicit_sq_error,
    gram,
    implicit_loss,
    item_stats,
    reduce_stats,
    row_gram_solve,
    solve_batched,
    solve_rows,
)
from .cg import cg_ridge_rows, ridge_residual_norms
from .psd import noisy_psd_solve, psd_project, small_eigh

__all__ = [
    "balanced_bounds",
    "cg_ridge_rows",
    "cg_rows",
    "clipped_weighted_residuals",
    "explicit_sq_error",
    "gram",
    "implicit_loss",
    "item_stats",
    "reduce_stats",
    "ridge_residual_norms",
    "row_gram_solve",
    "solve_batched",
    "solve_rows",
    "noisy_psd_solve",
    "psd_project",
    "small_eigh",
]
