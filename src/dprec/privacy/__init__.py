"""dprec's privacy layer: ε/δ checks, accounting and calibration, noise, and the persistent ledger.
See ``docs/privacy-model.md``.

Only what users call is exported here; the building blocks (contribution bounding, raw samplers, composition
helpers) live in the submodules (``dprec.privacy.bounding``, ``.noise``, ``.accounting``, ``.units``,
``.ledger``) and are imported from there.
"""

from .accounting import (
    Plan,
    Step,
    dpsgd_epsilon,
    dpsgd_noise_multiplier,
    epsilon_to_rho,
    gaussian_rho,
    plan,
    rho_to_epsilon,
    sigma_for_rho,
)
from .ledger import Ledger, Remaining, Spent
from .noise import NoiseSource, NoiseStreams, SecureNoiseError
from .units import PrivacyWarning, check_delta, check_epsilon

__all__ = [
    "Ledger",
    "Spent",
    "Remaining",
    "PrivacyWarning",
    "check_epsilon",
    "check_delta",
    "plan",
    "Step",
    "Plan",
    "rho_to_epsilon",
    "epsilon_to_rho",
    "gaussian_rho",
    "sigma_for_rho",
    "dpsgd_epsilon",
    "dpsgd_noise_multiplier",
    "NoiseStreams",
    "NoiseSource",
    "SecureNoiseError",
]
