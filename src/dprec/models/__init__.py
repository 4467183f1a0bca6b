"""dprec models: non-private references, DP baselines, DP-ALS."""

from .base import Recommender, load_model, register_model

__all__ = ["Recommender", "load_model", "register_model"]
from .baselines import DPGlobalEffects, DPPopularity  # noqa: E402

__all__ += ["DPGlobalEffects", "DPPopularity"]

from .als import ALS  # noqa: E402
from .popularity import Popularity  # noqa: E402

__all__ += ["ALS", "Popularity"]
from .dpals import DPALS  # noqa: E402

__all__ += ["DPALS"]
