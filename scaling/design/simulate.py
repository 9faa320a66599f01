"""Design review by simulation: can a planned study identify the laws it will fit?

Before any compute, a study's design is only x values: the parameter counts of its sizes,
its member counts K = 1..members, its data budgets. For each law the analysis will fit
(``scaling.analysis.study``), this draws points from an assumed law at exactly those x, adds
Gaussian noise at the seed-to-seed level, refits them with the analysis's own fitter
(``fit_power_law`` with the study's bootstrap, as its analysis fits) and counts how often
the fit is identifiable and how wide the 95% interval of its asymptote E comes out.

Default laws (``DEFAULT_*``) are the paper's shapes scaled to the design's x range, checked
against the demo's seed-0 results:

- regularized size law L(N) = A / N^1 + 3.0, with A such that the smallest size sits
  0.4 nats above E (demo: 3.078 at 47.7k params against E 2.72; paper: ~0.4 at 150m);
- ensemble K-law L(K) = 0.2 / K^1 + E_K(N): infinitely many members gain 0.2 nats over one
  (demo: 0.14-0.15 from K = 1 to 4, i.e. 0.19-0.2 at K -> inf);
- joint law (the K-asymptotes over N): the size law lowered by that gain;
- standard data law L(D) = A / D^0.3 + E_std: the standard recipe's best loss at the main
  budget is 0.2 nats above the regularized asymptote (demo: 2.92 vs 2.72) and 1.0 nats above
  E_std, so the true multipliers are (1.0 / 0.8)^(1 / 0.3) = 2.1 for the regularized recipe
  and 5.5 for the double limit (demo: 1.7 and 2.3, read off a floorless law, so low), and
  the standard loss falls by 1.3 nats over 16x less data (demo, 8k to 128k: 1.32).

Noise defaults to 0.01 nats per point (demo: two seeds differ by 0.004-0.022 per size).
The ensembled sizes' K-laws share one design and differ only in E_K(N), so one simulation (at
the middle size) stands for all; the double limit refits the K-asymptotes over N, each drawn
with a simulated K-fit's error and bootstrap replicates, propagated as the analysis does.
Pure functions: arrays in, frozen results out, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from scaling.analysis.datalaws import effective_data_multiplier
from scaling.design.fits import default_workers, fit_all
from scaling.design.repeated import RepeatedSimulation, simulate_repeated
from scaling.fit.bootstrap import derive_seed, json_number, percentile_interval
from scaling.fit.power_law import PowerLawFit
from scaling.synthetic import Law

DEFAULT_NOISE = 0.01
DEFAULT_SIMS = 40
DEFAULT_N_BOOT = 100
LEVEL = 0.95
DEFAULT_SIZE_ALPHA, DEFAULT_SIZE_GAP, DEFAULT_SIZE_E = 1.0, 0.4, 3.0
DEFAULT_ENSEMBLE_GAIN, DEFAULT_ENSEMBLE_ALPHA = 0.2, 1.0
DEFAULT_DATA_ALPHA, DEFAULT_DATA_GAP, DEFAULT_STANDARD_ABOVE_E = 0.3, 1.0, 0.2
# A design is called identifiable when at least this share of simulations identifies the law.
IDENTIFIABLE_SHARE = 0.5


@dataclass(frozen=True)
class Design:
    """The x values of every law a study will fit (empty tuples: that law is not fitted)."""

    size_laws: tuple[tuple[int, tuple[float, ...]], ...] = ()
    """(budget, parameter counts of its sizes): the regularized recipe's size law per budget."""
    members: int = 0
    ensemble_sizes: tuple[float, ...] = ()
    ensemble_budgets: tuple[int, ...] = ()
    data_budgets: tuple[int, ...] = ()
    """The standard recipe's budgets (its data law's x)."""
    main_budget: int | None = None
    """Where multipliers are read (the study's main budget)."""
    bootstrap: str = "residual"
    """The bootstrap the study's analysis fits with (its ``analysis`` section)."""
    repeated: tuple[tuple[str, tuple[tuple[float, float, float], ...]], ...] = ()
    """(recipe role, its planned (N, D, U) points): the data-constrained law per recipe."""


@dataclass(frozen=True)
class Assumptions:
    """The laws a simulation draws from; None means the default scaled to the design."""

    size: Law | None = None
    ensemble: tuple[float, float] | None = None
    """(gain A, alpha) of L(K) = A / K^alpha + E_K(N)."""
    joint: Law | None = None
    data: Law | None = None


@dataclass(frozen=True)
class Laws:
    """Assumptions resolved against a design: every law explicit."""

    size: Law
    ensemble: tuple[float, float]
    joint: Law
    data: Law | None
    defaults: tuple[str, ...] = ()
    """Which of the laws are defaults (not given by the user)."""

    def k_law(self, n_params: float) -> Law:
        gain, alpha = self.ensemble
        return Law(gain, alpha, float(self.joint(n_params)))


def resolve_laws(design: Design, given: Assumptions = Assumptions()) -> Laws:
    """Defaults for the laws the user did not give, scaled to the design's x ranges."""
    defaults = []
    size = given.size
    if size is None:
        n_min = min([n for _, x in design.size_laws for n in x] or design.ensemble_sizes or [1.0])
        size = Law(DEFAULT_SIZE_GAP * n_min**DEFAULT_SIZE_ALPHA, DEFAULT_SIZE_ALPHA, DEFAULT_SIZE_E)
        defaults.append("size")
    ensemble = given.ensemble or (DEFAULT_ENSEMBLE_GAIN, DEFAULT_ENSEMBLE_ALPHA)
    if given.ensemble is None:
        defaults.append("ensemble")
    joint = given.joint
    if joint is None:
        # K = 1 stays on the size law: the K-asymptote is the size law lowered by the gain.
        joint = replace(size, E=size.E - ensemble[0])
        defaults.append("joint")
    data = given.data
    if data is None and design.data_budgets:
        main = design.main_budget or max(design.data_budgets)
        floor = size.E + DEFAULT_STANDARD_ABOVE_E - DEFAULT_DATA_GAP
        data = Law(DEFAULT_DATA_GAP * main**DEFAULT_DATA_ALPHA, DEFAULT_DATA_ALPHA, floor)
        defaults.append("data")
    return Laws(size, ensemble, joint, data, tuple(defaults))


@dataclass(frozen=True, eq=False)
class LawSimulation:
    """How one law fared over the simulated draws of a design."""

    law: str
    """"size", "ensemble", "joint" or "data"."""
    x: tuple[float, ...]
    truth: Law
    n_sims: int
    budgets: tuple[int, ...]
    """The budgets this law is fitted at (the same design and truth at each)."""
    fitted: int
    """Draws where a fit ran at all (it needs >= 3 points)."""
    identifiable: int
    median_E: float | None
    median_E_width: float | None
    """Median width of the 95% interval of E (None: no bootstrap, e.g. fewer than 4 points)."""
    E_coverage: float | None
    """Share of draws whose E interval holds the true E."""
    fits: tuple[PowerLawFit | None, ...] = field(default=(), repr=False)
    observed: tuple[np.ndarray, ...] = field(default=(), repr=False)

    @property
    def identifiable_share(self) -> float:
        return self.identifiable / self.n_sims if self.n_sims else 0.0

    @property
    def verdict(self) -> str:
        return "identifiable" if self.identifiable_share >= IDENTIFIABLE_SHARE else "not identifiable"

    def to_dict(self) -> dict[str, object]:
        return {"law": self.law, "budgets": list(self.budgets), "x": [float(v) for v in self.x],
                "n_points": len(self.x),
                "truth": {"A": self.truth.A, "alpha": self.truth.alpha, "E": self.truth.E},
                "n_sims": self.n_sims, "fitted": self.fitted, "identifiable": self.identifiable,
                "identifiable_share": self.identifiable_share, "verdict": self.verdict,
                "median_E": json_number(self.median_E), "median_E_width": json_number(self.median_E_width),
                "E_coverage": json_number(self.E_coverage)}


@dataclass(frozen=True)
class MultiplierSimulation:
    """The effective-data multiplier of a recipe at the main budget over the draws."""

    recipe: str
    budget: int
    truth: float
    n_sims: int
    computed: int
    """Draws where the analysis would compute it (both laws identified, or a floorless
    standard law)."""
    above_one: int
    """Draws whose interval lies above 1 (the recipe shown to beat the standard one)."""
    median_low: float | None
    median_high: float | None

    @property
    def above_one_share(self) -> float:
        return self.above_one / self.n_sims if self.n_sims else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"recipe": self.recipe, "budget": self.budget, "truth": json_number(self.truth),
                "n_sims": self.n_sims, "computed": self.computed, "above_one": self.above_one,
                "above_one_share": self.above_one_share, "median_low": json_number(self.median_low),
                "median_high": json_number(self.median_high)}


@dataclass(frozen=True, eq=False)
class DesignSimulation:
    laws: tuple[LawSimulation, ...]
    """In reading order: size laws (one per distinct set of sizes), the K-law, the double limit,
    the standard data law."""
    multipliers: tuple[MultiplierSimulation, ...]
    assumed: Laws
    noise: float
    n_sims: int
    n_boot: int
    seed: int
    repeated: tuple[RepeatedSimulation, ...] = ()
    """The data-constrained law of each recipe role (scaling.design.repeated)."""

    def law(self, kind: str, budget: int | None = None) -> LawSimulation | None:
        """The simulation of one kind of law (at ``budget`` where given)."""
        return next((s for s in self.laws if s.law == kind and (budget is None or budget in s.budgets)), None)

    def to_dict(self) -> dict[str, object]:
        a = self.assumed
        assumed = {"size": a.size, "joint": a.joint, "data": a.data}
        return {"noise": self.noise, "n_sims": self.n_sims, "n_boot": self.n_boot, "seed": self.seed,
                "assumed": {**{k: (None if v is None else {"A": v.A, "alpha": v.alpha, "E": v.E})
                               for k, v in assumed.items()},
                            "ensemble": {"A": a.ensemble[0], "alpha": a.ensemble[1]},
                            "defaults": list(a.defaults)},
                "laws": [s.to_dict() for s in self.laws],
                "multipliers": [m.to_dict() for m in self.multipliers],
                "repeated": [r.to_dict() for r in self.repeated]}


class _Draws(NamedTuple):
    """The noisy points of one law's draws, and the fits they ask for."""

    law: str
    x: np.ndarray
    truth: Law
    budgets: tuple[int, ...]
    observed: list[np.ndarray]
    tasks: list[tuple | None]
    """Arguments of ``_fit`` per draw (None: too few points left to fit)."""

    def summarise(self, fits: list[PowerLawFit | None]) -> LawSimulation:
        return _summarise(self.law, self.x, self.truth, self.budgets, fits, self.observed)


def _point_draws(law: str, x: np.ndarray | tuple, truth: Law, budgets: tuple[int, ...], noise: float,
                 n_sims: int, n_boot: int, seed: int) -> _Draws:
    xs = np.asarray(x, dtype=float)
    label = f"design:{law}:{','.join(f'{v:g}' for v in xs)}"
    rng = np.random.default_rng(derive_seed(seed, label))
    observed = [truth(xs) + rng.normal(0.0, noise, xs.size) for _ in range(n_sims)]
    tasks = [(xs, y, n_boot, derive_seed(seed, f"{label}:{i}")) for i, y in enumerate(observed)]
    return _Draws(law, xs, truth, budgets, observed, tasks)


def _joint_draws(n_params: np.ndarray | tuple, k_sim: LawSimulation, laws: Laws, budgets: tuple[int, ...],
                 n_sims: int, n_boot: int, seed: int) -> _Draws:
    """The double limit: K-asymptotes over N, each drawn as the truth plus the error of a
    simulated K-fit (with that fit's bootstrap replicates, shifted alike, propagated into the
    joint fit's bootstrap as the analysis does). A size whose K-law could not be fitted drops
    out, as in the analysis."""
    xs = np.asarray(n_params, dtype=float)
    rng = np.random.default_rng(derive_seed(seed, "design:joint"))
    observed, tasks = [], []
    for i in range(n_sims):
        keep, ys, samples = [], [], []
        for j, n in enumerate(xs):
            k_fit = k_sim.fits[int(rng.integers(len(k_sim.fits)))] if k_sim.fits else None
            if k_fit is None:
                continue
            y = float(laws.joint(n)) + (k_fit.E - k_sim.truth.E)
            keep.append(j)
            ys.append(y)
            samples.append(None if k_fit.samples is None else k_fit.samples[:, 2] - k_fit.E + y)
        y_arr = np.asarray(ys)
        observed.append(y_arr)
        y_samples = (np.column_stack(samples) if samples and all(s is not None for s in samples)
                     and n_boot > 0 else None)
        fittable = len(keep) >= 3 and bool(np.all(y_arr > 0))
        tasks.append((xs[keep], y_arr, n_boot, derive_seed(seed, f"design:joint:{i}"), y_samples)
                     if fittable else None)
    return _Draws("joint", xs, laws.joint, budgets, observed, tasks)


def simulate_law(law: str, x: np.ndarray | tuple, truth: Law, *, budgets: tuple[int, ...] = (),
                 noise: float = DEFAULT_NOISE, n_sims: int = DEFAULT_SIMS, n_boot: int = DEFAULT_N_BOOT,
                 seed: int = 0, workers: int = 1) -> LawSimulation:
    """Draw ``n_sims`` noisy copies of ``truth`` at ``x``, refit each, and summarise."""
    draws = _point_draws(law, x, truth, budgets, noise, n_sims, n_boot, seed)
    return draws.summarise(fit_all(draws.tasks, workers))


def simulate_multiplier(recipe: str, budget: int, recipe_sim: LawSimulation, data_sim: LawSimulation,
                        ) -> MultiplierSimulation:
    """The recipe's asymptote against the standard data law, draw by draw (draw i of each law
    is independent, as separate runs are). The standard loss is the data law's drawn point at
    ``budget``; the analysis computes a multiplier only from an identified recipe asymptote and
    an identified or floorless standard law."""
    data, where = data_sim.truth, int(np.argmin(np.abs(np.asarray(data_sim.x) - budget)))
    truth = data.inverse(recipe_sim.truth.E) / data.inverse(float(data(budget)))
    lows, highs, computed, above = [], [], 0, 0
    for fit, law, y in zip(recipe_sim.fits, data_sim.fits, data_sim.observed, strict=True):
        if fit is None or law is None or not fit.identifiable or not (law.identifiable or law.floorless):
            continue
        computed += 1
        if fit.samples is None or law.samples is None:
            continue
        samples = effective_data_multiplier(fit.samples[:, 2], float(y[where]), *law.samples.T)
        low, high = percentile_interval(samples, LEVEL)
        lows.append(low)
        highs.append(high)
        above += bool(low > 1)
    return MultiplierSimulation(recipe, budget, float(truth), recipe_sim.n_sims, computed, above,
                                _median(lows), _median(highs))


def simulate_design(design: Design, given: Assumptions = Assumptions(), *, noise: float = DEFAULT_NOISE,
                    n_sims: int = DEFAULT_SIMS, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                    workers: int | None = None) -> DesignSimulation:
    """Simulate every law the design fits, and the multipliers at its main budget.

    ``workers`` processes share the fits (default: the cores this process may use, at most
    4; 1 fits in this process). Every draw has its own seed, so results never depend on it.
    """
    if noise < 0 or not math.isfinite(noise):
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    if n_sims < 1:
        raise ValueError(f"need at least 1 simulation, got {n_sims}")
    workers = default_workers() if workers is None else workers
    laws = resolve_laws(design, given)
    draws: list[_Draws] = []
    # Budgets whose size laws have the same sizes share one simulation (the truth does not
    # depend on the budget).
    groups: dict[tuple[float, ...], list[int]] = {}
    for budget, x in design.size_laws:
        groups.setdefault(tuple(sorted(x)), []).append(budget)
    for x, budgets in groups.items():
        draws.append(_point_draws("size", x, laws.size, tuple(budgets), noise, n_sims, n_boot, seed))
    ensembles = bool(design.members and design.ensemble_sizes)
    if ensembles:
        middle = sorted(design.ensemble_sizes)[len(design.ensemble_sizes) // 2]
        draws.append(_point_draws("ensemble", tuple(range(1, design.members + 1)), laws.k_law(middle),
                                  design.ensemble_budgets, noise, n_sims, n_boot, seed))
    if design.data_budgets and laws.data is not None:
        data_budgets = tuple(sorted(design.data_budgets))
        draws.append(_point_draws("data", data_budgets, laws.data, data_budgets, noise, n_sims, n_boot, seed))
    fits = fit_all([t for d in draws for t in d.tasks], workers, design.bootstrap)
    out = [d.summarise(fits[i * n_sims:(i + 1) * n_sims]) for i, d in enumerate(draws)]
    if ensembles:
        k_sim = next(s for s in out if s.law == "ensemble")
        joint = _joint_draws(sorted(design.ensemble_sizes), k_sim, laws, design.ensemble_budgets, n_sims,
                             n_boot, seed)
        out.insert(out.index(k_sim) + 1,
                   joint.summarise(fit_all(joint.tasks, workers, design.bootstrap)))
    repeated = tuple(simulate_repeated(recipe, points, noise=noise, n_sims=n_sims, n_boot=n_boot,
                                       seed=seed, workers=workers, bootstrap=design.bootstrap)
                     for recipe, points in design.repeated)
    result = DesignSimulation(tuple(out), (), laws, noise, n_sims, n_boot, seed, repeated)
    main, data = design.main_budget, result.law("data")
    multipliers = []
    if data is not None and main in data.budgets:
        for recipe, kind in (("regularized", "size"), ("joint", "joint")):
            source = result.law(kind, main)
            if source is not None:
                multipliers.append(simulate_multiplier(recipe, main, source, data))
    return replace(result, multipliers=tuple(multipliers))


def _summarise(law: str, xs: np.ndarray, truth: Law, budgets: tuple[int, ...], fits: list,
               observed: list) -> LawSimulation:
    done = [f for f in fits if f is not None]
    intervals = [f.intervals["E"] for f in done
                 if "E" in f.intervals and all(map(math.isfinite, f.intervals["E"]))]
    widths = [hi - lo for lo, hi in intervals]
    coverage = (sum(lo <= truth.E <= hi for lo, hi in intervals) / len(intervals)) if intervals else None
    return LawSimulation(law, tuple(float(v) for v in xs), truth, len(fits), tuple(budgets), len(done),
                         sum(bool(f.identifiable) for f in done), _median([f.E for f in done]),
                         _median(widths), coverage, tuple(fits), tuple(observed))


def _median(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.median(finite)) if finite else None
