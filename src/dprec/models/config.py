"""Configuration classes: each model's hyperparameters are one frozen pydantic model.

``Model(**params)`` validates ``params`` through ``Model.Config``; ``get_params()`` is the config's dump, and model
files and benchmark TOMLs are read back through the same validation (:func:`validate_config`), so a value that a
constructor refuses is refused everywhere, with the same message. The privacy part (ε, δ, unit, secure noise) is
declared once, in :class:`PrivateConfig`.

Each model declares its own config class beside it (``ALS.Config`` is :class:`ALSConfig`, in
``dprec/models/als.py``; likewise ``PopularityConfig``, ``DPGlobalEffectsConfig``, ``DPPopularityConfig`` and
``DPALSConfig``), so a new model is one file. They are importable from here as well. Value types shared by
those classes: :data:`Int` (an integer; bools and floats refused) and :data:`Real` (a finite real number).
A config renames deprecated parameter names listed in its ``deprecated_names`` (old → new) with a
:class:`DeprecationWarning`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from ..errors import ConfigError, did_you_mean
from ..privacy.units import check_delta, check_target_epsilon

__all__ = ["ModelConfig", "PrivateConfig", "validate_config", "Int", "Real"]


def _as_int(v):
    import numpy as np

    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"must be an integer, got {v!r}")
    return int(v)


def _as_real(v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"must be a number, got {v!r}")
    return float(v)


#: an integer (numpy integers accepted; bools, floats and strings refused); add ``Field(ge=...)`` bounds
Int = Annotated[int, BeforeValidator(_as_int)]
#: a finite real number (bools and strings refused); add ``Field(gt=/ge=...)`` bounds
Real = Annotated[float, BeforeValidator(_as_real), Field(allow_inf_nan=False)]


class ModelConfig(BaseModel):
    """Parameters every model takes."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, validate_default=True)

    #: deprecated parameter name → its current name (accepted for one release, with a DeprecationWarning)
    deprecated_names: ClassVar[dict[str, str]] = {}

    num_threads: int = Field(0, ge=0, strict=True, description="threads for the kernels (0 = all cores)")
    rng: Any = Field(
        None,
        description="seed or numpy Generator; None = fresh OS entropy (for DP models, a seed is reproducibility mode)",
    )

    @field_validator("rng")
    @classmethod
    def _rng(cls, v):
        import numpy as np

        if v is None or isinstance(v, (np.random.Generator, np.random.SeedSequence)):
            return v
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"rng must be None, a non-negative int seed, a SeedSequence or a Generator; got {v!r}")
        return int(v)

    @field_serializer("rng")
    def _rng_json(self, v):
        # JSON-able parameters: an int seed or None (a Generator or SeedSequence cannot be written down)
        return v if v is None or isinstance(v, int) else None

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if not isinstance(data, dict) or not cls.deprecated_names:
            return data
        data = dict(data)
        for old, new in cls.deprecated_names.items():
            if old in data:
                if new in data:
                    raise ValueError(f"{old} is the deprecated name of {new}: pass only {new}")
                warnings.warn(
                    f"parameter {old!r} is deprecated and will be removed; use {new!r}",
                    DeprecationWarning,
                    stacklevel=6,
                )
                data[new] = data.pop(old)
        return data


class PrivateConfig(ModelConfig):
    """The privacy part shared by every DP model (keyword-only in the constructors)."""

    epsilon: float = Field(description="target ε of everything released (math.inf: non-private reference)")
    delta: float | None = Field(None, description="target δ; required when ε is finite (e.g. 1e-5)")
    privacy_unit: Literal["user", "rating"] = Field("user", description="what neighbouring datasets differ by")
    secure_noise: bool = Field(
        False, strict=True, description="pass every release through OpenDP's Gaussian measurement"
    )

    @field_validator("epsilon", mode="before")
    @classmethod
    def _epsilon(cls, v):
        return check_target_epsilon(v)

    @model_validator(mode="after")
    def _delta(self):
        if math.isinf(self.epsilon):
            object.__setattr__(self, "delta", 0.0 if self.delta is None else float(self.delta))
        elif self.delta is None:
            raise ValueError("delta is required when epsilon is finite (e.g. delta=1e-5)")
        else:
            object.__setattr__(self, "delta", check_delta(self.delta))
        return self


def validate_config(config_cls: type[ModelConfig], params: dict, *, where: str = "") -> ModelConfig:
    """``config_cls(**params)``, with every error as one :class:`~dprec.errors.ConfigError` naming the key path
    (``where`` + field) and, for an unknown key, the closest known one."""
    try:
        return config_cls(**params)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            path = f"{where}.{key}" if where and key else (where or key)
            if err["type"] == "extra_forbidden":
                msgs.append(
                    f"{path}: unknown parameter; {did_you_mean(err['loc'][-1], config_cls.model_fields)}"
                    f"known: {', '.join(config_cls.model_fields)}"
                )
            else:
                msg = str(err["msg"]).removeprefix("Value error, ")
                if key and "got" not in msg:
                    msg += f" (got {err.get('input')!r})"
                msgs.append(f"{path}: {msg}" if path else msg)
        raise ConfigError("; ".join(msgs)) from None
