"""Does a study show the paper's phenomena? Plain sentences, each 'shown' or 'not shown'.

The checks read the fitted analysis and never adjust a number; a phenomenon that a
study does not show is reported as not shown, with the numbers that decided it.
Differences smaller than ``noise`` (nats, about the seed-to-seed spread of a tiny
model's loss) are treated as no difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling.analysis.study import StudyAnalysis


@dataclass(frozen=True)
class Check:
    name: str
    shown: bool | None
    """None when the study has too little to decide."""
    detail: str

    def sentence(self) -> str:
        verdict = {True: "shown", False: "NOT shown", None: "undecided"}[self.shown]
        return f"{self.name}: {verdict} ({self.detail})"


def check_phenomena(analysis: StudyAnalysis, noise: float = 0.02) -> list[Check]:
    """The paper's six claims, checked at the study's main budget (where the full search ran),
    then what distillation gave (which the paper reports, and a study may not reproduce)."""
    budget = analysis.main_budget
    checks = [
        _standard_saturates(analysis, budget, noise),
        _regularized_improves(analysis, budget, noise),
        _ensembles_beat_singles(analysis, budget, noise),
        _ensembles_lower_asymptote(analysis, budget),
        _joint_lowest(analysis, budget),
        _multiplier_above_one(analysis),
    ]
    if not analysis.distill.empty:
        checks.append(_students_beat_standard(analysis))
    return checks


def _identified(fit) -> bool:  # noqa: ANN001 - a PowerLawFit or None
    """A fit whose asymptote means something: converged, identifiable, finite."""
    return fit is not None and fit.converged and fit.identifiable and bool(np.isfinite(fit.E))


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _standard_saturates(a: StudyAnalysis, budget: int | None, noise: float) -> Check:
    name = "standard recipe stops improving or overfits as size grows"
    curve = a.standard_curves.get(budget)
    if curve is None or len(curve.y) < 3:
        return Check(name, None, "fewer than 3 sizes")
    y = np.asarray(curve.y)
    gain_last = y[-2] - y[-1]
    shown = bool(np.argmin(y) < len(y) - 1 or gain_last < noise)
    return Check(name, shown, "best per size " + ", ".join(
        f"{label} {_fmt(v)}" for label, v in zip(curve.point_labels, y, strict=False)))


def _regularized_improves(a: StudyAnalysis, budget: int | None, noise: float) -> Check:
    name = "regularized recipe keeps improving with size, with a finite asymptote"
    curve = a.regularized.get(budget)
    if curve is None or len(curve.y) < 3:
        return Check(name, None, "fewer than 3 sizes")
    y = np.asarray(curve.y)
    monotone = bool(np.all(np.diff(y) < noise))
    improves = bool(y[-1] < y[0] - noise)
    fitted = _identified(curve.fit)
    detail = "tuned per size " + ", ".join(f"{v:.3f}" for v in y)
    if fitted:
        detail += f"; E = {curve.asymptote.format(3)}"
    return Check(name, monotone and improves and fitted, detail)


def _ensembles_beat_singles(a: StudyAnalysis, budget: int | None, noise: float) -> Check:
    name = "ensembles beat single models"
    curves = [c for (b, _), c in a.ensembles.items() if b == budget]
    if not curves:
        return Check(name, None, "no ensembles")
    beats = [bool(c.y[-1] < c.y[0] - noise / 2) for c in curves]
    detail = "; ".join(f"{c.size}: K=1 {_fmt(c.y[0])} -> K={len(c.y)} {_fmt(c.y[-1])}" for c in curves)
    return Check(name, all(beats), detail)


def _ensembles_lower_asymptote(a: StudyAnalysis, budget: int | None) -> Check:
    name = "ensembles have a lower asymptote than single models"
    curves = [c for (b, _), c in a.ensembles.items() if b == budget and _identified(c.fit)]
    reg, joint = a.regularized.get(budget), a.joint.get(budget)
    if reg is not None and _identified(reg.fit) and joint is not None and _identified(joint.fit):
        return Check(name, bool(joint.fit.E < reg.fit.E),
                     f"double limit {_fmt(joint.fit.E)} vs regularized E {_fmt(reg.fit.E)}")
    if curves and reg is not None:
        # Without both size limits: the best infinite-ensemble loss against the best tuned model.
        best_k = min(c.fit.E for c in curves)
        return Check(name, bool(best_k < min(reg.y)),
                     f"best K-asymptote {_fmt(best_k)} vs best tuned single model {_fmt(min(reg.y))}")
    return Check(name, None, "no identifiable K- or size-asymptotes")


def _joint_lowest(a: StudyAnalysis, budget: int | None) -> Check:
    name = "the joint (ensemble x size) asymptote is the lowest"
    joint, reg, std = a.joint.get(budget), a.regularized.get(budget), a.best_standard.get(budget)
    if joint is None or not _identified(joint.fit) or std is None:
        return Check(name, None, "no identifiable double limit (see the fit warnings)")
    others = {"standard best": std.loss}
    if reg is not None and _identified(reg.fit):
        others["regularized E"] = reg.fit.E
    detail = f"joint E {_fmt(joint.fit.E)} vs " + ", ".join(f"{k} {_fmt(v)}" for k, v in others.items())
    return Check(name, all(joint.fit.E < v for v in others.values()), detail)


def _multiplier_above_one(a: StudyAnalysis) -> Check:
    """Shown only when every multiplier's whole interval lies above 1: a point estimate above 1
    whose interval reaches below it is undecided, not shown."""
    name = "effective-data multiplier of the regularized and joint recipes above 1"
    mults = [m for m in a.multipliers if m.recipe in ("regularized", "joint")]
    if not mults:
        return Check(name, None, "no identifiable regularized or joint asymptote to convert")
    detail = ", ".join(f"{m.recipe}@{m.budget:,}: {m.value.format(2)}" for m in mults)
    law = a.data_laws.get("standard")
    if law is not None and law.fit is not None and law.fit.floorless:
        detail += "; the standard data law shows no floor, so these are conservative"
    if not all(m.value.has_interval for m in mults):
        return Check(name, None, detail + " (no interval: run the bootstrap)")
    if all(m.value.low > 1 for m in mults):
        return Check(name, True, detail)
    if any(m.value.high < 1 for m in mults):
        return Check(name, False, detail)
    return Check(name, None, detail + " (an interval reaches below 1)")


def _students_beat_standard(a: StudyAnalysis) -> Check:
    """A student against the standard recipe's best model at the student's budget."""
    name = "distilled students beat the standard recipe at the same budget"
    parts, verdicts = [], []
    for row in a.distill.itertuples():
        best = a.best_standard.get(int(row.budget_tokens))
        if best is None:
            continue
        verdicts.append(bool(row.student_loss < best.loss))
        parts.append(f"{row.recipe} {_fmt(row.student_loss)} vs standard {_fmt(best.loss)}")
    if not verdicts:
        return Check(name, None, "no standard run at the students' budget")
    return Check(name, all(verdicts), "; ".join(parts))
