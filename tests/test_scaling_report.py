"""The report: figures and markdown/HTML pages from a small synthetic study, and the rules
that keep its figures honest (checked on the figure objects and captions, unsaved)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from scaling import analyze_study, write_report
from scaling.analysis.types import Curve
from scaling.fit.power_law import PowerLawFit
from scaling.synthetic import PAPER_BUDGETS, synthetic_study, synthetic_tuning

REPO = Path(__file__).resolve().parents[1]
PLOT_MODULES = ("figures", "style", "draw", "figures_laws", "figures_data", "figures_evals")  # in scaling/report/


@pytest.fixture(scope="module")
def small_study():
    """Three budgets: enough for data laws and multipliers, few enough figures to be quick."""
    table, _ = synthetic_study(noise=0.0005, seed=2, budgets=PAPER_BUDGETS[:3])
    return analyze_study(table, tuning=synthetic_tuning(table), n_boot=50, seed=0), table


@pytest.fixture(scope="module")
def four_budgets_no_bootstrap():
    """The paper's four budgets (identified data laws, so multipliers), without a bootstrap."""
    table, _ = synthetic_study(noise=0.0005, seed=2)
    return analyze_study(table, n_boot=0, seed=0)


def test_report_writes_figures_markdown_and_html(tmp_path, small_study) -> None:
    analysis, _ = small_study
    path = write_report(analysis, tmp_path / "report", source="results.csv")
    out = tmp_path / "report"
    assert path == out / "report.md"
    names = {p.stem for p in (out / "figures").glob("*.png")}
    expected = {"loss_vs_params_210M", "loss_vs_members_210M", "joint_scaling", "data_scaling",
                "distillation", "downstream"}
    assert expected <= names
    for name in names:
        png, pdf = out / "figures" / f"{name}.png", out / "figures" / f"{name}.pdf"
        assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000

    markdown = path.read_text()
    assert "## Asymptotes per data budget" in markdown
    assert "| budget D | standard best | regularized E [95% CI] | double limit E [95% CI] |" \
        in markdown
    # Three budgets cannot identify the standard data law, so no multiplier is computed
    assert "## Effective-data multipliers" not in markdown
    assert "multipliers: the standard data law is not identified" in markdown
    assert "## Tuned hyperparameters" in markdown and "| NO |" in markdown  # one uncertified
    assert "](figures/data_scaling.png)" in markdown
    assert "## Warnings" in markdown

    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") == len(names)
    assert "<th>regularized E [95% CI]</th>" in page

    from scaling.report.figures import draw_figures

    for draw in draw_figures(analysis):  # each figure's caption is the one it was saved with
        drawn = draw()
        assert drawn.caption and f"*{drawn.caption}*" in markdown, drawn.name


def test_report_of_a_standard_only_table_has_no_missing_pieces(tmp_path) -> None:
    table, _ = synthetic_study(noise=0.0, budgets=PAPER_BUDGETS[:2], with_eval=False,
                               with_distill=False)
    analysis = analyze_study(table[table["recipe"] == "standard"], n_boot=0)
    path = write_report(analysis, tmp_path, figures=True)
    markdown = path.read_text()
    assert "## Asymptotes per data budget" in markdown
    assert "Effective-data multipliers" not in markdown
    assert "n/a" in markdown  # regularized and double-limit columns exist but are empty
    assert {p.stem for p in (tmp_path / "figures").glob("*.png")} == {
        "loss_vs_params_210M", "loss_vs_params_419M", "data_scaling"}


def test_report_without_figures_is_fast_and_complete(tmp_path, small_study) -> None:
    analysis, _ = small_study
    path = write_report(analysis, tmp_path, figures=False)
    assert "## All fitted laws" in path.read_text()
    assert not (tmp_path / "figures").exists()


# --- drawing one curve: the rules, on hand-made fits -------------------------------------------

def _curve(identifiable: bool = True, samples: bool = True, alpha: float = 0.5,
           warnings: tuple[str, ...] = (), x_symbol: str = "N") -> Curve:
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    y = 2.0 / x**alpha + 3.0
    rng = np.random.default_rng(0)
    boot = (np.column_stack([2.0 + 0.05 * rng.standard_normal(40), np.full(40, alpha),
                             3.0 + 0.01 * rng.standard_normal(40)]) if samples else None)
    fit = PowerLawFit(A=2.0, alpha=alpha, E=3.0, method="huber-log", x=x, y=y,
                      warnings=list(warnings), samples=boot, identifiable=identifiable)
    return Curve(name="c", recipe="regularized", x_symbol=x_symbol, x=x, y=y, fit=fit)


def _fitted_lines(axes) -> list:
    """Drawn curves: lines with more than two points (not markers, not axhline)."""
    return [line for line in axes.lines
            if line.get_linestyle() != "None" and len(line.get_xdata()) > 2]


def test_an_identified_fit_is_a_solid_law_with_band_asymptote_and_legend_keys() -> None:
    from scaling.report.draw import add_key_entries, draw_curve, law_caption
    from scaling.report.style import new_figure

    drawn = new_figure("t")
    draw_curve(drawn, _curve(), "#1f77b4", "regularized", marker="o")
    add_key_entries(drawn, 0.95)
    (line,) = _fitted_lines(drawn.axes)
    assert line.get_linestyle() == "-"
    assert len(_bands(drawn.axes)) == 1
    labels = drawn.legend_labels
    assert labels[0] == "regularized: $L = 2.000\\,/\\,N^{0.500} + 3.000$"
    assert any("bootstrap band" in label for label in labels)
    assert any("asymptote" in label for label in labels)
    caption = law_caption(drawn, 0.95)
    assert "Shaded: 95% bootstrap bands of the regularized fit." in caption
    assert "asymptotes E of the regularized fit" in caption


def test_without_a_bootstrap_neither_legend_nor_caption_mentions_bands() -> None:
    from scaling.report.draw import add_key_entries, draw_curve, law_caption
    from scaling.report.style import new_figure

    drawn = new_figure("t")
    draw_curve(drawn, _curve(samples=False), "#1f77b4", "regularized")
    add_key_entries(drawn, 0.95)
    assert not _bands(drawn.axes)
    assert not any("band" in label for label in drawn.legend_labels)
    assert "band" not in law_caption(drawn, 0.95).lower()


def test_an_unidentified_fit_is_dashed_grey_and_says_so() -> None:
    from scaling.report.draw import add_key_entries, draw_curve, law_caption
    from scaling.report.style import NOT_IDENTIFIED_COLOR, new_figure

    drawn = new_figure("t")
    curve = _curve(identifiable=False, warnings=("asymptote pushed to ~0: the points show no "
                                                 "floor",), x_symbol="D")
    draw_curve(drawn, curve, "#555555", "standard (best run)", marker="s")
    add_key_entries(drawn, 0.95)
    (line,) = _fitted_lines(drawn.axes)
    assert line.get_linestyle() == "--" and line.get_color() == NOT_IDENTIFIED_COLOR
    assert not _bands(drawn.axes)
    assert len(drawn.axes.lines) == 2  # points and the dashed fit: no asymptote line
    assert drawn.legend_labels == ["standard (best run): fit not identified "
                                   "(no floor in the data)"]
    caption = law_caption(drawn, 0.95)
    assert "Grey dashed: the standard (best run) fit, which the data do not identify" in caption
    assert "Shaded" not in caption and "asymptotes E" not in caption


def test_an_unidentified_fit_with_its_exponent_at_a_bound_is_not_drawn() -> None:
    from scaling.report.draw import draw_curve, law_caption
    from scaling.report.style import new_figure

    drawn = new_figure("t")
    curve = _curve(identifiable=False, alpha=0.0,
                   warnings=("exponent at its bound (alpha = 0): the data do not determine it",))
    draw_curve(drawn, curve, "#555555", "standard", marker="s")
    assert not _fitted_lines(drawn.axes)
    assert drawn.legend_labels == ["standard: fit not identified (exponent at a bound), "
                                   "not drawn"]
    assert "Not drawn: the standard fit" in law_caption(drawn, 0.95)


def test_curves_stop_within_twice_the_data_and_member_curves_start_at_one() -> None:
    from scaling.report.draw import MAX_EXTRAPOLATION, draw_curve, fit_grid
    from scaling.report.style import new_figure

    curve = _curve(x_symbol="K")
    assert MAX_EXTRAPOLATION <= 2.0
    grid = fit_grid(curve, x_floor=1.0, x_max_factor=4.0)  # asking for more is capped
    assert grid.min() >= 1.0 and grid.max() <= 2.0 * curve.x.max() * (1 + 1e-12)
    drawn = new_figure("t")
    draw_curve(drawn, curve, "#1f77b4", "K curve", x_floor=1.0, x_max_factor=4.0)
    (line,) = _fitted_lines(drawn.axes)
    assert min(line.get_xdata()) >= 1.0
    assert max(line.get_xdata()) <= 2.0 * curve.x.max() * (1 + 1e-12)


def test_exponents_keep_three_significant_digits() -> None:
    from scaling.report.draw import exponent_text, law_label

    assert [exponent_text(a) for a in (0.1326, 0.0062, 1.146, 0.69, 1.0)] == [
        "0.133", "0.00620", "1.15", "0.690", "1.00"]
    fit = _curve(alpha=0.0062).fit
    assert "D^{0.00620}" in law_label(fit, "D") and "0.00}" not in law_label(fit, "D")


# --- whole figures from analyses --------------------------------------------------------------

def _legend_kinds(drawn) -> set[tuple[str, str]]:
    """(marker, colour) of every legend handle, tuple handles flattened."""
    from matplotlib.colors import to_hex

    kinds = set()
    for handle, _ in drawn.legend_entries:
        for part in handle if isinstance(handle, tuple) else (handle,):
            if hasattr(part, "get_marker") and part.get_marker() not in ("", "None", None):
                kinds.add((str(part.get_marker()), to_hex(part.get_color())))
    return kinds


def _bands(axes) -> list:
    """Shaded areas (fill_between); error bars are LineCollections and bars are patches."""
    from matplotlib.collections import PolyCollection

    return [c for c in axes.collections if isinstance(c, PolyCollection)]


def _check_every_mark_has_a_legend_entry(drawn) -> None:
    from matplotlib.colors import to_hex

    for line in drawn.axes.lines:
        if line.get_marker() == "_":  # the caps of error bars
            assert "bars:" in " ".join(drawn.legend_labels), drawn.name
        elif line.get_marker() not in ("", "None", None):
            assert (str(line.get_marker()), to_hex(line.get_color())) in _legend_kinds(drawn), \
                f"{drawn.name}: a {line.get_marker()!r} marker has no legend entry"
    labels = " ".join(drawn.legend_labels)
    if _bands(drawn.axes):
        assert "bootstrap band" in labels, drawn.name
    if drawn.asymptotes:
        assert "asymptote" in labels, drawn.name
    if drawn.bands:
        assert "bootstrap band" in drawn.caption
    else:
        assert "band" not in drawn.caption


def test_every_figure_keeps_the_rules(small_study) -> None:
    from scaling.report.figures import draw_figures

    analysis, _ = small_study
    largest_k = max(float(c.x.max()) for c in analysis.ensembles.values())
    for draw in draw_figures(analysis):
        drawn = draw()
        assert drawn.caption
        _check_every_mark_has_a_legend_entry(drawn)
        points = [line for line in drawn.axes.lines if line.get_linestyle() == "None"]
        largest_x = max((max(line.get_xdata()) for line in points), default=np.inf)
        for line in _fitted_lines(drawn.axes):
            assert max(line.get_xdata()) <= 2.0 * largest_x * (1 + 1e-9), drawn.name
            if drawn.name.startswith("loss_vs_members"):
                assert min(line.get_xdata()) >= 1.0
                assert max(line.get_xdata()) <= 2.0 * largest_k * (1 + 1e-9)
        for label in drawn.legend_labels:
            assert "^{0.00}" not in label


def test_data_scaling_shows_every_recipe_at_every_budget(small_study) -> None:
    from matplotlib.colors import to_hex

    from scaling.report.figures_laws import data_scaling
    from scaling.report.style import recipe_color, recipe_marker

    analysis, _ = small_study
    drawn = data_scaling(analysis)
    values = analysis.recipe_values()
    assert {"standard", "regularized", "joint", "distill-ensemble", "self-distill"} <= set(values)
    points = {(line.get_marker(), to_hex(line.get_color())): sorted(line.get_xdata())
              for line in drawn.axes.lines if line.get_linestyle() == "None"}
    for recipe, per_budget in values.items():
        key = (recipe_marker(recipe), to_hex(recipe_color(recipe)))
        assert points.get(key) == sorted(float(b) for b in per_budget), recipe


def test_unidentified_data_laws_are_not_drawn_as_laws(small_study) -> None:
    """Three budgets cannot identify a three-parameter data law: no law, band or multiplier."""
    from scaling.report.figures_laws import data_scaling

    analysis, _ = small_study
    assert all(not c.fit.identifiable for c in analysis.data_laws.values())
    drawn = data_scaling(analysis)
    assert not any("$L =" in label for label in drawn.legend_labels)
    assert sum("fit not identified" in label for label in drawn.legend_labels) == 3
    assert not drawn.bands and not drawn.asymptotes
    assert not drawn.axes.texts  # multipliers of an unidentified law are not computed
    assert "multiplier" not in drawn.caption
    assert "multipliers" not in drawn.axes.get_title()


def test_identified_data_laws_carry_multipliers_and_no_bands_without_bootstrap(
        four_budgets_no_bootstrap) -> None:
    from scaling.report.figures_laws import data_scaling

    analysis = four_budgets_no_bootstrap
    assert analysis.data_laws["standard"].fit.identifiable
    drawn = data_scaling(analysis)
    assert any(label.startswith("standard (best run): $L =") for label in drawn.legend_labels)
    assert len(drawn.axes.texts) == len(analysis.multipliers) > 0
    assert "Labels: effective-data multipliers" in drawn.caption
    assert "band" not in drawn.caption and "bars" not in drawn.caption
    assert not _bands(drawn.axes)


def test_figures_without_bootstrap_promise_no_bands(four_budgets_no_bootstrap) -> None:
    from scaling.report.figures import draw_figures

    for draw in draw_figures(four_budgets_no_bootstrap):
        drawn = draw()
        _check_every_mark_has_a_legend_entry(drawn)
        assert "band" not in drawn.caption.lower(), drawn.name
        assert not _bands(drawn.axes), drawn.name


# --- structure --------------------------------------------------------------------------------

def test_plot_modules_form_no_import_circle_and_stay_small() -> None:
    graph = {}
    for name in PLOT_MODULES:
        source = (REPO / "scaling" / "report" / f"{name}.py").read_text()
        assert len(source.splitlines()) <= 400, name
        tree = ast.parse(source)
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.removeprefix("scaling.report."))
                if node.module == "scaling.report":
                    imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                imported |= {alias.name.removeprefix("scaling.report.") for alias in node.names}
        assert "torch" not in imported, name
        graph[name] = imported & set(PLOT_MODULES)

    def reaches(start: str, target: str, seen: frozenset = frozenset()) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n}))
                   for n in graph[start])

    assert not [name for name in PLOT_MODULES if reaches(name, name)]


def test_soup_rows_get_a_combination_rules_figure(small_study) -> None:
    import pandas as pd

    from scaling.analysis.study import analyze_study
    from scaling.report.figures import draw_figures

    _, table = small_study
    ensembles = table[(table["kind"] == "ensemble") & (table["rule"] == "logit-mean")]
    soups = ensembles.assign(rule="uniform-soup", val_loss=ensembles["val_loss"] + 0.3,
                             run_id=ensembles["run_id"] + "-soup")
    analysis = analyze_study(pd.concat([table, soups], ignore_index=True), n_boot=0)
    figures = {drawn.name: drawn for drawn in (draw() for draw in draw_figures(analysis))}
    (name,) = [n for n in figures if n.startswith("combination_rules")]
    drawn = figures[name]
    _check_every_mark_has_a_legend_entry(drawn)
    assert {"logit-mean", "uniform-soup"} <= set(drawn.legend_labels)
    assert "uniform-soup" in drawn.caption
    # The soup rows change no fit: laws read the default rule only.
    before = analyze_study(table, n_boot=0)
    assert [c.fit.E for c in before.ensembles.values() if c.fit] == \
        [c.fit.E for c in analysis.ensembles.values() if c.fit]


def test_nested_downstream_evals_get_an_accuracy_against_k_figure(small_study) -> None:
    import pandas as pd

    from scaling.analysis.study import analyze_study
    from scaling.report.figures import draw_figures

    _, table = small_study
    size = table.loc[table["kind"] == "ensemble", "size"].iloc[0]
    budget = table.loc[table["kind"] == "ensemble", "budget_tokens"].iloc[0]
    evals = pd.DataFrame([
        {"kind": "eval", "status": "succeeded", "run_id": f"e-{rule}", "recipe": "regularized", "size": size,
         "budget_tokens": budget, "K": k, "rule": rule, "task": task, "acc": 0.3 + 0.02 * k + bump}
        for rule, bump in (("logit-mean", 0.0), ("prob-mean", 0.005), ("uniform-soup", -0.01))
        for k in (1, 2, 3) for task in ("arc_easy", "piqa", "average")])
    analysis = analyze_study(pd.concat([table, evals], ignore_index=True), n_boot=0)
    figures = {drawn.name: drawn for drawn in (draw() for draw in draw_figures(analysis))}
    drawn = figures["combination_rules_downstream"]
    _check_every_mark_has_a_legend_entry(drawn)
    assert set(drawn.legend_labels) == {"logit-mean", "prob-mean", "uniform-soup"}
    assert "against members K" in drawn.caption
    # The bars show each rule's largest K apart (not their mean), and so does the summary table.
    bars = figures["downstream"]
    assert {label for label in bars.legend_labels if label.startswith("regularized") and "K=" in label} == {
        f"regularized {size} K=3 {rule}" for rule in ("logit-mean", "prob-mean", "uniform-soup")}
    from scaling.report.tables import downstream_summary

    summary = downstream_summary(analysis)
    soup = summary[(summary["rule"] == "uniform-soup") & (summary["K"] == 2)]
    assert soup["average"].tolist() == [f"{0.3 + 0.04 - 0.01:.1%}"]
    # One eval per model (no K curve): no such figure.
    single = analyze_study(pd.concat([table, evals[evals["K"] == 3]], ignore_index=True), n_boot=0)
    assert "combination_rules_downstream" not in {d.name for d in (draw() for draw in draw_figures(single))}
