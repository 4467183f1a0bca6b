"""Model names and classes for the CLI and the bench, read from :mod:`dprec.models.registry`.

Importing this module imports :mod:`dprec.models` (the library's models) and :mod:`dprec.bench.adapters` (the
bench's ``implicit-als``), so every registered model is known.
"""

from __future__ import annotations

from .. import models as _library_models  # noqa: F401  (registers the library's models)
from ..errors import ConfigError, did_you_mean
from ..models import registry as _registry
from . import adapters as _adapters  # noqa: F401  (registers implicit-als)

__all__ = ["get_model", "model_names", "is_private"]

# TODO(lead): remove after models10 merge — until the library's models carry @register_model("name"), they are
# registered by class name only (dprec.models.base.register_model); these are their command-line names.
_LEGACY_NAMES = {"als": "ALS", "popularity": "Popularity", "dp-baseline": "DPGlobalEffects",
                 "dp-popularity": "DPPopularity", "dpals": "DPALS"}


def _legacy(name: str):  # TODO(lead): remove after models10 merge
    if name in _registry.MODELS or name not in _LEGACY_NAMES:
        return None
    from ..models import base

    return getattr(base, "_REGISTRY", {}).get(_LEGACY_NAMES[name])


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(set(_registry.model_names()) | {n for n in _LEGACY_NAMES if _legacy(n) is not None})


def get_model(name: str) -> type:
    """The model class registered as ``name``; :class:`~dprec.errors.ConfigError` (with a did-you-mean hint
    and the known names) otherwise."""
    if isinstance(name, str) and name in _registry.MODELS:
        return _registry.get_model(name)
    cls = _legacy(name) if isinstance(name, str) else None
    if cls is None:
        names = model_names()
        raise ConfigError(f"unknown model {name!r}; {did_you_mean(name, names)}available models: {', '.join(names)}")
    return cls


def is_private(cls: type) -> bool:
    """Whether the model class releases a differentially private model (its ``is_private`` capability)."""
    return bool(getattr(cls, "is_private", False))
