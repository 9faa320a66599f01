"""Tables and JSON of a StudyAnalysis: what `dcsl fit` prints and the report shows.

Numbers in tables are formatted as text ("3.412 [3.380, 3.455]") because the tables are
read by people; the JSON keeps them as numbers with separate interval ends.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling.analysis import StudyAnalysis
from scaling.bootstrap import Estimate, format_number, json_number
from scaling.curves import Curve
from scaling.downstream import downstream_pivot
from scaling.units import format_count


def interval_header(analysis: StudyAnalysis) -> str:
    """'[95% CI]' when the analysis has intervals, '' otherwise."""
    return f" [{analysis.settings.level:.0%} CI]" if analysis.settings.n_boot > 0 else ""


def x_description(curve: Curve, analysis: StudyAnalysis) -> str:
    if curve.x_symbol == "N":
        unit = analysis.n_unit.suffix
        return f"N ({analysis.settings.x_column}{', ' + unit if unit else ''})"
    return {"K": "K (members)", "D": "D (tokens)"}.get(curve.x_symbol, curve.x_symbol)


def laws_table(analysis: StudyAnalysis, curves: list[Curve] | None = None) -> pd.DataFrame:
    """One row per attempted fit: the law, each parameter with its interval, diagnostics."""
    ci = interval_header(analysis)
    rows = []
    for curve in curves if curves is not None else analysis.curves():
        row = {"curve": curve.name, "x": x_description(curve, analysis),
               "points": len(curve.x)}
        law = curve.fit
        if law is None:
            row.update({"law": "not fitted", f"A{ci}": "", f"alpha{ci}": "", f"E{ci}": "",
                        "converged": "", "identified": "", "held-out error": ""})
        else:
            row["law"] = law.law(curve.x_symbol)
            for name, value in (("A", law.A), ("alpha", law.alpha), ("E", law.E)):
                low, high = law.intervals.get(name, (float("nan"), float("nan")))
                row[f"{name}{ci}"] = Estimate(value, low, high).format(4)
            row["converged"] = "yes" if law.converged else "NO"
            row["identified"] = "yes" if law.identifiable else "NO"
            row["held-out error"] = ("n/a" if law.extrapolation_error is None
                                     else f"{law.extrapolation_error:+.2%}")
        row["warnings"] = len(curve.warnings)
        rows.append(row)
    return pd.DataFrame(rows)


def asymptotes_table(analysis: StudyAnalysis) -> pd.DataFrame:
    """Per budget: the standard recipe's best run and each recipe's asymptote."""
    ci = interval_header(analysis)
    rows = []
    for budget in analysis.budgets:
        best = analysis.best_standard.get(budget)
        row = {"budget D": format_count(budget),
               "standard best": "n/a" if best is None
               else f"{format_number(best.loss, 4)} ({best.size})"}
        for label, curves in (("regularized E", analysis.regularized),
                              ("double limit E", analysis.joint)):
            curve = curves.get(budget)
            estimate = None if curve is None else curve.asymptote
            row[label + ci] = "n/a" if estimate is None else estimate.format(4)
        rows.append(row)
    return pd.DataFrame(rows)


def ensembles_table(analysis: StudyAnalysis) -> pd.DataFrame:
    """Per budget and size: the best measured ensemble and its infinite-ensemble limit."""
    ci = interval_header(analysis)
    rows = []
    for (budget, size), curve in analysis.ensembles.items():
        estimate = curve.asymptote
        rows.append({"budget D": format_count(budget), "size": size,
                     "members K": ", ".join(curve.point_labels),
                     "best measured": format_number(float(curve.y.min()), 4) if len(curve.y)
                     else "n/a",
                     f"K-asymptote{ci}": "n/a" if estimate is None else estimate.format(4)})
    return pd.DataFrame(rows)


def multipliers_table(analysis: StudyAnalysis) -> pd.DataFrame:
    ci = interval_header(analysis)
    rows = []
    for m in analysis.multipliers:
        rows.append({"recipe": m.recipe, "budget D": format_count(m.budget),
                     f"loss{ci}": m.loss.format(4),
                     "standard loss": format_number(m.standard_loss, 4),
                     f"multiplier (x){ci}": m.value.format(3)})
    return pd.DataFrame(rows)


def distill_summary(analysis: StudyAnalysis) -> pd.DataFrame:
    if analysis.distill.empty:
        return pd.DataFrame()
    out = analysis.distill.copy()
    out["budget_tokens"] = out["budget_tokens"].map(format_count)
    for column in ("student_loss", "teacher_loss", "single_loss"):
        out[column] = out[column].map(lambda v: format_number(v, 4))
    out["retained"] = out["retained"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.0%}")
    return out.drop(columns=["run_id"]).rename(columns={"budget_tokens": "budget D"})


def downstream_summary(analysis: StudyAnalysis) -> pd.DataFrame:
    pivot = downstream_pivot(analysis.downstream)
    if pivot.empty:
        return pivot
    pivot = _by_size(pivot, analysis, ["budget_tokens", "recipe", "K"])
    pivot["budget_tokens"] = pivot["budget_tokens"].map(format_count)
    for column in pivot.columns[4:]:
        pivot[column] = pivot[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.1%}")
    return pivot.rename(columns={"budget_tokens": "budget D"})


def tuning_summary(analysis: StudyAnalysis) -> pd.DataFrame:
    if analysis.tuning is None or analysis.tuning.empty:
        return pd.DataFrame()
    out = _by_size(analysis.tuning, analysis, ["recipe", "budget_tokens"])
    out["budget_tokens"] = out["budget_tokens"].map(format_count)
    out["val_loss"] = out["val_loss"].map(lambda v: format_number(v, 4))
    out["certified"] = out["certified"].map(lambda v: "yes" if v else "NO")
    return out.rename(columns={"budget_tokens": "budget D"})


def _by_size(frame: pd.DataFrame, analysis: StudyAnalysis, first: list[str]) -> pd.DataFrame:
    """Sorted by `first`, then by parameter count (so 1.4b comes after 600m, not before)."""
    rank = {size: i for i, size in enumerate(analysis.sizes)}
    order = frame["size"].map(lambda s: rank.get(str(s), len(rank)))
    return (frame.assign(_rank=order).sort_values([*first, "_rank"]).drop(columns="_rank")
            .reset_index(drop=True))


def analysis_to_dict(analysis: StudyAnalysis) -> dict[str, object]:
    """Strict-JSON-ready dictionary (NaN -> null, infinity -> "inf")."""
    s = analysis.settings

    def curve_dict(curve: Curve) -> dict[str, object]:
        out: dict[str, object] = {
            "name": curve.name, "recipe": curve.recipe, "x": curve.x_symbol,
            "budget": curve.budget, "size": curve.size, "points": list(curve.point_labels),
            "fit": None if curve.fit is None else curve.fit.to_dict(),
            "asymptote": None if curve.asymptote is None else curve.asymptote.to_dict(),
            "warnings": list(curve.warnings),
        }
        return out

    return {
        "settings": {"method": s.method, "n_boot": s.n_boot, "seed": s.seed, "level": s.level,
                     "x_column": s.x_column, "rule": s.rule, "bootstrap": s.bootstrap,
                     "n_unit": analysis.n_unit.suffix or "1"},
        "rows_used": analysis.n_rows_used, "rows_skipped": analysis.skipped,
        "budgets": list(analysis.budgets),
        "standard_best": {str(b): {"loss": json_number(r.loss), "size": r.size,
                                   "run_id": r.run_id}
                          for b, r in analysis.best_standard.items()},
        "regularized": [curve_dict(c) for c in analysis.regularized.values()],
        "ensembles": [curve_dict(c) for c in analysis.ensembles.values()],
        "joint": [curve_dict(c) for c in analysis.joint.values()],
        "data_laws": [curve_dict(c) for c in analysis.data_laws.values()],
        "multipliers": [{"recipe": m.recipe, "budget": m.budget, "loss": m.loss.to_dict(),
                         "standard_loss": json_number(m.standard_loss),
                         "multiplier": m.value.to_dict(), "unbounded": m.unbounded}
                        for m in analysis.multipliers],
        "distill": _records(analysis.distill),
        "downstream": _records(analysis.downstream),
        "warnings": analysis.all_warnings(),
    }


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    return [{k: _json_value(v) for k, v in record.items()}
            for record in frame.to_dict(orient="records")]


def _json_value(value: object) -> object:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return json_number(float(value))
    return str(value)
