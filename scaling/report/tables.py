"""Tables and JSON of a StudyAnalysis, and of single laws fitted to any table: what
`dcsl fit` prints and the report shows.

Numbers in tables are formatted as text ("3.412 [3.380, 3.455]") because the tables are
read by people; the JSON keeps them as numbers with separate interval ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling.analysis.evals import MODEL_KEYS, downstream_pivot
from scaling.analysis.study import StudyAnalysis
from scaling.analysis.types import Curve
from scaling.fit.bootstrap import Estimate, format_number, json_number
from scaling.fit.lack_of_fit import LackOfFit
from scaling.fit.power_law import PowerLawFit
from scaling.table.load import LawPoints
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
                        "converged": "", "identified": "", "lack of fit": "",
                        "held-out error": ""})
        else:
            row["law"] = law.law(curve.x_symbol)
            for name, value in (("A", law.A), ("alpha", law.alpha), ("E", law.E)):
                low, high = law.intervals.get(name, (float("nan"), float("nan")))
                row[f"{name}{ci}"] = Estimate(value, low, high).format(4)
            row["converged"] = "yes" if law.converged else "NO"
            row["identified"] = "yes" if law.identifiable else "NO"
            row["lack of fit"] = lack_of_fit_label(law.lack_of_fit)
            row["held-out error"] = ("n/a" if law.extrapolation_error is None
                                     else f"{law.extrapolation_error:+.2%}")
        row["warnings"] = len(curve.warnings)
        rows.append(row)
    return pd.DataFrame(rows)


def lack_of_fit_label(check: LackOfFit | None) -> str:
    """'DETECTED' (the form does not describe the points), 'none' or 'not tested'."""
    if check is None or not check.tests:
        return "not tested"
    return "DETECTED" if check.detected else "none"


def repeated_table(analysis: StudyAnalysis) -> pd.DataFrame:
    """Per recipe: the decay constants, the base law's asymptote, and what is missing."""
    ci = interval_header(analysis)
    rows = []
    for recipe, law in analysis.repeated.items():
        row = {"recipe": recipe, "points": len(law.points),
               "sizes": law.points["n"].nunique(), "budgets": law.points["u"].nunique(),
               "epoch counts": law.points["epochs"].round(6).nunique()}
        fit = law.fit
        for name in ("R_D", "R_N", "E"):
            if fit is None:
                row[f"{name}{ci}"] = ""
                continue
            low, high = fit.intervals.get(name, (float("nan"), float("nan")))
            text = Estimate(float(fit.params[name]), low, high).format(3)
            row[f"{name}{ci}"] = text if fit.identified.get(name, True) else f"{text} (not identified)"
        row["lack of fit"] = "" if fit is None else lack_of_fit_label(fit.lack_of_fit)
        row["to identify it, a study would"] = "; ".join(law.missing) if law.missing else (
            "" if fit is None or fit.identifiable else "see the warnings")
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
    pivot = _by_size(pivot, analysis, ["budget_tokens", "recipe", "K", "rule"])
    pivot["budget_tokens"] = pivot["budget_tokens"].map(format_count)
    for column in pivot.columns.difference(MODEL_KEYS):
        pivot[column] = pivot[column].map(lambda v: "n/a" if pd.isna(v) else f"{v:.1%}")
    if not (pivot["rule"] != "").any():
        pivot = pivot.drop(columns="rule")
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
        "standard": [curve_dict(c) for c in analysis.standard_curves.values()],
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


# --- single laws fitted to two columns of any table (`dcsl fit TABLE --x X --y Y`) -----------


@dataclass(frozen=True, eq=False)
class TableLaw:
    """One law L(x) = A / x^alpha + E fitted to two columns of a table, for one group."""

    group: object | None
    """The group's value; None when the whole table is one law."""
    x: np.ndarray = field(repr=False)
    fit: PowerLawFit | None
    warnings: list[str]

    @property
    def n_points(self) -> int:
        return int(len(self.x))

    @property
    def decades(self) -> float:
        """log10(largest x / smallest x): how far the points reach; NaN without points."""
        return math.log10(float(self.x.max() / self.x.min())) if len(self.x) else math.nan

    def law(self, symbol: str) -> str:
        return "not fitted" if self.fit is None else self.fit.law(symbol)


def table_laws_text(laws: list[TableLaw], points: LawPoints, settings: dict[str, object], *,
                    source: str) -> str:
    """What `dcsl fit TABLE --x X --y Y` prints: the law with intervals, or a table of them."""
    lines = [f"{points.y} = A / {points.x}^alpha + E, fitted to {source}", _rows_line(points),
             method_line(settings), ""]
    if points.group is None:
        lines += _law_lines(laws[0], points.x)
    else:
        ci = f" [{settings['level']:.0%} CI]" if settings["n_boot"] else ""
        lines.append(table_laws_table(laws, points, ci).to_string(index=False))
    warnings = table_law_warnings(laws, points)
    lines += ["", f"warnings ({len(warnings)}):" if warnings else "warnings: none"]
    lines += [f"  - {w}" for w in warnings]
    return "\n".join(lines)


def table_laws_table(laws: list[TableLaw], points: LawPoints, ci: str = "") -> pd.DataFrame:
    """One row per group: points, reach, the law and each parameter with its interval."""
    rows = []
    for law in laws:
        row = {str(points.group): group_label(law.group), "points": law.n_points,
               "decades": f"{law.decades:.2f}", "law": law.law(points.x)}
        for name in ("A", "alpha", "E"):
            row[f"{name}{ci}"] = "" if law.fit is None else _estimate(law.fit, name).format(4)
        row["held-out error"] = "" if law.fit is None else _held_out(law.fit)
        row["identified"] = "" if law.fit is None else ("yes" if law.fit.identifiable else "NO")
        row["warnings"] = len(law.warnings)
        rows.append(row)
    return pd.DataFrame(rows)


def table_law_warnings(laws: list[TableLaw], points: LawPoints) -> list[str]:
    """Every law's warnings, prefixed with its group when grouped."""
    if points.group is None:
        return [w for law in laws for w in law.warnings]
    return [f"{points.group}={group_label(law.group)}: {w}" for law in laws for w in law.warnings]


def table_laws_to_dict(laws: list[TableLaw], points: LawPoints, settings: dict[str, object], *,
                       source: str) -> dict[str, object]:
    """Strict-JSON-ready dictionary of single-law fits (NaN -> null, infinity -> "inf")."""
    def law_dict(law: TableLaw) -> dict[str, object]:
        out: dict[str, object] = {} if points.group is None else {
            "group": _json_value(law.group)}
        out.update({"n_points": law.n_points, "x_decades": json_number(law.decades),
                    "law": None if law.fit is None else law.fit.law(points.x),
                    "fit": None if law.fit is None else law.fit.to_dict(),
                    "warnings": list(law.warnings)})
        return out

    payload: dict[str, object] = {"source": source, "x": points.x, "y": points.y,
                                  "settings": dict(settings), "rows": points.n_rows,
                                  "rows_skipped": points.n_skipped}
    if points.group is None:
        payload["law"] = law_dict(laws[0])
    else:
        payload["group"] = points.group
        payload["laws"] = [law_dict(law) for law in laws]
    payload["warnings"] = table_law_warnings(laws, points)
    return payload


def group_label(value: object) -> str:
    """A group's value as read: 210000000 rather than 210000000.0."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _rows_line(points: LawPoints) -> str:
    used = points.n_rows - points.n_skipped
    columns = [points.x, points.y] + ([points.group] if points.group else [])
    where = " or ".join(columns) if len(columns) == 2 else f"{columns[0]}, {columns[1]} or {columns[2]}"
    skipped = (f"; {points.n_skipped} skipped (a blank or NaN {where})" if points.n_skipped
               else "")
    return f"{used} of {points.n_rows} rows used{skipped}"


def method_line(settings: dict[str, object]) -> str:
    """How a table's laws were fitted and their intervals made, for the fit commands' pages."""
    if not settings["n_boot"]:
        return f"method {settings['method']}; no bootstrap (--n-boot 0), so no intervals"
    return (f"method {settings['method']}; {settings['level']:.0%} intervals from "
            f"{settings['n_boot']} {settings['bootstrap']} bootstrap resamples, "
            f"seed {settings['seed']}")


def _law_lines(law: TableLaw, x_name: str) -> list[str]:
    fit = law.fit
    assert fit is not None  # an ungrouped law that cannot be fitted is an error upstream
    reach = (f"{law.n_points}, {x_name} from {format_number(float(law.x.min()), 4)} to "
             f"{format_number(float(law.x.max()), 4)} ({law.decades:.2f} decades)")
    rows = [("law", fit.law(x_name))]
    rows += [(name, _estimate(fit, name).format(4)) for name in ("A", "alpha", "E")]
    rows += [("points", reach),
             ("held-out error", f"{_held_out(fit)} (the largest {x_name} predicted by a fit "
                                "to the others)" if fit.extrapolation_error is not None
              else "n/a (needs >= 4 points)"),
             ("converged", "yes" if fit.converged else "NO"),
             ("identified", "yes" if fit.identifiable else "NO (see warnings)"),
             ("lack of fit", "not tested" if fit.lack_of_fit is None else
              ("DETECTED: " + fit.lack_of_fit.message.removeprefix("lack of fit: "))
              if fit.lack_of_fit.detected else fit.lack_of_fit.message)]
    return [f"  {name:<15} {text}" for name, text in rows]


def _estimate(fit: PowerLawFit, name: str) -> Estimate:
    low, high = fit.intervals.get(name, (math.nan, math.nan))
    return Estimate(float(getattr(fit, name)), low, high)


def _held_out(fit: PowerLawFit) -> str:
    return "n/a" if fit.extrapolation_error is None else f"{fit.extrapolation_error:+.2%}"
