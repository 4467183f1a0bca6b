"""Non-private popularity baseline (the ε = ∞ reference of DP popularity / DP global effects).

Ranking score of item i: its number of training ratings ``n_i`` (the same for every user).
Rating prediction (explicit data): ``μ + c_i`` with the damped item bias (offset)
``c_i = Σ_u (r_ui − μ) / (n_i + damping)`` (shrinks rarely rated items towards the global mean μ),
clipped to the public rating bounds when they are declared.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..data import Interactions
from ..errors import CorruptFileError
from .base import Recommender, deprecated_alias
from .config import ModelConfig, Real
from .registry import register_model

__all__ = ["Popularity", "PopularityConfig"]


class PopularityConfig(ModelConfig):
    """Parameters of :class:`Popularity` (``num_threads`` and ``rng`` are unused: the fit is deterministic)."""

    damping: Real = Field(10.0, ge=0, description="pseudo-count shrinking item biases towards the global mean")


@register_model("popularity")
class Popularity(Recommender):
    """Rank items by training popularity; predict ratings by the damped item mean.

    Parameters: :class:`PopularityConfig` (``damping``, default 10). Fitted attributes: ``item_counts_``,
    ``global_mean_``, ``item_bias_`` (the damped offsets ``c_i``).
    """

    is_private = False
    predicts_ratings = True
    explain_uses_ratings = False
    feedback = "any"
    uses_threads = False  # numpy only: num_threads has no effect
    Config = PopularityConfig

    def __init__(self, **params):
        super().__init__(**params)
        self.item_counts_ = self.global_mean_ = self.item_bias_ = None

    item_counts = deprecated_alias("item_counts_", "item_counts")
    global_mean = deprecated_alias("global_mean_", "global_mean")
    item_offset = deprecated_alias("item_bias_", "item_offset")

    def _fit(self, data: Interactions) -> None:
        X = data.matrix
        self.item_counts_ = np.bincount(X.indices, minlength=data.n_items).astype(np.float64)
        self.global_mean_ = float(X.data.mean()) if X.nnz else 0.0
        sums = np.bincount(X.indices, weights=X.data - self.global_mean_, minlength=data.n_items)
        denom = self.item_counts_ + self.damping
        self.item_bias_ = np.divide(sums, denom, out=np.zeros_like(sums), where=denom > 0)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_counts_, (len(rows), self.n_items)).copy()

    def _fallback_scores(self) -> np.ndarray:
        return self.item_counts_.copy()

    def _predict(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = self.global_mean_ + self.item_bias_[np.asarray(cols, dtype=np.int64)]
        if self.rating_bounds_ is not None:
            out = np.clip(out, self.rating_bounds_[0], self.rating_bounds_[1])
        return out

    def _fold_in(self, row: int, cols: np.ndarray, vals: np.ndarray) -> None:
        """Nothing to learn per user: the base class records the user's items (for filter_seen)."""

    def _explain(self, row: int, col: int):
        """Exact: no rated item influences a popularity ranking score (the count); everything is baseline."""
        return np.empty(0, np.int64), np.empty(0), np.empty(0), float(self._fallback_scores()[col])

    def _explain_baseline_words(self) -> str:
        return "the item's overall popularity"

    def _get_state(self) -> dict:
        return {
            "item_counts": self.item_counts_,
            "item_offset": self.item_bias_,
            "global_mean": np.array([self.global_mean_]),
        }

    def _set_state(self, state: dict) -> None:
        n_i = len(self._item_ids)
        for name, shape in (("item_counts", (n_i,)), ("item_offset", (n_i,)), ("global_mean", (1,))):
            a = state.get(name)
            if a is None or a.shape != shape or a.dtype != np.float64 or not np.all(np.isfinite(a)):
                raise CorruptFileError(f"Popularity state array {name!r} is missing or malformed")
        self.item_counts_ = state["item_counts"]
        self.item_bias_ = state["item_offset"]
        self.global_mean_ = float(state["global_mean"][0])
