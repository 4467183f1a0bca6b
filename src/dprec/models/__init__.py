"""dprec models: non-private references, DP baselines, DP-ALS.

Every model registers under a name (:mod:`dprec.models.registry`: ``"als"``, ``"popularity"``,
``"dp-baseline"``, ``"dp-popularity"``, ``"dpals"``, ``"dp-itemitem"``, ``"dp-implicit-als"``, ``"dp-ranker"``)
with a frozen config class (:mod:`dprec.models.config`).
Layers: :mod:`.io` (model files) → :mod:`.base` (the protocol) → :mod:`.releases` (every DP release) →
:mod:`.global_effects` and :mod:`._biased_als` (shared estimators and the ALS engine) → the model modules.
"""

from .als import ALS, ALSConfig
from .base import Recommender, load_model
from .baselines import DPGlobalEffects, DPGlobalEffectsConfig, DPPopularity, DPPopularityConfig
from .config import ModelConfig, PrivateConfig, validate_config
from .dpals import DPALS, DPALSConfig, ResolvedDPALS
from .dpimplicit import DPImplicitALS, DPImplicitALSConfig
from .itemitem import DPItemItem, DPItemItemConfig
from .popularity import Popularity, PopularityConfig
from .ranker import DPRanker, DPRankerConfig
from .registry import MODELS, get_model, model_class_by_name, model_names, register_model

__all__ = [
    "Recommender",
    "load_model",
    "ALS",
    "Popularity",
    "DPGlobalEffects",
    "DPPopularity",
    "DPALS",
    "DPItemItem",
    "DPImplicitALS",
    "DPRanker",
    "ALSConfig",
    "PopularityConfig",
    "DPGlobalEffectsConfig",
    "DPPopularityConfig",
    "DPALSConfig",
    "DPItemItemConfig",
    "DPImplicitALSConfig",
    "DPRankerConfig",
    "ResolvedDPALS",
    "ModelConfig",
    "PrivateConfig",
    "validate_config",
    "register_model",
    "get_model",
    "model_names",
    "model_class_by_name",
    "MODELS",
]

from .dpsgd import DPSGD, DPSGDConfig, ResolvedDPSGD  # noqa: E402

__all__ += ["DPSGD", "DPSGDConfig", "ResolvedDPSGD"]
