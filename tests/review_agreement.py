"""Does ``dcsl sweep plan``'s design review predict the fits a study then gets?

A law the review finds identifiable in most simulated draws (>= 80%) must come out
identified, and one it finds identifiable in fewer than half must not; a fragile one may go
either way. Where the review checks the x values alone (a span under a decade, one residual
degree of freedom), the fit's warnings must say the same. A standard data law without a
floor is reported by the analysis as a usable pure power law, not an identified asymptote:
the review's simulation assumes a floor, and its line says so.
"""

from __future__ import annotations

import re

from scaling.analysis import StudyAnalysis
from sweeps.review.lawreview import SHAKY_SHARE, SOLID_SHARE
from sweeps.review.planreview import PlanReview

CHECKED = (r"spans \d+\.\d+ decades \(< 1\): exponent and asymptote trade off",
           r"\d+ points for 3 parameters leave 1 residual degree of freedom")


def disagreements(review: PlanReview, analysis: StudyAnalysis) -> list[str]:
    out = []
    sim = review.simulation
    for law in sim.laws:
        share = law.identifiable_share
        for name, fit in _outcomes(analysis, law.law, law.budgets):
            identified = fit is not None and fit.identifiable
            if share < SHAKY_SHARE and identified:
                out.append(f"{name}: plan {share:.0%}, but the fit identified it")
            if share >= SOLID_SHARE and not identified and not (law.law == "data" and fit is not None
                                                                and fit.floorless):
                out.append(f"{name}: plan {share:.0%}, but the fit did not identify it")
    planned = " ".join(f.message for f in review.findings)
    for curve in analysis.curves():
        for warning in curve.warnings:
            for pattern in CHECKED:
                found = re.search(pattern, warning)
                if found and found.group(0) not in planned and curve.recipe in ("regularized", "ensemble"):
                    out.append(f"{curve.name}: the fit warns '{found.group(0)}', the plan does not")
    for rep in sim.repeated:
        law = analysis.repeated.get(rep.recipe)
        decay = None if law is None else law.decay
        if rep.missing and decay is not None and len(law.points) <= rep.n_points:
            out.append(f"repeated data ({rep.recipe}): plan says {rep.missing}, the fit identified R_D")
        if not rep.missing and rep.identified_share < SHAKY_SHARE and decay is not None:
            out.append(f"repeated data ({rep.recipe}): plan {rep.identified_share:.0%}, fit identified R_D")
        if not rep.missing and rep.identified_share >= SOLID_SHARE and decay is None:
            out.append(f"repeated data ({rep.recipe}): plan {rep.identified_share:.0%}, fit did not identify R_D")
    return out


def _outcomes(analysis: StudyAnalysis, kind: str, budgets: tuple[int, ...]) -> list[tuple[str, object]]:
    if kind == "size":
        curves = [analysis.regularized.get(b) for b in budgets]
    elif kind == "ensemble":
        curves = [c for (b, _), c in analysis.ensembles.items() if b in budgets]
    elif kind == "joint":
        curves = [analysis.joint.get(b) for b in budgets]
    else:
        curves = [analysis.data_laws.get("standard")]
    return [(c.name, c.fit) for c in curves if c is not None]
