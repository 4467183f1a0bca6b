"""dprec models: non-private references, DP baselines, DP-ALS."""

from .base import Recommender, load_model, register_model

__all__ = ["Recommender", "load_model", "register_model"]
