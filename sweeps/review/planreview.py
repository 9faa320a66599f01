"""``dcsl sweep plan`` as a design review, before any compute is spent.

Three questions, answered from the study file alone (and a few seconds of measurement):

1. What will run, and for how long: runs per stage (``sweeps.review.estimate``), parameter counts
   per size, and time on this machine from a measured probe (``sweeps.review.probe``), plus
   GPU-hours at an assumed MFU.
2. What is wrong with the design: one line per problem, each with its fix (too few or too
   close sizes, embedding-dominated sizes, too few adaptive rounds, members or budgets, and
   budgets larger than the store, which is an error).
3. Can the study answer its question: every law it will fit is simulated at the planned x
   values through the analysis's own fitter (``scaling.design``), and the share of draws in
   which it comes out identifiable, with the width of its asymptote's interval, is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pretrain.sizes import get_shape, param_counts
from scaling.fit.checks import narrow_span
from sweeps.execution import gpu_memory
from sweeps.planning import preflight_checks
from sweeps.review.estimate import PlanSummary, summarize
from sweeps.review.lawreview import (
    Finding,
    count,
    law_check_findings,
    parse_assumptions,
    role_recipe,
    simulated_findings,
    study_design,
)
from sweeps.review.probe import Throughput, measure
from sweeps.review.timeplan import TimeEstimate, time_estimate
from sweeps.runs import Snapshot
from sweeps.study import Study, shape_of

MIN_SIZES = 4
MIN_MEMBERS = 4
MIN_DATA_BUDGETS = 4
MAX_EMBEDDING_SHARE = 0.5
MIN_ADAPTIVE_ROUNDS = 2


@dataclass(frozen=True)
class PlanOptions:
    vocab: int | None = None
    probe: bool = True
    mfu: float = 0.4
    peak_tflops: float = 989.0
    noise: float = 0.01
    sims: int = 40
    """Simulated draws per law (0: no simulation)."""
    n_boot: int = 100
    seed: int = 0
    assume: tuple[str, ...] = ()
    """``KIND=A,alpha[,E]`` laws to simulate instead of the defaults (see ``parse_assumptions``)."""


@dataclass(frozen=True)
class SizeInfo:
    name: str
    total: int
    non_embedding: int

    @property
    def embedding_share(self) -> float:
        """The input embedding's share of the parameters (``param_counts``' definition)."""
        return (self.total - self.non_embedding) / self.total

    @property
    def vocab_share(self) -> float:
        """The share of the two vocabulary-sized matrices, input embedding and output head
        (untied, equal in size). This is what can pass one half: the input table alone
        never does in an untied model, whatever the vocabulary."""
        return 2 * (self.total - self.non_embedding) / self.total

    def count(self, x_column: str) -> int:
        """The parameter count a size law uses as its x (``analysis.x_column``)."""
        return self.total if x_column == "n_params" else self.non_embedding

    def to_dict(self) -> dict[str, object]:
        return {"size": self.name, "params": self.total, "non_embedding": self.non_embedding,
                "embedding_share": self.embedding_share, "embedding_and_head_share": self.vocab_share}


@dataclass(frozen=True, eq=False)
class PlanReview:
    study: Study
    options: PlanOptions
    summary: PlanSummary
    sizes: tuple[SizeInfo, ...]
    throughput: Throughput
    time: TimeEstimate
    findings: tuple[Finding, ...]
    memory: tuple = ()
    """``sweeps.execution.memoryplan.SizeMemory`` per size, when the profile says its GPUs' memory."""
    simulation: object | None = field(default=None)
    """A ``scaling.design.DesignSimulation`` (None with ``sims`` 0)."""
    succeeded_runs: int = 0
    """Runs the run store already holds as succeeded (launch skips them)."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]


def review(study: Study, options: PlanOptions = PlanOptions()) -> PlanReview:
    """Everything ``dcsl sweep plan`` prints, computed once."""
    assumed = parse_assumptions(options.assume)  # bad input fails before any work
    summary = summarize(study, vocab=options.vocab)
    vocab = summary.vocab
    sizes = tuple(size_info(s, vocab, study) for s in planned_sizes(study))
    findings = design_findings(study, sizes)
    design = study_design(study, vocab)
    findings += law_check_findings(study, design)
    memory, memory_findings = gpu_memory(study, [s.name for s in sizes], vocab)
    findings += [Finding(level, "gpu-memory", message) for level, message in memory_findings]
    simulation = None
    if options.sims > 0:
        from scaling.design import simulate_design

        # Before the probe: the simulation forks worker processes, best done before torch
        # has started threads of its own.
        simulation = simulate_design(design, assumed, noise=options.noise,
                                     n_sims=options.sims, n_boot=options.n_boot, seed=options.seed)
        findings = simulated_findings(simulation, findings)
        if study.base is not None:  # one base: no double limit is meant (the K-law is)
            findings = [f for f in findings if f.code != "unidentifiable-joint"]
    findings = [*budget_errors(study), *findings]
    throughput = measure(study, [s.name for s in sizes], vocab, enabled=options.probe)
    done = sum(state == "succeeded" for state in Snapshot.read(study.root).states.values())
    return PlanReview(study, options, summary, sizes, throughput,
                      time_estimate(study, summary, throughput, options.mfu, options.peak_tflops), tuple(findings), memory, simulation, done)


def planned_sizes(study: Study) -> list[str]:
    """Every size some stage trains, in the study's order."""
    names = list(study.sizes)
    for r in study.recipes.values():
        names += [*r.sizes, *r.repeat_sizes]
    names += [s for d in study.distill for s in (d.teacher_size, d.student_size)]
    return list(dict.fromkeys(names))


def size_info(name: str, vocab: int, study: Study | None = None) -> SizeInfo:
    """Parameter counts of a registered size, or of the study's base."""
    total, non_embedding = param_counts(shape_of(study, name, vocab) if study else get_shape(name, vocab))
    return SizeInfo(name, total, non_embedding)


def budget_errors(study: Study) -> list[Finding]:
    """What launch's preflight would refuse (the same function): a budget larger than the
    store, a world size the executor cannot start."""
    try:
        preflight_checks(study)
    except ValueError as exc:
        message = str(exc)
        if "exceeds" in message:
            return [Finding("error", "budget-too-large", f"{message}: lower the budget or prepare a "
                                                         "larger store")]
        return [Finding("error", "preflight", message)]
    return []


def design_findings(study: Study, sizes: tuple[SizeInfo, ...]) -> list[Finding]:
    """The design's problems, one line each with its fix."""
    from sweeps.planning import member_cells

    info = {s.name: s for s in sizes}
    out = []
    reg = role_recipe(study, "regularized")
    # A study with a base continues one model and compares losses directly (the paper's CPT
    # setting): size and data laws are not what it is for, so their design warnings stay out.
    with_laws = study.base is None
    if reg is not None and with_laws:
        fitted = list(reg.sizes or study.sizes)
        ensembled = list(dict.fromkeys(s for _, s in member_cells(study)))
        laws = [law for law, n in (("size law", len(fitted)), ("double limit", len(ensembled)))
                if 0 < n < MIN_SIZES]
        if laws:
            few = fitted if len(fitted) < MIN_SIZES else ensembled
            out.append(Finding("warning", "few-sizes",
                               f"recipe {reg.name}: {len(few)} sizes ({', '.join(few)}); the "
                               f"{' and the '.join(laws)} need >= {MIN_SIZES} for a bootstrap and an "
                               "identifiable asymptote: add sizes"))
        # The span the fit will measure: the analysis's x (total parameters unless the study's
        # analysis section says otherwise), in the fit's own words (scaling.fit.checks).
        x_column = study.analysis.x_column
        counts = sorted(info[s].count(x_column) for s in fitted)
        narrow = narrow_span(counts, "N")
        if narrow:
            other = sorted(info[s].count(_OTHER_X[x_column]) for s in fitted)
            out.append(Finding("warning", "narrow-sizes",
                               f"recipe {reg.name}: the size law's {narrow} (N = {x_column}, "
                               f"{counts[0]:,} to {counts[-1]:,}, the analysis's x; "
                               f"{math.log10(other[-1] / other[0]):.2f} decades of "
                               f"{_OTHER_X[x_column]}); add a size with >= {10 * counts[0]:,} "
                               "parameters or a smaller one"))
    heavy = [s for s in sizes if s.vocab_share > MAX_EMBEDDING_SHARE]
    if heavy:
        listed = ", ".join(f"{s.name} ({s.vocab_share:.0%})" for s in heavy)
        out.append(Finding("warning", "embedding-heavy",
                           f"embedding and output head are over half of the parameters of {listed}: a size "
                           "law over total parameters then mostly counts vocabulary tables; use a smaller "
                           "vocab or larger sizes"))
    out += _round_findings(study)
    ens = study.ensembles
    if ens is not None and ens.members < MIN_MEMBERS:
        out.append(Finding("warning", "few-members",
                           f"ensembles: {count(ens.members, 'member')}; a K-law needs >= {MIN_MEMBERS} points "
                           f"(K = 1..{ens.members}): set members >= {MIN_MEMBERS}"))
    std = role_recipe(study, "standard")
    if std is not None and with_laws:
        budgets = sorted({*(std.budgets or study.budgets), *std.repeat_budgets})
        if len(budgets) < MIN_DATA_BUDGETS:
            what = ("no data law can be fitted (it needs >= 3)" if len(budgets) < 3
                    else "its asymptote is not identifiable")
            out.append(Finding("warning", "few-budgets",
                               f"recipe {std.name}: {count(len(budgets), 'budget')} for the data law, so {what}; "
                               f"add budgets or repeats (>= {MIN_DATA_BUDGETS} recommended)"))
    return out


_OTHER_X = {"n_params": "n_params_non_embedding", "n_params_non_embedding": "n_params"}


def _round_findings(study: Study) -> list[Finding]:
    """Adaptive searches whose round limit cannot certify a start that is not the optimum:
    round 1 trains the start and its neighbours; a better neighbour needs a second round."""
    from sweeps.planning import cells

    out = []
    for name, recipe in study.recipes.items():
        for repeat in (False, True):
            short = [c for c in cells(study) if c[0].name == name and c[0].search == "adaptive"
                     and not c[0].at_tuned_point and c[0].max_rounds < MIN_ADAPTIVE_ROUNDS
                     and (c[1] in recipe.repeat_budgets) == repeat]
            if short:
                key = "repeat max_rounds" if repeat else "max_rounds"
                out.append(Finding("warning", "few-rounds",
                                   f"recipe {name}: {key} {short[0][0].max_rounds} certifies only a start "
                                   f"that is already the optimum; {count(len(short), 'cell')} risk ending "
                                   f"uncertified: set {key} >= {MIN_ADAPTIVE_ROUNDS} (more if the optimum "
                                   "may be further away)"))
    return out
