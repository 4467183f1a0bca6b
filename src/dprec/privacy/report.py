"""JSON-able privacy reports attached to every fitted model.

A report states the privacy unit, the target and achieved ``(ε, δ)``, every noisy release
(name, mechanism, σ, sensitivity, ρ, count), the contribution bounds, the public assumptions, and
which saved arrays are DP releases and which are per-user (private; joint-DP only). :meth:`verify`
recomputes ε independently from the listed σ's and sensitivities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .accounting import dpsgd_epsilon, gaussian_rho, rho_to_epsilon
from .units import check_delta, check_epsilon, check_privacy_unit

__all__ = ["ReportStep", "PrivacyReport"]


def _jf(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


@dataclass
class ReportStep:
    """One accounted release.

    zCDP step (``epsilon is None``): ``rho`` is per release; the step costs ``count * rho`` in zCDP
    plus ``delta`` (extra δ of a δ-approximate zCDP mechanism, e.g. DP item selection).

    (ε, δ) step (``epsilon`` set, e.g. DP-SGD accounted by ``dp_accounting``): costs
    ``(epsilon, delta)`` by basic composition; ``rho`` is ignored (use ``nan``/0). For
    ``mechanism="poisson_subsampled_gaussian"`` put ``noise_multiplier``, ``sample_rate`` and
    ``steps`` in ``params`` so :meth:`PrivacyReport.verify` can recompute ε.
    """

    name: str
    mechanism: str
    sigma: float
    sensitivity: float
    rho: float
    count: int = 1
    delta: float = 0.0
    epsilon: float | None = None
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "epsilon": _jf(self.epsilon),
            "params": dict(self.params),
            "name": self.name,
            "mechanism": self.mechanism,
            "sigma": _jf(self.sigma),
            "sensitivity": _jf(self.sensitivity),
            "rho": _jf(self.rho),
            "count": int(self.count),
            "delta": self.delta,
        }


@dataclass
class PrivacyReport:
    """Privacy report of one fit.

    Attributes
    ----------
    unit : {"user", "rating"}
    epsilon, delta : float
        The target budget (``epsilon = inf``: not private).
    steps : list of ReportStep
    bounds : dict
        Contribution bounds, e.g. ``{"k": 100, "B": 2.0, "gamma": 1.0}``.
    public_assumptions : list of str
        Inputs taken as public (rating bounds, item catalog, hyperparameters, n_users bound...).
    dp_arrays, private_arrays : list of str
        Saved arrays that are DP releases (item factors, item biases, global mean) vs per-user
        arrays (user factors/biases; only joint DP, never to be shared).
    """

    unit: str
    epsilon: float
    delta: float
    steps: list = field(default_factory=list)
    bounds: dict = field(default_factory=dict)
    public_assumptions: list = field(default_factory=list)
    dp_arrays: list = field(default_factory=list)
    private_arrays: list = field(default_factory=list)
    accountant: str = "zCDP (Bun & Steinke 2016), tight conversion (Canonne, Kamath & Steinke 2020) via OpenDP"
    notes: list = field(default_factory=list)

    def __post_init__(self):
        self.unit = check_privacy_unit(self.unit)
        self.epsilon = check_epsilon(self.epsilon)
        self.delta = check_delta(self.delta, allow_zero=math.isinf(self.epsilon))

    # ---------------------------------------------------------------- building
    def add_step(self, name, mechanism, *, sigma, sensitivity, rho=None, count=1, delta=0.0, epsilon=None,
                 params=None) -> "PrivacyReport":
        """Append a release; for zCDP steps ``rho`` defaults to ``Δ²/(2σ²)``."""
        if rho is None:
            rho = gaussian_rho(sensitivity, sigma) if epsilon is None else 0.0
        self.steps.append(ReportStep(name, mechanism, float(sigma), float(sensitivity), float(rho), int(count),
                                     float(delta), None if epsilon is None else float(epsilon), dict(params or {})))
        return self

    @classmethod
    def from_plan(cls, plan, *, unit="user", mechanism="gaussian", **kwargs) -> "PrivacyReport":
        """Report with one step per :class:`~dprec.privacy.accounting.StepPlan` of ``plan``."""
        rep = cls(unit=unit, epsilon=plan.epsilon, delta=plan.delta, **kwargs)
        for s in plan.steps:
            rep.add_step(s.name, mechanism, sigma=s.sigma, sensitivity=s.sensitivity, rho=s.rho, count=s.count)
        return rep

    # ---------------------------------------------------------------- derived
    @property
    def is_private(self) -> bool:
        return math.isfinite(self.epsilon)

    @property
    def is_dp_artifact(self) -> bool:
        """True iff the budget is finite and no per-user (private) arrays are included."""
        return self.is_private and not self.private_arrays

    @property
    def total_rho(self) -> float:
        return math.fsum(s.rho * s.count for s in self.steps if s.epsilon is None) if self.steps else 0.0

    @property
    def extra_delta(self) -> float:
        return math.fsum(s.delta for s in self.steps)

    @property
    def approx_epsilon(self) -> float:
        return math.fsum(s.epsilon for s in self.steps if s.epsilon is not None)

    def achieved(self) -> tuple[float, float]:
        """``(ε, δ)`` implied by the listed steps: ``ρ = Σ count·ρ`` converted at ``δ − Σδ_step``,
        plus the (ε, δ) steps by basic composition (same rule as the ledger)."""
        if not self.is_private:
            return math.inf, self.delta
        d_z = self.delta - self.extra_delta
        rho = self.total_rho
        if rho == 0:
            return self.approx_epsilon, self.extra_delta
        if d_z <= 0:
            return math.inf, self.delta
        return rho_to_epsilon(rho, d_z) + self.approx_epsilon, self.delta

    def verify(self, rtol: float = 1e-9) -> bool:
        """Independently recompute each step's ρ from σ and Δ (``Δ²/(2σ²)``), check it is not
        smaller than the listed ρ, and check the composed ε (tight conversion at
        ``δ − Σδ_step``) is ``<=`` the target. Returns True or raises ValueError with the reason."""
        if not self.is_private:
            return True
        eps_approx = []
        for s in self.steps:
            if s.epsilon is not None:
                if s.mechanism == "poisson_subsampled_gaussian":
                    p = s.params
                    try:
                        e = dpsgd_epsilon(p["noise_multiplier"], p["sample_rate"], int(p["steps"]), s.delta,
                                          accountant=p.get("accountant", "rdp"))
                    except KeyError as err:
                        raise ValueError(f"step {s.name!r} lacks param {err} needed to recompute epsilon") from None
                    if e > s.epsilon * (1 + rtol):
                        raise ValueError(f"step {s.name!r}: listed epsilon={s.epsilon} but recomputed {e}")
                    eps_approx.append(e)
                else:
                    eps_approx.append(s.epsilon)
                continue
            if s.sigma == 0 or math.isinf(s.rho):
                raise ValueError(f"step {s.name!r} has no noise (sigma=0) in a private report")
            r = (s.sensitivity / s.sigma) ** 2 / 2.0
            if r > s.rho * (1 + rtol):
                raise ValueError(f"step {s.name!r}: listed rho={s.rho} but Δ²/(2σ²)={r}")
        rho = math.fsum(((s.sensitivity / s.sigma) ** 2 / 2.0) * s.count for s in self.steps if s.epsilon is None)
        d_z = self.delta - self.extra_delta
        if rho > 0 and d_z <= 0:
            raise ValueError("explicit per-step deltas use up the whole delta")
        if self.extra_delta > self.delta * (1 + rtol):
            raise ValueError(f"per-step deltas sum to {self.extra_delta} > delta={self.delta}")
        eps = (rho_to_epsilon(rho, d_z) if rho > 0 else 0.0) + math.fsum(eps_approx)
        if eps > self.epsilon * (1 + rtol):
            raise ValueError(f"composed epsilon {eps} exceeds the target {self.epsilon}")
        return True

    def to_dict(self) -> dict:
        eps, dlt = self.achieved()
        return {
            "unit": self.unit,
            "epsilon": _jf(self.epsilon),
            "delta": self.delta,
            "is_private": self.is_private,
            "is_dp_artifact": self.is_dp_artifact,
            "total_rho": _jf(self.total_rho) if self.is_private else "inf",
            "achieved_epsilon": _jf(eps),
            "achieved_delta": dlt,
            "accountant": self.accountant,
            "steps": [s.to_dict() for s in self.steps],
            "bounds": {k: _jf(v) if isinstance(v, float) else v for k, v in self.bounds.items()},
            "public_assumptions": list(self.public_assumptions),
            "artifact": {"dp_released": list(self.dp_arrays), "private_per_user": list(self.private_arrays)},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PrivacyReport":
        def f(x):
            return math.inf if x == "inf" else float(x)

        rep = cls(
            unit=d["unit"],
            epsilon=f(d["epsilon"]),
            delta=float(d["delta"]),
            bounds=dict(d.get("bounds", {})),
            public_assumptions=list(d.get("public_assumptions", [])),
            dp_arrays=list(d.get("artifact", {}).get("dp_released", [])),
            private_arrays=list(d.get("artifact", {}).get("private_per_user", [])),
            notes=list(d.get("notes", [])),
        )
        if "accountant" in d:
            rep.accountant = d["accountant"]
        for s in d.get("steps", []):
            e = s.get("epsilon")
            rep.steps.append(
                ReportStep(s["name"], s["mechanism"], f(s["sigma"]), f(s["sensitivity"]), f(s["rho"]), int(s["count"]),
                           float(s.get("delta", 0.0)), None if e is None else f(e), dict(s.get("params", {})))
            )
        return rep
