"""Non-private popularity baseline (the ε = ∞ reference of DP popularity / DP global effects).

Ranking score of item i: its number of training ratings ``n_i`` (the same for every user).
Rating prediction (explicit data): ``μ + c_i`` with the damped item offset
``c_i = Σ_u (r_ui − μ) / (n_i + damping)`` (shrinks rarely rated items towards the global mean μ),
clipped to the public rating bounds when they are declared.
"""

from __future__ import annotations

import numpy as np

from ..data import Interactions
from ..errors import CorruptFileError
from .base import Recommender, register_model

__all__ = ["Popularity"]


@register_model
class Popularity(Recommender):
    """Rank items by training popularity; predict ratings by the damped item mean.

    Parameters
    ----------
    damping : float
        Pseudo-count shrinking item offsets towards the global mean (default 10).
    num_threads, rng : see :class:`~dprec.models.base.Recommender` (unused: the fit is deterministic).
    """

    def __init__(self, *, damping: float = 10.0, num_threads: int = 0, rng=None):
        super().__init__(num_threads=num_threads, rng=rng)
        if not (np.isfinite(damping) and damping >= 0):
            raise ValueError(f"damping must be a finite number ≥ 0, got {damping!r}")
        self.damping = float(damping)

    def get_params(self) -> dict:
        p = super().get_params()
        p["damping"] = self.damping
        return p

    def _fit(self, data: Interactions) -> None:
        X = data.matrix
        self.item_counts = np.bincount(X.indices, minlength=data.n_items).astype(np.float64)
        self.global_mean = float(X.data.mean()) if X.nnz else 0.0
        sums = np.bincount(X.indices, weights=X.data - self.global_mean, minlength=data.n_items)
        denom = self.item_counts + self.damping
        self.item_offset = np.divide(sums, denom, out=np.zeros_like(sums), where=denom > 0)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_counts, (len(rows), self.n_items)).copy()

    def _fallback_scores(self) -> np.ndarray:
        return self.item_counts.copy()

    def _predict(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = self.global_mean + self.item_offset[np.asarray(cols, dtype=np.int64)]
        if self.rating_bounds is not None:
            out = np.clip(out, self.rating_bounds[0], self.rating_bounds[1])
        return out

    def _fold_in(self, row: int, cols: np.ndarray, vals: np.ndarray) -> None:
        """Nothing to learn per user: the base class records the user's items (for filter_seen)."""

    def _explain(self, row: int, col: int):
        """No rated item influences a popularity score: everything is baseline."""
        score = float(self._predict(np.array([row]), np.array([col]))[0])
        return np.empty(0, np.int64), np.empty(0), np.empty(0), score

    def _get_state(self) -> dict:
        return {
            "item_counts": self.item_counts,
            "item_offset": self.item_offset,
            "global_mean": np.array([self.global_mean]),
        }

    def _set_state(self, state: dict) -> None:
        n_i = len(self._item_ids)
        for name, shape in (("item_counts", (n_i,)), ("item_offset", (n_i,)), ("global_mean", (1,))):
            a = state.get(name)
            if a is None or a.shape != shape or a.dtype != np.float64 or not np.all(np.isfinite(a)):
                raise CorruptFileError(f"Popularity state array {name!r} is missing or malformed")
        self.item_counts = state["item_counts"]
        self.item_offset = state["item_offset"]
        self.global_mean = float(state["global_mean"][0])
