"""Two studies side by side: two seeds, two corpora, a CPU miniature against its cluster study.

Each study is analysed as its own report would be (its analysis.json's settings); the
comparison lines up what both have: the headline numbers (scaling.analysis.headlines, the
ones each report opens with) with their intervals, every law both fitted (its parameters,
and whether their intervals overlap), and the reference study's phenomena. Intervals that do not overlap are the differences a
reader may take as real; overlapping ones are not evidence either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from scaling.analysis.headlines import headline_estimates
from scaling.analysis.phenomena import check_phenomena
from scaling.analysis.study import StudyAnalysis
from scaling.fit.bootstrap import Estimate


@dataclass(frozen=True, eq=False)
class Comparison:
    labels: tuple[str, str]
    headline: pd.DataFrame
    """quantity, A, B, overlap ("yes", "no", or "" where either has no interval)."""
    laws: pd.DataFrame
    """curve, parameter, A, B, overlap: every law both studies fitted."""
    phenomena: pd.DataFrame
    """phenomenon, A, B: each study's verdict."""

    def to_dict(self) -> dict[str, object]:
        return {"labels": list(self.labels),
                **{name: getattr(self, name).to_dict(orient="records")
                   for name in ("headline", "laws", "phenomena")}}


def overlap(a: Estimate, b: Estimate) -> str:
    if not (a.has_interval and b.has_interval):
        return ""
    return "yes" if a.low <= b.high and b.low <= a.high else "no"


def compare(a: StudyAnalysis, b: StudyAnalysis, labels: tuple[str, str] = ("A", "B")) -> Comparison:
    ha, hb = ({name: h.estimate for name, h in headline_estimates(x).items()} for x in (a, b))
    headline = pd.DataFrame([{"quantity": key, labels[0]: _text(ha.get(key)), labels[1]: _text(hb.get(key)),
                              "intervals overlap": overlap(ha[key], hb[key]) if key in ha and key in hb else ""}
                             for key in dict.fromkeys([*ha, *hb])])
    curves_a = {c.name: c for c in a.curves() if c.fit is not None}
    curves_b = {c.name: c for c in b.curves() if c.fit is not None}
    rows = []
    for name in (n for n in curves_a if n in curves_b):
        fa, fb = curves_a[name].fit, curves_b[name].fit
        for param in ("A", "alpha", "E"):
            ea, eb = _estimate(fa, param), _estimate(fb, param)
            rows.append({"curve": name, "parameter": param, labels[0]: ea.format(4),
                         labels[1]: eb.format(4), "intervals overlap": overlap(ea, eb),
                         "identified": f"{'yes' if fa.identifiable else 'NO'} / "
                                       f"{'yes' if fb.identifiable else 'NO'}"})
    verdicts = {True: "shown", False: "NOT shown", None: "undecided"}
    pa, pb = check_phenomena(a), check_phenomena(b)
    phenomena = pd.DataFrame([{"phenomenon": x.name, labels[0]: verdicts[x.shown], labels[1]: verdicts[y.shown]}
                              for x, y in zip(pa, pb, strict=False) if x.name == y.name])
    return Comparison(labels, headline, pd.DataFrame(rows), phenomena)


def _estimate(fit, name: str) -> Estimate:  # noqa: ANN001 - a PowerLawFit
    low, high = fit.intervals.get(name, (math.nan, math.nan))
    return Estimate(float(getattr(fit, name)), low, high)


def _text(estimate: Estimate | None) -> str:
    return "" if estimate is None else estimate.format(4)
