"""External reference models wrapped for the benchmark runner.

:class:`ImplicitALS` wraps the ``implicit`` library's ``AlternatingLeastSquares`` (Hu, Koren & Volinsky 2008
weighted ALS) so that :func:`dprec.metrics.evaluate` can score it on top-N metrics next to dprec's own models.
It cannot predict ratings (``predicts_ratings = False``), so RMSE/MAE are NaN for it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["ImplicitALS"]


class ImplicitALS:
    """Adapter over ``implicit.cpu.als.AlternatingLeastSquares`` (implicit ≥ 0.5: user×item CSR).

    Parameters
    ----------
    factors, regularization, alpha, iterations, num_threads :
        Passed to implicit. implicit's confidence is ``1 + alpha * value`` on the training matrix.
    binarize : bool, default False
        Replace every stored rating by 1 before fitting (pure implicit feedback) instead of using the
        rating as the interaction strength.
    use_cg : bool, default True
        implicit's conjugate-gradient solver (its default) or the exact Cholesky solve.
    rng : int or None
        ``random_state`` of implicit (initial factors).
    """

    predicts_ratings = False
    is_private = False

    def __init__(self, *, factors: int = 64, regularization: float = 0.01, alpha: float = 1.0,
                 iterations: int = 15, num_threads: int = 0, binarize: bool = False, use_cg: bool = True,
                 rng=None):
        if not isinstance(factors, int) or factors < 1:
            raise ValueError(f"factors must be a positive integer, got {factors!r}")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        if regularization < 0 or alpha <= 0:
            raise ValueError("regularization must be ≥ 0 and alpha > 0")
        if rng is not None and not isinstance(rng, (int, np.integer)):
            raise ValueError("rng must be an int seed or None for the implicit adapter")
        self.factors, self.regularization, self.alpha = factors, float(regularization), float(alpha)
        self.iterations, self.num_threads, self.binarize, self.use_cg = iterations, num_threads, binarize, use_cg
        self.rng = rng
        self._fitted = False

    def get_params(self) -> dict:
        return {"factors": self.factors, "regularization": self.regularization, "alpha": self.alpha,
                "iterations": self.iterations, "num_threads": self.num_threads, "binarize": self.binarize,
                "use_cg": self.use_cg, "rng": self.rng}

    def fit(self, data) -> "ImplicitALS":
        from threadpoolctl import threadpool_limits
        from implicit.cpu.als import AlternatingLeastSquares

        from dprec.data import as_interactions

        data = as_interactions(data)
        m = data.matrix.astype(np.float32)
        if self.binarize:
            m = m.copy()
            m.data[:] = 1.0
        self._user_items = sp.csr_matrix(m)
        self._user_index = data.user_index
        self._item_ids = data.item_ids
        with threadpool_limits(limits=1, user_api="blas"):  # implicit warns (and slows) with threaded BLAS
            self._model = AlternatingLeastSquares(
                factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                iterations=self.iterations, num_threads=self.num_threads, use_cg=self.use_cg,
                random_state=self.rng, calculate_training_loss=False,
            )
            self._model.fit(self._user_items, show_progress=False)
        self._fitted = True
        return self

    def recommend(self, user, n: int = 10, *, filter_seen: bool = True):
        """Top-``n`` raw item ids and scores for raw user ids (2-D for a batch, 1-D for one user)."""
        if not self._fitted:
            raise RuntimeError("ImplicitALS is not fitted yet: call fit(data) first")
        single = np.ndim(user) == 0
        users = np.atleast_1d(np.asarray(user, dtype=object))
        rows = np.array([self._user_index[u.item() if isinstance(u, np.generic) else u] for u in users],
                        dtype=np.int32)
        n_eff = min(int(n), len(self._item_ids))
        ids, scores = self._model.recommend(rows, self._user_items[rows], N=n_eff,
                                            filter_already_liked_items=filter_seen)
        ids, scores = np.atleast_2d(ids), np.atleast_2d(scores).astype(np.float64)
        bad = (ids < 0) | ~np.isfinite(scores) | (scores <= np.finfo(np.float32).min)
        scores[bad] = -np.inf
        raw = self._item_ids[np.where(bad, 0, ids)]
        if bad.any():
            raw = raw.astype(object) if raw.dtype.kind not in "iu" else raw.copy()
            raw[bad] = -1 if raw.dtype.kind in "iu" else None
        if single:
            keep = np.isfinite(scores[0])
            return raw[0][keep], scores[0][keep]
        return raw, scores

    def predict(self, users, items):
        raise NotImplementedError("implicit's ALS scores preferences; it does not predict ratings (RMSE = NaN)")
