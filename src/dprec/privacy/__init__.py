"""dprec's privacy layer: units and budgets, accounting and calibration, noise, contribution
bounding, the persistent ledger and privacy reports. See ``docs/privacy-model.md``."""

from .accounting import (
    Plan,
    Step,
    StepPlan,
    basic_composition,
    dpsgd_epsilon,
    dpsgd_noise_multiplier,
    epsilon_to_rho,
    gaussian_rho,
    plan,
    rho_to_epsilon,
    rho_to_epsilon_upper_bound,
    sigma_for_rho,
)
from .bounding import (
    ItemSelection,
    clip_rows_l2,
    clip_values,
    dp_item_selection,
    effective_k,
    sample_per_user,
    selection_threshold,
)
from .ledger import Ledger, Remaining, Spent
from .noise import NoiseSource, NoiseStreams, SecureNoiseError, gaussian_noise, project_psd, secure_gaussian, symmetric_gaussian_noise
from .units import PRIVACY_UNITS, Budget, PrivacyWarning, check_delta, check_epsilon, check_privacy_unit

__all__ = [
    "PRIVACY_UNITS", "Budget", "PrivacyWarning", "check_delta", "check_epsilon", "check_privacy_unit",
    "gaussian_rho", "sigma_for_rho", "rho_to_epsilon", "rho_to_epsilon_upper_bound", "epsilon_to_rho",
    "Step", "StepPlan", "Plan", "plan", "dpsgd_epsilon", "dpsgd_noise_multiplier", "basic_composition",
    "gaussian_noise", "symmetric_gaussian_noise", "project_psd", "secure_gaussian", "NoiseSource", "NoiseStreams", "SecureNoiseError",
    "sample_per_user", "clip_values", "clip_rows_l2", "effective_k",
   
    "ItemSelection", "selection_threshold", "dp_item_selection",
    "Ledger", "Spent", "Remaining",
]
