"""What the design review says of the laws a study will fit (``dcsl sweep plan``).

The x values of every law the analysis fits, from the study file (``study_design``), in the
analysis's own units and with its bootstrap; the warnings its fits will give about those x
values whatever the losses, in the fit's words (``law_check_findings``); and the lines a
simulation of them adds (``simulated_findings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pretrain.sizes import param_counts
from scaling.fit.checks import few_degrees_of_freedom, narrow_span
from sweeps.study import Study, shape_of

# Verdicts on a simulated law: identifiable in at least this share of draws is "yes",
# at least SHAKY_SHARE "fragile", below it "no" (and a warning).
SOLID_SHARE, SHAKY_SHARE = 0.8, 0.5
LAW_KINDS = {"size": 3, "ensemble": 2, "joint": 3, "data": 3}
# The laws whose failure a design warning explains (its line then carries the simulated share).
CAUSES = {"few-sizes": ("size", "joint"), "narrow-sizes": ("size",), "few-members": ("ensemble", "joint"),
          "few-budgets": ("data",)}
LAW_FIXES = {
    "size": "add sizes (>= 4, spanning >= 1 decade)",
    "ensemble": "train more members (>= 4)",
    "joint": "ensemble more sizes (>= 4) or train more members",
    "data": "add budgets (>= 4) over a wider range",
}


@dataclass(frozen=True)
class Finding:
    """One line of the review: an error (plan exits non-zero) or a warning, with its fix."""

    level: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level, "code": self.code, "message": self.message}


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"



def role_recipe(study: Study, role: str):  # noqa: ANN201 - a Recipe or None
    return next((r for r in study.recipes.values() if r.role == role), None)


def law_check_findings(study: Study, design) -> list[Finding]:  # noqa: ANN001 - a Design
    """What the fit will say about each law's x values whatever the losses (too few residual
    degrees of freedom, a span under a decade), in its words, once per law with the fix: the
    analysis repeats such a warning on every curve (the K-law of each size, say)."""
    if study.base is not None:
        return []
    laws = []
    reg = role_recipe(study, "regularized")
    if reg is not None:
        for x in dict.fromkeys(tuple(x) for _, x in design.size_laws):
            laws.append((f"recipe {reg.name}'s size law", x, "N", "add a size", False))
    if design.members and design.ensemble_sizes:
        laws.append(("each ensemble's K-law", tuple(range(1, design.members + 1)), "K",
                     "train more members", True))
        laws.append(("the double limit", design.ensemble_sizes, "N", "ensemble another size", True))
    if design.data_budgets:
        laws.append(("the standard data law", design.data_budgets, "D", "add a budget", True))
    out = []
    for name, x, symbol, fix, with_span in laws:
        # (too few points for any fit: the few-sizes/-members/-budgets lines say it)
        if (few := few_degrees_of_freedom(len(x))) is not None:
            out.append(Finding("warning", "few-dof", f"{name}: {few}; {fix}"))
        if with_span and len(x) > 1 and (narrow := narrow_span(x, symbol)) is not None:
            out.append(Finding("warning", "narrow-span", f"{name}: {narrow}; the fit will warn so "
                                                         f"on every such curve ({fix} to widen it)"))
    return out


def study_design(study: Study, vocab: int):  # noqa: ANN201 - a scaling.design.Design
    """The x values of every law the analysis will fit (``scaling.analysis``)."""
    from scaling.design import Design
    from sweeps.planning import member_cells

    def total(size: str) -> float:
        """The analysis's N of a size (total parameters unless the study says non-embedding)."""
        counts = param_counts(shape_of(study, size, vocab))
        return float(counts[0] if study.analysis.x_column == "n_params" else counts[1])

    size_laws = []
    reg = role_recipe(study, "regularized")
    if reg is not None and study.base is None:  # a base study fits no size or data law
        sizes = tuple(total(s) for s in reg.sizes or study.sizes)
        size_laws = [(b, sizes) for b in reg.budgets or study.budgets]
        size_laws += [(b, tuple(total(s) for s in reg.repeat_sizes)) for b in reg.repeat_budgets]
    cells = member_cells(study)
    std = role_recipe(study, "standard")
    data = (sorted({*(std.budgets or study.budgets), *std.repeat_budgets})
            if std is not None and study.base is None else [])
    return Design(size_laws=tuple(size_laws), members=study.ensembles.members if study.ensembles else 0,
                  ensemble_sizes=tuple(total(s) for s in dict.fromkeys(s for _, s in cells)),
                  ensemble_budgets=tuple(dict.fromkeys(b for b, _ in cells)), data_budgets=tuple(data),
                  main_budget=study.main_budget, bootstrap=study.analysis.bootstrap,
                  repeated=repeated_points(study, vocab, total) if study.base is None else ())


def repeated_points(study: Study, vocab: int, n_of) -> tuple:  # noqa: ANN001 - size -> N
    """Each recipe role's planned (N, D, U) points for its data-constrained law: every tuning
    cell's first round (a repeat of a tuned point stands in at the recipe's start, as the run
    count does); what later adaptive rounds add is not known yet."""
    from sweeps.planning import cells, next_points
    from sweeps.review.estimate import stand_in_point

    points: dict[str, set] = {}
    for recipe, budget, size in cells(study):
        if recipe.role not in ("standard", "regularized"):
            continue
        proposed = ([stand_in_point(study, recipe)] if recipe.at_tuned_point
                    else next_points(recipe, study.lattice, {}, set(), 0))
        for p in proposed:
            epochs = dict(p)["epochs"]
            points.setdefault(recipe.role, set()).add((n_of(size), float(budget * epochs), float(budget)))
    return tuple((role, tuple(sorted(p))) for role, p in points.items())


def parse_assumptions(texts: tuple[str, ...] | list[str]):  # noqa: ANN201 - scaling.design.Assumptions
    """``size=A,alpha,E``, ``ensemble=A,alpha``, ``joint=A,alpha,E``, ``data=A,alpha,E`` -> the
    laws to simulate; x is in the analysis's units: parameters, members, tokens."""
    from scaling.design import Assumptions
    from scaling.synthetic import Law

    given: dict[str, object] = {}
    for text in texts:
        kind, _, values = text.partition("=")
        kind = kind.strip()
        if kind not in LAW_KINDS:
            raise ValueError(f"--assume-law {text!r}: unknown law {kind!r}; use {', '.join(LAW_KINDS)}")
        try:
            numbers = [float(v) for v in values.split(",")]
        except ValueError:
            numbers = []
        if len(numbers) != LAW_KINDS[kind] or not all(math.isfinite(v) and v > 0 for v in numbers):
            shape = "A,alpha" if LAW_KINDS[kind] == 2 else "A,alpha,E"
            raise ValueError(f"--assume-law {text!r}: expected {kind}={shape} with positive numbers")
        given[kind] = tuple(numbers) if kind == "ensemble" else Law(*numbers)
    return Assumptions(**given)


def simulated_findings(simulation, design: list[Finding]) -> list[Finding]:  # noqa: ANN001
    """Warnings from a ``DesignSimulation``: a law identifiable in under half of the draws, a
    multiplier seldom shown above 1. Where a design warning already names the cause (too few
    sizes, members or budgets), the simulated share is added to that line instead of a new one.
    Returns the design findings (amended) followed by the new ones."""
    from pretrain.spec import human_tokens

    shaky = [sim for sim in simulation.laws if sim.identifiable_share < SHAKY_SHARE]
    kinds = [sim.law for sim in simulation.laws]

    def evidence(sim) -> str:  # noqa: ANN001
        where = f" at {'/'.join(human_tokens(b) for b in sim.budgets)}" if kinds.count(sim.law) > 1 else ""
        return f"{law_name(sim.law)}{where} {sim.identifiable_share:.0%}"

    amended, covered = [], set()
    for f in design:
        explained = [sim for sim in shaky if sim.law in CAUSES.get(f.code, ())]
        if explained:
            f = Finding(f.level, f.code, f"{f.message} (simulated, identifiable in "
                                         f"{', '.join(map(evidence, explained))} of {simulation.n_sims} draws)")
            covered.update(id(sim) for sim in explained)
        amended.append(f)
    out = [Finding("warning", f"unidentifiable-{sim.law}",
                   f"simulated: the {evidence(sim).rsplit(' ', 1)[0]} is identifiable in "
                   f"{sim.identifiable_share:.0%} of {sim.n_sims} draws ({count(len(sim.x), 'point')}): "
                   f"{LAW_FIXES[sim.law]}")
           for sim in shaky if id(sim) not in covered]
    shaky_kinds = {sim.law for sim in shaky}
    for m in simulation.multipliers:
        # A multiplier built on a law already warned about needs no line of its own.
        source = "size" if m.recipe == "regularized" else "joint"
        if m.above_one_share < SHAKY_SHARE and not shaky_kinds & {source, "data"}:
            out.append(Finding("warning", f"multiplier-{m.recipe}",
                               f"simulated: the {m.recipe} multiplier's interval lies above 1 in "
                               f"{m.above_one_share:.0%} of {m.n_sims} draws (true value {m.truth:.2g}): "
                               "the study may not show it; see the laws above"))
    return amended + out


def law_name(kind: str) -> str:
    return {"size": "regularized size law", "ensemble": "ensemble K-law", "joint": "double limit",
            "data": "standard data law"}[kind]


def verdict(share: float) -> str:
    return "yes" if share >= SOLID_SHARE else "fragile" if share >= SHAKY_SHARE else "no"
