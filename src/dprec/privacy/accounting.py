"""Privacy accounting: pure functions, no state.

Gaussian releases are accounted in zero-concentrated differential privacy (zCDP; Bun & Steinke 2016,
"Concentrated Differential Privacy: Simplifications, Extensions, and Lower Bounds", TCC):

* a Gaussian mechanism with L2 sensitivity ``Δ`` and noise standard deviation ``σ`` is
  ``ρ = Δ² / (2 σ²)``-zCDP (Bun & Steinke 2016, Prop. 1.6);
* zCDP composes additively (also adaptively): ``ρ_total = Σ ρ_i`` (Lemma 2.3);
* ``ρ``-zCDP implies ``(ε, δ)``-DP for every ``δ > 0``. The classic bound is
  ``ε = ρ + 2 √(ρ log(1/δ))`` (Bun & Steinke 2016, Prop. 1.3); we use the tighter conversion of
  Canonne, Kamath & Steinke 2020 ("The Discrete Gaussian for Differential Privacy", NeurIPS,
  Prop. 7 / Cor. 13) as implemented, with conservative rounding, by OpenDP
  (``make_zCDP_to_approxDP`` + ``PrivacyProfile.epsilon``).

ε is in nats (natural log); ρ in nats too; δ is a probability; σ and Δ share the unit of the
released statistic.

Poisson-subsampled Gaussian releases (DP-SGD; Abadi et al. 2016) are accounted with Google's
``dp_accounting`` library (Rényi DP accountant by default — Mironov 2017; Mironov, Talwar & Zhang
2019 — or the privacy-loss-distribution accountant), with the add/remove-one neighbouring relation.

Every calibration function here is *conservative*: the returned noise (or ρ) never yields a
privacy loss above the requested target when re-accounted with the same functions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .._json import to_jsonable
from .._validation import check_fraction, check_int, check_number
from .units import check_delta, check_epsilon

__all__ = [
    "gaussian_rho",
    "sigma_for_rho",
    "rho_to_epsilon",
    "epsilon_to_rho",
    "rho_to_epsilon_upper_bound",
    "Step",
    "StepPlan",
    "Plan",
    "plan",
    "dpsgd_epsilon",
    "dpsgd_noise_multiplier",
    "basic_composition",
]

# Relative safety margin applied after bisection so that re-summing ρ's in another order
# (floating-point rounding, ~1e-16 relative) can never push a plan above its target.
_SHAVE = 1e-9


# ----------------------------------------------------------------------------------------------
# Gaussian mechanism in zCDP
# ----------------------------------------------------------------------------------------------


def gaussian_rho(sensitivity, sigma) -> float:
    """zCDP cost of one Gaussian release: ``ρ = Δ² / (2 σ²)`` (Bun & Steinke 2016, Prop. 1.6).

    Parameters
    ----------
    sensitivity : float
        L2 sensitivity ``Δ >= 0`` of the released statistic (same unit as ``sigma``).
    sigma : float
        Noise standard deviation ``σ >= 0``. ``σ = 0`` with ``Δ > 0`` costs ``ρ = inf``.

    Returns
    -------
    float
        ``ρ`` in nats (``0`` if ``Δ = 0``).
    """
    d = check_number(sensitivity, "sensitivity", low_inclusive=True)
    s = check_number(sigma, "sigma", low_inclusive=True, allow_inf=True)
    if d == 0 or math.isinf(s):
        return 0.0
    if s == 0:
        return math.inf
    return (d / s) ** 2 / 2.0


def sigma_for_rho(sensitivity, rho) -> float:
    """Smallest noise standard deviation giving ``ρ``-zCDP: ``σ = Δ / √(2ρ)``.

    The result is rounded *up* so that ``gaussian_rho(Δ, σ) <= ρ`` holds in floating point.
    ``ρ = inf`` gives ``σ = 0`` (no privacy).
    """
    d = check_number(sensitivity, "sensitivity", low_inclusive=True)
    r = check_number(rho, "rho", allow_inf=True)
    if math.isinf(r) or d == 0:
        return 0.0
    s = d / math.sqrt(2.0 * r)
    while gaussian_rho(d, s) > r:  # at most a couple of ulps
        s = math.nextafter(s, math.inf)
    return s


# ----------------------------------------------------------------------------------------------
# zCDP -> (ε, δ) via OpenDP
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _opendp_zcdp_curve_measurement():
    """``make_zCDP_to_approxDP(make_gaussian(float, scale=1))``; its map at ``d_in`` is the profile of
    a ``d_in²/2``-zCDP mechanism (OpenDP rounds ρ upward)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    gauss = dp.m.make_gaussian(*space, scale=1.0)
    return gauss, dp.c.make_zCDP_to_approxDP(gauss)


def rho_to_epsilon_upper_bound(rho, delta) -> float:
    """Classic closed form ``ε = ρ + 2 √(ρ log(1/δ))`` (Bun & Steinke 2016, Prop. 1.3).

    Valid but looser than :func:`rho_to_epsilon`; used as a sanity bound and as a fallback when the
    tight conversion overflows.
    """
    r = check_number(rho, "rho", low_inclusive=True, allow_inf=True)
    d = check_delta(delta)
    return r + 2.0 * math.sqrt(r * math.log(1.0 / d))


@functools.lru_cache(maxsize=65536)
def _rho_to_epsilon_cached(r: float, d: float) -> float:
    gauss, meas = _opendp_zcdp_curve_measurement()
    d_in = math.nextafter(math.sqrt(2.0 * r), math.inf)
    try:
        # OpenDP's zCDP charge of this d_in must cover r; bump d_in until it does (ulp-level).
        while gauss.map(d_in) < r:
            d_in = math.nextafter(d_in, math.inf)
        eps = float(meas.map(d_in).epsilon(d))
    except Exception:  # OpenDP overflow on extreme parameters: fall back to the looser valid bound
        eps = r + 2.0 * math.sqrt(r * math.log(1.0 / d))
    return max(eps, 0.0)


def rho_to_epsilon(rho, delta) -> float:
    """Tight conversion of ``ρ``-zCDP to ``(ε, δ)``-DP.

    Uses the optimal conversion of Canonne, Kamath & Steinke (2020, Prop. 7 / Cor. 13),

    ``δ = inf_{α>1} exp((α-1)(αρ-ε)) / (α-1) · (1 - 1/α)^α``,

    solved for ``ε`` by OpenDP (``opendp.combinators.make_zCDP_to_approxDP`` applied to a
    ``make_gaussian`` measurement, then ``PrivacyProfile.epsilon(delta)``), which rounds
    conservatively. It never exceeds ``ρ + 2√(ρ log(1/δ))`` (Bun & Steinke 2016).

    Parameters
    ----------
    rho : float
        zCDP parameter ``ρ >= 0`` (``inf`` allowed: gives ``ε = inf``).
    delta : float
        Target ``δ`` in ``(0, 1)``.

    Returns
    -------
    float
        ``ε`` (nats).
    """
    r = check_number(rho, "rho", low_inclusive=True, allow_inf=True)
    d = check_delta(delta)
    if r == 0:
        return 0.0
    if math.isinf(r):
        return math.inf
    return _rho_to_epsilon_cached(r, d)


@functools.lru_cache(maxsize=4096)
def _epsilon_to_rho_cached(eps: float, d: float) -> float:
    # Lower bracket from the (looser) closed form: rho_lo + 2 sqrt(rho_lo L) = eps.
    L = math.log(1.0 / d)
    lo = (math.sqrt(L + eps) - math.sqrt(L)) ** 2
    while lo > 0 and rho_to_epsilon(lo, d) > eps:  # numerical safety
        lo /= 2.0
    hi = max(lo, 1e-300) * 2.0
    while rho_to_epsilon(hi, d) <= eps:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return lo
    # invariant: conv(lo) <= eps < conv(hi). Illinois false position (superlinear), stop when lo is
    # within a relative 1e-10 of the target in epsilon or the bracket is 1e-12 wide.
    flo, fhi = rho_to_epsilon(lo, d) - eps, rho_to_epsilon(hi, d) - eps
    side = 0
    for _ in range(200):
        if -flo <= 1e-10 * eps or hi - lo <= 1e-12 * hi:
            break
        mid = hi - fhi * (hi - lo) / (fhi - flo) if fhi != flo else 0.5 * (lo + hi)
        if not (lo < mid < hi):
            mid = 0.5 * (lo + hi)
        fmid = rho_to_epsilon(mid, d) - eps
        if fmid <= 0:
            lo, flo = mid, fmid
            if side == -1:
                fhi /= 2.0
            side = -1
        else:
            hi, fhi = mid, fmid
            if side == 1:
                flo /= 2.0
            side = 1
    rho = lo * (1.0 - _SHAVE)
    if rho_to_epsilon(rho, d) > eps:  # cannot happen (lo is feasible); never return an unsafe value
        raise RuntimeError(f"epsilon_to_rho({eps}, {d}) failed to find a feasible rho; please report this bug")
    return rho


def epsilon_to_rho(epsilon, delta) -> float:
    """Largest ``ρ`` whose tight conversion (:func:`rho_to_epsilon`) at ``δ`` is ``<= epsilon``.

    Bracketing root search (bisection-safe Illinois false position) on the OpenDP conversion, to
    relative precision ``1e-10`` in ε (or ``1e-12`` in ρ), then shaved by a relative
    ``1e-9`` so that re-summing the split ρ's in any order cannot overshoot. The result is
    guaranteed to satisfy ``rho_to_epsilon(result, delta) <= epsilon``. ``epsilon = inf`` gives
    ``ρ = inf``.
    """
    eps = check_epsilon(epsilon)
    if math.isinf(eps):
        return math.inf
    d = check_delta(delta)
    return _epsilon_to_rho_cached(eps, d)


# ----------------------------------------------------------------------------------------------
# Budget planner
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a fit: ``count`` identical Gaussian releases of a statistic with L2 sensitivity
    ``sensitivity``, receiving ``weight`` (relative share) of the total ρ."""

    name: str
    weight: float
    sensitivity: float
    count: int = 1

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Step name must be a non-empty string, got {self.name!r}")
        check_number(self.weight, f"weight of step {self.name!r}")
        check_number(self.sensitivity, f"sensitivity of step {self.name!r}")
        check_int(self.count, f"count of step {self.name!r}", minimum=1)


@dataclass(frozen=True)
class StepPlan:
    """Calibrated step: per-release ``sigma`` and ``rho`` (recomputed from ``sigma``), ``total_rho``
    = ``count * rho``."""

    name: str
    weight: float
    sensitivity: float
    count: int
    sigma: float
    rho: float
    total_rho: float

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "weight": self.weight,
            "sensitivity": self.sensitivity,
            "count": self.count,
            "sigma": self.sigma,
            "rho": to_jsonable(self.rho),
            "total_rho": to_jsonable(self.total_rho),
        }


@dataclass(frozen=True)
class Plan:
    """A calibrated split of an ``(epsilon, delta)`` target across Gaussian steps.

    Attributes
    ----------
    epsilon, delta : float
        The target.
    steps : tuple of StepPlan
    total_rho : float
        ``fsum`` of every release's ρ (recomputed from the rounded σ's).
    achieved_epsilon : float
        ``rho_to_epsilon(total_rho, delta)``; always ``<= epsilon``.
    """

    epsilon: float
    delta: float
    steps: tuple = field(default_factory=tuple)
    total_rho: float = 0.0
    achieved_epsilon: float = 0.0

    def __getitem__(self, name: str) -> StepPlan:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"no step named {name!r} in this plan; steps are {[s.name for s in self.steps]}")

    def sigma(self, name: str) -> float:
        """Per-release noise standard deviation of step ``name``."""
        return self[name].sigma

    @property
    def is_private(self) -> bool:
        return math.isfinite(self.epsilon)

    def to_dict(self) -> dict:
        return {
            "epsilon": to_jsonable(self.epsilon),
            "delta": self.delta,
            "total_rho": to_jsonable(self.total_rho),
            "achieved_epsilon": to_jsonable(self.achieved_epsilon),
            "steps": [s.to_dict() for s in self.steps],
        }


def _release_rhos(steps: Iterable[StepPlan]) -> list[float]:
    out: list[float] = []
    for s in steps:
        out.extend([s.rho] * s.count)
    return out


def plan(epsilon, delta, steps: Sequence[Step]) -> Plan:
    """Calibrate Gaussian noise for every step so the composition meets ``(epsilon, delta)``.

    The total ``ρ = epsilon_to_rho(ε, δ)`` is split in proportion to ``weight``: step ``i`` gets
    ``ρ_i = ρ · w_i / Σw``, each of its ``count`` releases gets ``ρ_i / count`` and noise
    ``σ_i = Δ_i / √(2 ρ_i / count)`` (rounded up). The composed cost ``Σ Δ²/(2σ²)`` (exact ``fsum``
    over all releases) is re-converted and checked to be ``<= epsilon``.

    With ``epsilon = inf`` every ``σ`` is ``0`` (no noise) and every ρ is ``inf``.

    If the fit also spends an explicit δ (e.g. DP item selection with ``δ_sel``), plan the Gaussian
    steps at ``delta - δ_sel`` so that the ledger (which converts Σρ at ``δ_total − Σ explicit δ``)
    accepts the charges.

    Parameters
    ----------
    epsilon : float
        Target ε (> 0, may be ``inf``).
    delta : float
        Target δ in (0, 1) (ignored, may be 0, when ``epsilon`` is ``inf``).
    steps : sequence of Step
        Names must be unique.

    Returns
    -------
    Plan
    """
    eps = check_epsilon(epsilon)
    steps = list(steps)
    if not steps:
        raise ValueError("steps must contain at least one Step")
    for s in steps:
        if not isinstance(s, Step):
            raise ValueError(f"steps must be Step objects, got {s!r}")
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"step names must be unique, got {names}")
    if math.isinf(eps):
        d = check_delta(delta, allow_zero=True)
        sps = tuple(
            StepPlan(s.name, float(s.weight), float(s.sensitivity), s.count, 0.0, math.inf, math.inf) for s in steps
        )
        return Plan(eps, d, sps, math.inf, math.inf)
    d = check_delta(delta)
    rho_total = epsilon_to_rho(eps, d)
    wsum = math.fsum(float(s.weight) for s in steps)
    for attempt in range(60):
        sps = []
        for s in steps:
            rho_step = rho_total * (float(s.weight) / wsum)
            rho_rel = rho_step / s.count
            sigma = sigma_for_rho(s.sensitivity, rho_rel)
            r = gaussian_rho(s.sensitivity, sigma)
            sps.append(StepPlan(s.name, float(s.weight), float(s.sensitivity), s.count, sigma, r, r * s.count))
        achieved_rho = math.fsum(_release_rhos(sps))
        achieved = rho_to_epsilon(achieved_rho, d)
        if achieved <= eps:
            return Plan(eps, d, tuple(sps), achieved_rho, achieved)
        rho_total *= 1.0 - 1e-9 * 2**attempt  # should not happen (margin in epsilon_to_rho); shave more
    raise RuntimeError("could not calibrate a plan below the target; please report this bug")


# ----------------------------------------------------------------------------------------------
# DP-SGD: Poisson-subsampled Gaussian
# ----------------------------------------------------------------------------------------------


def _dpsgd_event(noise_multiplier: float, sample_rate: float, steps: int):
    import dp_accounting

    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
        steps,
    )


def _check_dpsgd_args(sample_rate, steps):
    return check_fraction(sample_rate, "sample_rate", one=True), check_int(steps, "steps", minimum=1)


@functools.lru_cache(maxsize=4096)
def _dpsgd_epsilon_cached(z: float, q: float, t: int, d: float, accountant: str) -> float:
    from dp_accounting import pld, rdp

    if accountant == "rdp":
        acc = rdp.RdpAccountant()  # add/remove-one neighbouring relation
    elif accountant == "pld":
        acc = pld.PLDAccountant()
    else:
        raise ValueError(f"accountant must be 'rdp' or 'pld', got {accountant!r}")
    acc.compose(_dpsgd_event(z, q, t))
    return float(acc.get_epsilon(d))


def dpsgd_epsilon(noise_multiplier, sample_rate, steps, delta, *, accountant: str = "rdp") -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian releases (DP-SGD; Abadi et al. 2016).

    Each step samples every unit independently with probability ``sample_rate`` (q), clips each
    unit's contribution to L2 norm ``C`` and adds ``N(0, (z C)²)`` noise, ``z = noise_multiplier``.
    Accounted with ``dp_accounting`` (``RdpAccountant`` by default — Mironov 2017, Mironov, Talwar
    & Zhang 2019 — or ``PLDAccountant`` with ``accountant="pld"``), add/remove-one relation.

    Returns
    -------
    float
        ε at ``delta`` (``inf`` for ``noise_multiplier = 0``).
    """
    z = check_number(noise_multiplier, "noise_multiplier", low_inclusive=True)
    q, t = _check_dpsgd_args(sample_rate, steps)
    d = check_delta(delta)
    if z == 0:
        return math.inf
    return _dpsgd_epsilon_cached(z, q, t, d, accountant)


def dpsgd_noise_multiplier(
    epsilon, delta, sample_rate, steps, *, accountant: str = "rdp", rel_tol: float = 1e-3
) -> float:
    """Smallest noise multiplier ``z`` (to relative tolerance ``rel_tol``) with
    ``dpsgd_epsilon(z, sample_rate, steps, delta) <= epsilon`` (bisection, as opacus'
    ``get_noise_multiplier``). The returned ``z`` never yields ε above the target.
    ``epsilon = inf`` gives ``z = 0``.
    """
    eps = check_epsilon(epsilon)
    q, t = _check_dpsgd_args(sample_rate, steps)
    if math.isinf(eps):
        return 0.0
    d = check_delta(delta)

    def f(z):
        return dpsgd_epsilon(z, q, t, d, accountant=accountant)

    hi = 1.0
    while f(hi) > eps:
        hi *= 2.0
        if hi > 1e8:
            raise ValueError(
                f"cannot reach epsilon={eps} with sample_rate={q}, steps={t}: noise multiplier would exceed 1e8"
            )
    lo = hi / 2.0
    while lo > 1e-6 and f(lo) <= eps:
        hi, lo = lo, lo / 2.0
    # invariant: f(hi) <= eps (feasible); lo infeasible or tiny
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        if f(mid) <= eps:
            hi = mid
        else:
            lo = mid
    if f(hi) > eps:  # cannot happen (hi is feasible by construction)
        raise RuntimeError("dpsgd_noise_multiplier failed to find a feasible noise multiplier; please report this bug")
    return hi


# ----------------------------------------------------------------------------------------------
# Basic composition
# ----------------------------------------------------------------------------------------------


def basic_composition(guarantees) -> tuple[float, float]:
    """Basic composition of ``(ε_i, δ_i)``-DP mechanisms: ``(Σ ε_i, Σ δ_i)``
    (Dwork, Kenthapadi, McSherry, Mironov & Naor 2006; holds adaptively and, for (ε, δ)-DP,
    concurrently — Vadhan & Wang 2021, Lyu 2022).

    Parameters
    ----------
    guarantees : iterable of (epsilon, delta)
        ``epsilon >= 0`` (``inf`` allowed), ``delta`` in ``[0, 1]``.
    """
    eps: list[float] = []
    dels: list[float] = []
    for i, g in enumerate(guarantees):
        try:
            e, d = g
        except (TypeError, ValueError):
            raise ValueError(f"guarantees[{i}] must be an (epsilon, delta) pair, got {g!r}") from None
        e = check_number(e, f"guarantees[{i}] epsilon", low_inclusive=True, allow_inf=True)
        d = check_fraction(d, f"guarantees[{i}] delta", zero=True, one=True)
        eps.append(e)
        dels.append(d)
    return math.fsum(eps) if not any(math.isinf(e) for e in eps) else math.inf, min(1.0, math.fsum(dels))
