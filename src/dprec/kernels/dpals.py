"""Deprecated import path (shim, to be removed after the merge): the kernels moved to
:mod:`dprec.kernels.psd` (eigensolver and noisy PSD solve) and :mod:`dprec.kernels.als` (residuals)."""

from .als import clipped_weighted_residuals
from .psd import _noisy_psd_solve, noisy_psd_solve, psd_project, small_eigh

__all__ = ["noisy_psd_solve", "clipped_weighted_residuals", "psd_project", "small_eigh", "_noisy_psd_solve"]
