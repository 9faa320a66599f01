"""The study report: figures plus report.md and a standalone report.html.

The page is built once as a list of blocks (headings, paragraphs, tables, figures) and
rendered twice, so the markdown and the HTML always say the same thing. The markdown links
figures relative to itself (figures/*.png); the HTML embeds them, so it can be mailed or
attached on its own.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scaling.analysis.headlines import (
    DATA_LIMIT,
    MULTIPLIER,
    Headline,
    budget_headlines,
    headline_estimates,
)
from scaling.analysis.study import StudyAnalysis
from scaling.fit.bootstrap import format_number
from scaling.report import tables as summary
from scaling.report.figures import FigureFile, make_figures
from scaling.units import format_count


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    file: FigureFile


Block = Heading | Paragraph | Bullets | Table | Figure


def write_report(
    analysis: StudyAnalysis, out_dir: str | Path, *, source: str | None = None,
    figures: bool = True, findings: list[str] | None = None,
) -> Path:
    """Write figures/, report.md and report.html into out_dir; returns the report.md path.

    ``findings`` are sentences shown right after the headline numbers (e.g. which of the
    paper's phenomena the study shows, from ``scaling.analysis.phenomena``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = make_figures(analysis, out / "figures") if figures else []
    blocks = build_blocks(analysis, files, source)
    if findings:
        at = next(i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.text == "Headline numbers")
        blocks[at + 2:at + 2] = [Heading("What this study shows"), Bullets(findings)]
    (out / "report.md").write_text(render_markdown(blocks, out), encoding="utf-8")
    (out / "report.html").write_text(render_html(blocks, out), encoding="utf-8")
    return out / "report.md"


def build_blocks(analysis: StudyAnalysis, files: list[FigureFile],
                 source: str | None = None) -> list[Block]:
    """The report's content, in reading order: the answer first (the headline numbers, what
    the study shows and the main budget's figure), then how each recipe gets there, then the
    other budgets, the laws and the method."""
    figure = {f.name: Figure(f) for f in files}
    main = analysis.main_budget
    main_figure = f"loss_vs_params_{format_count(main)}" if main is not None else ""
    blocks: list[Block] = [Heading("Scaling-law report", 1),
                           Paragraph(_provenance(analysis, source))]
    blocks += [Heading("Headline numbers"), Bullets(_headlines(analysis))]
    if main_figure in figure:
        blocks += [Heading(f"At the main budget, D = {format_count(main)} tokens"), figure[main_figure]]

    if analysis.multipliers:
        blocks += [Heading("Effective-data multipliers"), Paragraph(
            "How many times more unique data the standard recipe would need to reach each "
            "recipe's loss at the same budget: D_eff(L_recipe) / D_eff(L_standard) with "
            "D_eff(L) = (A / (L - E))^(1/alpha) from the standard recipe's data law. "
            "'unbounded' means the loss is at or below the standard law's asymptote.")]
        blocks.append(Table(summary.multipliers_table(analysis)))
    if analysis.ensembles:
        blocks += [Heading("Ensembles and joint scaling"),
                   Table(summary.ensembles_table(analysis))]
        blocks += [figure[n] for n in figure if n.startswith("loss_vs_members_")]
        blocks += [figure[n] for n in figure if n == "joint_scaling"]
        blocks += [figure[n] for n in figure if n.startswith("combination_rules_")]
    if "learning_curves" in figure:
        blocks += [Heading("Learning curves"), figure["learning_curves"]]
    if analysis.repeated:
        blocks += repeated_blocks(analysis, figure)
    if "loss_vs_compute" in figure:
        blocks += [Heading("Loss against training compute"), Paragraph(
            "The same runs placed by what they cost: each run's training FLOPs (an ensemble's "
            "summed over its members, a student's with its teacher's sampling)."),
            figure["loss_vs_compute"]]
    if analysis.data_laws:
        blocks += [Heading("Data scaling laws"),
                   Table(summary.laws_table(analysis, list(analysis.data_laws.values())))]
        blocks += [figure[n] for n in figure if n == "data_scaling"]
    if not analysis.distill.empty:
        blocks += [Heading("Distillation"), Paragraph(
            "Retained: (single - student) / (single - teacher), the share of the teacher's "
            "improvement over one single model that the student keeps."),
            Table(summary.distill_summary(analysis))]
        blocks += [figure[n] for n in figure if n == "distillation"]
    if not analysis.downstream.empty:
        blocks += [Heading("Downstream accuracy"), Table(summary.downstream_summary(analysis))]
        blocks += [figure[n] for n in figure if n == "downstream"]

    blocks += [Heading("Asymptotes per data budget"), Paragraph(
        "Standard: the best run over all sizes (the standard recipe's value). Regularized E: "
        "the asymptote of the tuned losses fitted over parameters. Double limit E: the "
        "asymptote over parameters of each size's infinite-ensemble loss.")]
    blocks.append(Table(summary.asymptotes_table(analysis)))
    blocks += [figure[n] for n in figure if n.startswith("loss_vs_params_") and n != main_figure]

    blocks += [Heading("All fitted laws"), Paragraph(
        "Held-out error: relative error at the largest x of a fit that never saw that point "
        "(leave-largest-out extrapolation). Lack of fit: whether the residuals show that the "
        "law's form does not describe the points (docs/laws.md). Warnings are listed at the end "
        "of the report.")]
    blocks.append(Table(summary.laws_table(analysis)))
    tuning = summary.tuning_summary(analysis)
    if not tuning.empty:
        blocks += [Heading("Tuned hyperparameters"), Paragraph(
            "Certified: all one-step lattice neighbours (epochs, lr, weight decay) were trained "
            "and none is better."), Table(tuning)]
    blocks += [Heading("Method"), Paragraph(_method(analysis))]
    warnings = grouped_warnings(analysis)
    blocks += [Heading("Warnings"), Bullets(warnings) if warnings else Paragraph("None.")]
    return blocks


def repeated_blocks(analysis: StudyAnalysis, figure: dict[str, Figure]) -> list[Block]:
    """The "Repeated data" section: each recipe's decay constant and the comparison."""
    from scaling.analysis.repeated import decay_comparison

    return [Heading("Repeated data"), Paragraph(
        "Muennighoff et al.'s data-constrained law, L = E + A / N'^alpha + B / D'^beta, fitted "
        "to each recipe's runs (N parameters, D tokens seen, U = the budget's unique tokens; "
        "each point the best loss over the other hyperparameters). D' = U + U R_D* (1 - "
        "exp(-R_D / R_D*)) with R_D = D / U - 1 repetitions: the R-th repetition of a token is "
        "worth exp(-R / R_D*) of a fresh one, so a larger R_D* means repeated data keeps its "
        "value longer. R_N* is the same for parameters beyond what the unique data can use."),
        Table(summary.repeated_table(analysis)), Paragraph(decay_comparison(analysis.repeated)),
        *[figure[n] for n in figure if n == "repeated_data"]]


def grouped_warnings(analysis: StudyAnalysis) -> list[str]:
    """Study warnings, then each distinct curve warning once with the curves it applies to
    (the paper's own design trips "x spans < 1 decade" on every size law; once is enough)."""
    by_message: dict[str, list[str]] = {}
    for curve in analysis.curves():
        for warning in curve.warnings:
            # numbers differ between curves ("0.97 decades"); group on the wording around them
            key = re.sub(r"-?\d[\d.e+-]*", "#", warning)
            by_message.setdefault(key, []).append(f"{curve.name}|{warning}")
    lines = list(analysis.warnings)
    for recipe, law in analysis.repeated.items():
        lines += [f"repeated data ({recipe}): {w}" for w in law.warnings]
    for entries in by_message.values():
        names = [e.split("|", 1)[0] for e in entries]
        texts = {e.split("|", 1)[1] for e in entries}
        first = entries[0].split("|", 1)[1]
        if len(entries) == 1:
            lines.append(f"{names[0]}: {first}")
        else:
            detail = " (numbers from the first)" if len(texts) > 1 else ""
            lines.append(f"{len(names)} curves{detail}: {first}. Curves: {'; '.join(names)}")
    return lines


def _provenance(analysis: StudyAnalysis, source: str | None) -> str:
    skipped = sum(analysis.skipped.values())
    text = f"Generated {dt.date.today().isoformat()}"
    if source:
        text += f" from `{source}`"
    text += (f": {analysis.n_rows_used} succeeded rows used"
             f"{f', {skipped} not-succeeded rows skipped' if skipped else ''}; budgets "
             f"{', '.join(format_count(b) for b in analysis.budgets) or 'none'}; sizes "
             f"{', '.join(analysis.sizes) or 'none'}.")
    return text


def _headlines(analysis: StudyAnalysis) -> list[str]:
    """Every recipe's best loss and every identified limit, the main budget first; each
    number as scaling.analysis.headlines picks it (the demo and `dcsl compare` show the same)."""
    lines = []
    budgets = sorted(analysis.budgets, key=lambda b: (b != analysis.main_budget, b))
    for budget in budgets:
        heads = budget_headlines(analysis, budget)
        parts = []
        if (best := heads.get("standard best")) is not None:
            parts.append(f"standard best {_loss(best)}")
        if (reg := heads.get("regularized best")) is not None:
            parts.append(f"regularized best {_loss(reg)}" + _limit(
                "asymptote", heads.get("regularized asymptote E"), heads.get(MULTIPLIER + "regularized")))
        if (ensemble := heads.get("best ensemble")) is not None:
            parts.append(f"ensembles best {_loss(ensemble)}" + _limit(
                "double limit", heads.get("double limit E"), heads.get(MULTIPLIER + "joint")))
        if (student := heads.get("best student")) is not None:
            parts.append(f"best student {_loss(student)}")
        if parts:
            main = " (the main budget)" if budget == analysis.main_budget else ""
            lines.append(f"D = {format_count(budget)} tokens{main}: " + "; ".join(parts) + ".")
    heads = headline_estimates(analysis)
    for recipe, curve in analysis.data_laws.items():
        if (limit := heads.get(DATA_LIMIT + recipe)) is not None:
            lines.append(f"{recipe} data law: {curve.fit.law('D')}; infinite-data limit "
                         f"{limit.estimate.format(4)}.")
    return lines or ["Nothing could be fitted; see the warnings below."]


def _loss(headline: Headline) -> str:
    """'2.9228 (tiny-400k)': a measured loss and the run it comes from."""
    return f"{format_number(headline.estimate.value, 4)} ({headline.source})"


def _limit(label: str, limit: Headline | None, multiplier: Headline | None) -> str:
    """', asymptote E [low, high], a 1.73 [...] data multiplier' for an identified limit."""
    if limit is None:
        return ""
    estimate = limit.estimate
    text = f", {label} {estimate.format(4)}"
    if estimate.has_interval and estimate.low < 1e-6:
        text += " (only bounded above)"
    if multiplier is not None:
        mult = multiplier.estimate
        text += (", an unbounded data multiplier" if mult.unbounded
                 else f", a {mult.format(3)} data multiplier")
    return text


def _method(analysis: StudyAnalysis) -> str:
    s = analysis.settings
    how = {"huber-log": "a Huber loss (delta 1e-3) on log loss, log L = logsumexp(a - alpha "
                        "log x, e), minimised by L-BFGS-B from a grid of starting points",
           "least-squares": "least squares on the raw loss (the paper authors' choice), "
                            "minimised by L-BFGS-B from a grid of starting points"}[s.method]
    text = (f"Every law is L(x) = A / x^alpha + E, fitted with {how}. N is "
            f"`{s.x_column}`{' in ' + analysis.n_unit.suffix if analysis.n_unit.suffix else ''}"
            f", D in tokens, K in members. Ensemble rows use the `{s.rule}` rule. ")
    if s.n_boot > 0:
        text += (f"Intervals are {s.level:.0%} percentile intervals from a {s.bootstrap} "
                 f"bootstrap with {s.n_boot} resamples (seed {s.seed}); later stages refit "
                 "every replicate of the stages they build on, so the double limit, data laws "
                 "and multipliers carry the uncertainty of everything upstream.")
    else:
        text += "No bootstrap was run, so no intervals are given."
    return text


def render_markdown(blocks: list[Block], out: Path) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            parts.append(markdown_table(block.frame))
        elif isinstance(block, Figure):
            rel = block.file.png.relative_to(out).as_posix()
            pdf = block.file.pdf.relative_to(out).as_posix()
            parts.append(f"![{block.file.caption}]({rel})\n\n*{block.file.caption}* "
                         f"([PDF]({pdf}))")
    return "\n\n".join(parts) + "\n"


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(empty)_"

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; } h2 { margin-top: 1.8em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; } code { background: #f2f2f2; padding: 0 3px; }
"""


def render_html(blocks: list[Block], out: Path) -> str:
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_inline(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            body.append(html_table(block.frame))
        elif isinstance(block, Figure):
            data = base64.b64encode(block.file.png.read_bytes()).decode("ascii")
            pdf = block.file.pdf.relative_to(out).as_posix()
            body.append(f'<figure><img alt="{html.escape(block.file.caption)}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f'{html.escape(block.file.caption)} (<a href="{html.escape(pdf)}">PDF</a>)'
                        "</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Scaling-law report</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>(empty)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _inline(text: str) -> str:
    """Escape, then turn `code` into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
