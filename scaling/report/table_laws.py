"""What `dcsl fit TABLE --law chinchilla|data-constrained` prints: text, markdown or JSON."""

from __future__ import annotations

import math

from scaling.analysis.table_laws import JointTableLaw
from scaling.fit.bootstrap import Estimate, format_number, json_number
from scaling.report.tables import method_line
from scaling.table.points import JointPoints

FORMULAS = {
    "chinchilla": "L = E + A / N^alpha + B / D^beta",
    "data-constrained": "L = E + A / N'^alpha + B / D'^beta (Muennighoff et al.: N', D' "
                        "effective parameters and data, decay constants R_N*, R_D*)",
}
MEANINGS = {
    "E": "the loss with infinite parameters and data",
    "A": "parameter-term amplitude", "B": "data-term amplitude",
    "alpha": "parameter exponent", "beta": "data exponent",
    "R_D": "decay constant in epochs of repetition: the R-th repetition of a token is worth "
           "exp(-R / R_D) of a fresh one",
    "R_N": "the same decay constant for parameters beyond the unique data's optimum",
}


def joint_laws_text(laws: list[JointTableLaw], points: JointPoints, law: str,
                    settings: dict[str, object], *, source: str) -> str:
    lines = [f"{FORMULAS[law]}, fitted to {source}", _rows_line(points), method_line(settings)]
    for item in laws:
        lines += ["", _heading(item, points)]
        lines += [f"  {name:<14} {text}" for name, text in _rows(item)]
    warnings = _warnings(laws, points)
    lines += ["", f"warnings ({len(warnings)}):" if warnings else "warnings: none"]
    lines += [f"  - {w}" for w in warnings]
    return "\n".join(lines)


def joint_laws_markdown(laws: list[JointTableLaw], points: JointPoints, law: str,
                        settings: dict[str, object], *, source: str) -> str:
    ci = f"{settings['level']:.0%} interval" if settings["n_boot"] else "interval"
    lines = [f"## {FORMULAS[law]}", "", f"Fitted to `{source}`. {_rows_line(points)}. "
             f"{method_line(settings)[0].upper()}{method_line(settings)[1:]}."]
    for item in laws:
        lines += ["", f"### {_heading(item, points)}", ""]
        if item.fit is None:
            lines += [f"- {w}" for w in item.warnings]
            continue
        fit = item.fit
        lines += [f"`{fit.law_text(4)}`", "", f"| parameter | value | {ci} | identified | meaning |",
                  "|---|---|---|---|---|"]
        for name in fit.param_names:
            est = _estimate(item, name)
            interval = ("fixed" if name in fit.fixed else
                        f"[{format_number(est.low, 4)}, {format_number(est.high, 4)}]"
                        if est.has_interval else "n/a")
            lines.append(f"| {name} | {format_number(est.value, 4)} | {interval} | "
                         f"{'yes' if fit.identified.get(name, True) else '**no**'} | {MEANINGS[name]} |")
        lines += ["", f"- lack of fit: {_lack_of_fit(item)}"]
        if item.allocation is not None:
            lines.append(f"- optimum: {_allocation(item)}")
        lines += [f"- warning: {w}" for w in item.warnings]
    return "\n".join(lines) + "\n"


def joint_laws_to_dict(laws: list[JointTableLaw], points: JointPoints, law: str,
                       settings: dict[str, object], *, source: str) -> dict[str, object]:
    def one(item: JointTableLaw) -> dict[str, object]:
        out: dict[str, object] = {} if points.group is None else {"group": _json(item.group)}
        out.update({"n_points": item.n_points,
                    "law": None if item.fit is None else item.fit.law_text(4),
                    "fit": None if item.fit is None else item.fit.to_dict(),
                    "allocation": None if item.allocation is None else item.allocation.to_dict(),
                    "warnings": list(item.warnings)})
        return out

    payload: dict[str, object] = {"source": source, "law": law, "columns": points.columns,
                                  "settings": dict(settings), "rows": points.n_rows,
                                  "rows_skipped": points.n_skipped,
                                  "best_per_point": points.from_results}
    if points.group is None:
        payload["fit"] = one(laws[0])
    else:
        payload["group"] = points.group
        payload["laws"] = [one(item) for item in laws]
    payload["warnings"] = _warnings(laws, points)
    return payload


def _heading(item: JointTableLaw, points: JointPoints) -> str:
    label = "all rows" if points.group is None else f"{points.group}={_label(item.group)}"
    return f"{label} ({item.n_points} points)"


def _rows(item: JointTableLaw) -> list[tuple[str, str]]:
    if item.fit is None:
        return [("law", "not fitted (see warnings)")]
    fit = item.fit
    rows = [("law", fit.law_text(4))]
    for name in fit.param_names:
        text = _estimate(item, name).format(4)
        rows.append((name, text + (" (fixed)" if name in fit.fixed else "")))
    missing = [n for n, ok in fit.identified.items() if not ok]
    rows += [("converged", "yes" if fit.converged else "NO"),
             ("identified", "yes" if not missing else f"NO: {', '.join(missing)} (see warnings)"),
             ("lack of fit", _lack_of_fit(item))]
    if item.allocation is not None:
        rows.append(("optimum", _allocation(item)))
    return rows


def _estimate(item: JointTableLaw, name: str) -> Estimate:
    fit = item.fit
    low, high = fit.intervals.get(name, (math.nan, math.nan))
    return Estimate(float(fit.params[name]), low, high)


def _lack_of_fit(item: JointTableLaw) -> str:
    check = item.fit.lack_of_fit
    if check is None:
        return "not tested"
    return ("DETECTED: " + check.message.removeprefix("lack of fit: ")) if check.detected else check.message


def _allocation(item: JointTableLaw) -> str:
    a = item.allocation
    text = (f"at C = {format_number(a.compute)} FLOPs"
            + (f", U = {format_number(a.unique_tokens)}" if a.unique_tokens else "")
            + f": N = {a.n_params.format()}, D = {a.tokens.format()}")
    if a.epochs is not None:
        text += f", epochs = {a.epochs.format()}"
    text += f", loss = {a.loss.format()}"
    return text + "".join(f"; {n}" for n in a.notes)


def _warnings(laws: list[JointTableLaw], points: JointPoints) -> list[str]:
    if points.group is None:
        return [w for item in laws for w in item.warnings]
    return [f"{points.group}={_label(item.group)}: {w}" for item in laws for w in item.warnings]


def _rows_line(points: JointPoints) -> str:
    used = len(points.points)
    if points.from_results:
        return (f"{used} points: the best loss of each recipe at each (N, D, U) over its "
                f"succeeded training runs ({points.n_rows} rows in the table)")
    skipped = f"; {points.n_skipped} skipped (a blank or NaN input)" if points.n_skipped else ""
    return f"{used} of {points.n_rows} rows used{skipped}"


def _label(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json(value: object) -> object:
    if isinstance(value, float):
        return json_number(value)
    return value if isinstance(value, (int, str)) or value is None else str(value)
