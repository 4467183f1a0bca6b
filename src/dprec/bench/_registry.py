"""Model names and classes for the CLI and the bench, read from :mod:`dprec.models.registry`.

Importing this module imports :mod:`dprec.models` (the library's models) and :mod:`dprec.bench.adapters` (the
bench's ``implicit-als``), so every registered model is known.
"""

from __future__ import annotations

from .. import models as _library_models  # noqa: F401  (registers the library's models)
from ..models import registry as _registry
from . import adapters as _adapters  # noqa: F401  (registers implicit-als)

__all__ = ["get_model", "model_names", "is_private"]


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    return _registry.model_names()


def get_model(name: str) -> type:
    """The model class registered as ``name``; :class:`~dprec.errors.ConfigError` (with a did-you-mean hint
    and the known names) otherwise."""
    return _registry.get_model(name)


def is_private(cls: type) -> bool:
    """Whether the model class releases a differentially private model (its ``is_private`` capability)."""
    return bool(getattr(cls, "is_private", False))
