"""Test helpers for dprec and for third-party models.

:class:`ModelContract` — the full model protocol as a pytest test class to subclass (:mod:`.contract`);
:func:`contract_data` — its small seeded explicit dataset; :func:`numpy_biased_als` — a dense numpy oracle of
biased explicit ALS / ``DPALS(epsilon=math.inf)`` (:mod:`.reference_als`); a throwaway PostgreSQL server for the
PostgreSQL ledger's tests (:mod:`.postgres`, imported on its own).
"""

from .contract import ModelContract, contract_data
from .reference_als import numpy_biased_als

__all__ = ["ModelContract", "contract_data", "numpy_biased_als"]
