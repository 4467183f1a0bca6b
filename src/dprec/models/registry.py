"""The one model registry: every model class registers under a command-line/config name.

The CLI, the benchmark runner, model files and the shared test contract all read names and capabilities from
here, so a new model is one file with ``@register_model("name")`` on its class. Each registered class carries:

``name``
    the registry name (``"dpals"``), set by the decorator;
``is_private``
    True when its released item side is differentially private;
``predicts_ratings``
    False for ranking-only models (``evaluate`` reports RMSE as NaN);
``feedback``
    ``"explicit"``, ``"implicit"`` or ``"any"``: which data the model is meant for;
``Config``
    its frozen pydantic configuration class (:mod:`dprec.models.config`).
"""

from __future__ import annotations

from types import MappingProxyType

from ..errors import ConfigError, did_you_mean

__all__ = ["register_model", "get_model", "model_names", "model_class_by_name", "MODELS"]

_BY_NAME: dict[str, type] = {}
_BY_CLASS: dict[str, type] = {}
#: read-only view: registry name → class
MODELS = MappingProxyType(_BY_NAME)


def register_model(name: str):
    """Class decorator: register a model class under ``name`` (and its class name, for model files)."""
    if not isinstance(name, str) or not name:
        raise TypeError("register_model needs the model's registry name, e.g. @register_model('dpals')")

    def deco(cls):
        for attr in ("is_private", "predicts_ratings", "feedback", "Config"):
            if not hasattr(cls, attr):
                raise TypeError(f"model {cls.__name__} must define {attr!r} to be registered")
        if name in _BY_NAME and _BY_NAME[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered for {_BY_NAME[name].__name__}")
        cls.name = name
        _BY_NAME[name] = cls
        _BY_CLASS[cls.__name__] = cls
        return cls

    return deco


def get_model(name: str) -> type:
    """The class registered as ``name``; :class:`~dprec.errors.ConfigError` with a hint for an unknown name."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown model {name!r}; {did_you_mean(name, _BY_NAME)}available models: {', '.join(sorted(_BY_NAME))}"
        ) from None


def model_names() -> list[str]:
    """Registered names, sorted."""
    return sorted(_BY_NAME)


def model_class_by_name(class_name: str) -> type | None:
    """The registered class whose ``__name__`` is ``class_name`` (model files record the class name), or None."""
    return _BY_CLASS.get(class_name)
