"""A model written as a third party would: one file, registered, picked up by the CLI, the bench and the contract."""

import numpy as np
from pydantic import Field

from dprec.models import ModelConfig, Recommender, register_model


class ItemMeanConfig(ModelConfig):
    shrinkage: float = Field(5.0, ge=0, description="pseudo-ratings at the global mean added to every item")


@register_model("item-mean")
class ItemMean(Recommender):
    """Scores every item by its shrunk mean rating ``(Σ r + s·μ) / (n + s)``; the same ranking for everyone."""

    is_private, predicts_ratings, feedback, Config = False, True, "explicit", ItemMeanConfig
    explain_uses_ratings = False  # the same ranking for everyone: explain is all baseline

    def _fit(self, data):
        X, s = data.matrix, self.shrinkage
        self.global_mean_ = float(X.data.mean())
        n = np.bincount(X.indices, minlength=X.shape[1])
        self.item_mean_ = (np.bincount(X.indices, X.data, X.shape[1]) + s * self.global_mean_) / np.maximum(
            n + s, 1e-12
        )

    def _scores(self, rows):
        return np.tile(self.item_mean_, (len(rows), 1))

    def _predict(self, rows, cols):
        return self.item_mean_[cols]

    def _fallback_scores(self):
        return self.item_mean_.copy()

    def _fold_in(self, row, cols, vals):
        pass  # nothing per user; the base class records the user's items

    def _explain(self, row, col):
        return np.empty(0, np.int64), np.empty(0), np.empty(0), float(self.item_mean_[col])

    def _get_state(self):
        return {"item_mean": self.item_mean_, "global_mean": np.array([self.global_mean_])}

    def _set_state(self, s):
        self.item_mean_, self.global_mean_ = s["item_mean"], float(s["global_mean"][0])
