"""Audits of fitted models: per-group quality and popularity bias (:mod:`.bias`), the empirical privacy audit
with canaries (:mod:`.privacy`) and membership inference on served scores (:mod:`.membership`).

Every figure an audit computes uses private data (the training and test ratings, user attributes): audit
results are measurements, **not** differentially private releases. See ``docs/audit.md``.
"""

from .bias import NOT_DP_NOTE, BiasAudit, activity_groups, audit_bias, gini, long_tail_items, popularity_bias
from .membership import auc, record_membership_auc, user_membership_auc
from .privacy import (
    CanaryDesign,
    OneRunAudit,
    audit_model,
    audit_scores,
    canary_scores,
    clopper_pearson,
    insert_canaries,
    make_canaries,
    multi_run_epsilon,
    one_run_epsilon,
    one_run_p_value,
)

__all__ = [
    "NOT_DP_NOTE",
    "BiasAudit",
    "audit_bias",
    "activity_groups",
    "popularity_bias",
    "gini",
    "long_tail_items",
    "auc",
    "record_membership_auc",
    "user_membership_auc",
    "CanaryDesign",
    "OneRunAudit",
    "audit_model",
    "audit_scores",
    "canary_scores",
    "clopper_pearson",
    "insert_canaries",
    "make_canaries",
    "multi_run_epsilon",
    "one_run_epsilon",
    "one_run_p_value",
]
