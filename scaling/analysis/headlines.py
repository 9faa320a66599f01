"""The headline numbers of a study: what its report, the demo and `dcsl compare` open with."""

from __future__ import annotations

from scaling.analysis.study import StudyAnalysis
from scaling.fit.bootstrap import Estimate


def headline_estimates(analysis: StudyAnalysis) -> dict[str, Estimate]:
    """The numbers a report opens with, at the study's main budget, with their intervals."""
    budget = analysis.main_budget
    out: dict[str, Estimate] = {}
    if (best := analysis.best_standard.get(budget)) is not None:
        out["standard best"] = Estimate(best.loss)
    reg = analysis.regularized.get(budget)
    if reg is not None and len(reg.y):
        out["regularized best"] = Estimate(float(reg.y.min()))
        if reg.asymptote is not None:
            out["regularized asymptote E"] = reg.asymptote
    ensembles = [float(c.y[-1]) for (b, _), c in analysis.ensembles.items() if b == budget and len(c.y)]
    if ensembles:
        out["best ensemble"] = Estimate(min(ensembles))
    joint = analysis.joint.get(budget)
    if joint is not None and joint.asymptote is not None:
        out["double limit E"] = joint.asymptote
    for m in analysis.multipliers:
        if m.budget == budget:
            out[f"multiplier, {m.recipe}"] = m.value
    if not analysis.distill.empty:
        at = analysis.distill[analysis.distill["budget_tokens"] == budget]
        if not at.empty:
            out["best student"] = Estimate(float(at["student_loss"].min()))
    for recipe, law in analysis.repeated.items():
        if law.decay is not None:
            out[f"R_D*, {recipe}"] = law.decay
    return out
