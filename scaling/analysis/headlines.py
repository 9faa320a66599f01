"""The headline numbers of a study: what its report, the demo and `dcsl compare` open with.

One rule picks each number, so the three cannot disagree. At a budget: the standard recipe's
best run over sizes, the best tuned (regularized) model, the best measured ensemble and the
best student, each with the run it comes from; the regularized asymptote and the double limit
where their fits identify them (a fit the data do not identify gives no limit, never its raw
E), the double limit only beside an ensemble; and every recipe's effective-data multiplier at
that budget (never another budget's). Across budgets: each data law's infinite-data limit and
each recipe's repeated-data decay R_D*.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.analysis.study import StudyAnalysis
from scaling.fit.bootstrap import Estimate

MULTIPLIER = "multiplier, "
"""Prefix of a recipe's multiplier headline: 'multiplier, regularized'."""
DATA_LIMIT = "infinite-data limit, "
"""Prefix of a data law's limit headline: 'infinite-data limit, standard'."""


@dataclass(frozen=True)
class Headline:
    estimate: Estimate
    """The number, with its interval where the analysis has one (a best run's has none)."""
    source: str = ""
    """What gives it: a size ('tiny-400k'), an ensemble ('tiny-200k, K = 4'), a recipe
    ('distill-ensemble'); '' for a fitted limit."""


def headline_estimates(analysis: StudyAnalysis) -> dict[str, Headline]:
    """The study's headline numbers by name, in reading order: the main budget's (see
    `budget_headlines`), then each data law's infinite-data limit and each recipe's R_D*."""
    out = budget_headlines(analysis, analysis.main_budget)
    for recipe, curve in analysis.data_laws.items():
        if curve.fit is not None and curve.asymptote is not None:
            out[DATA_LIMIT + recipe] = Headline(curve.asymptote)
    for recipe, law in analysis.repeated.items():
        if law.decay is not None:
            out[f"R_D*, {recipe}"] = Headline(law.decay)
    return out


def budget_headlines(analysis: StudyAnalysis, budget: int | None) -> dict[str, Headline]:
    """The headline numbers at one budget (empty for a budget without runs)."""
    out: dict[str, Headline] = {}
    if (best := analysis.best_standard.get(budget)) is not None:
        out["standard best"] = Headline(Estimate(best.loss), best.size)
    reg = analysis.regularized.get(budget)
    if reg is not None and len(reg.y):
        i = int(reg.y.argmin())
        out["regularized best"] = Headline(Estimate(float(reg.y[i])), reg.point_labels[i])
        if reg.asymptote is not None:
            out["regularized asymptote E"] = Headline(reg.asymptote)
    # An ensemble's measured loss is its largest K's; the best is the lowest over sizes.
    ensembles = [(float(c.y[-1]), size, int(c.x[-1])) for (b, size), c in analysis.ensembles.items()
                 if b == budget and len(c.y)]
    if ensembles:
        loss, size, k = min(ensembles)
        out["best ensemble"] = Headline(Estimate(loss), f"{size}, K = {k}")
        joint = analysis.joint.get(budget)
        if joint is not None and joint.asymptote is not None:
            out["double limit E"] = Headline(joint.asymptote)
    for m in analysis.multipliers:
        if m.budget == budget:
            out[MULTIPLIER + m.recipe] = Headline(m.value, m.recipe)
    if not analysis.distill.empty:
        at = analysis.distill[analysis.distill["budget_tokens"] == budget]
        if not at.empty:
            top = at.loc[at["student_loss"].idxmin()]
            out["best student"] = Headline(Estimate(float(top["student_loss"])), str(top["recipe"]))
    return out
