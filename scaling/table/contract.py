"""The results-table contract, written once as data: the column tuples, the allowed values
and what each means. `dcsl fit --help` (contract_help) and docs/results-table.md
(contract_markdown) are generated from it, so they cannot drift; scaling.table.load loads and
validates tables against it."""

from __future__ import annotations

import textwrap

REQUIRED_COLUMNS = ("run_id", "kind", "recipe", "status", "size", "n_params", "budget_tokens",
                    "val_loss", "K")
OPTIONAL_COLUMNS = ("n_params_non_embedding", "epochs", "lr", "weight_decay", "seed",
                    "best_val_loss", "tokens_seen", "train_flops", "rule")
# `role` is optional too, but textual: it is kept apart from the numeric OPTIONAL_COLUMNS.
ROLE_COLUMN = "role"
DISTILL_COLUMNS = ("teacher_loss", "single_loss", "synthetic_weight")
DISTILL_REQUIRED_COLUMNS = DISTILL_COLUMNS[:2]
EVAL_COLUMNS = ("task", "acc", "acc_stderr")
EVAL_OPTIONAL_COLUMNS = ("acc_norm", "acc_norm_stderr")
TUNING_COLUMNS = ("recipe", "size", "budget_tokens", "epochs", "lr", "weight_decay", "val_loss",
                  "certified")
TUNING_OPTIONAL_COLUMNS = ("runs_used", "lattice_size")

# The vocabulary of the results table, written once: `dcsl sweep collect` (the producer)
# writes only these values and `dcsl fit`/`report` (the consumer) accepts exactly them, and a
# test checks every value each producer can write. This module imports nothing, so any
# package may read it.
KIND_MEANINGS = {
    "train": "one trained model",
    "ensemble": "the loss of an ensemble of K trained models",
    "distill": "a student distilled from a teacher (val_loss is the student's)",
    "eval": "a downstream benchmark score of a model or an ensemble",
    "generate": "teacher sampling into a synthetic store: a row only while it is unfinished "
                "(a finished one has none: its students do); never analysed",
}
STATUS_MEANINGS = {
    "succeeded": "finished: the only rows that are analysed",
    "failed": "stopped with an error (counted and reported, not analysed)",
    "running": "in progress (counted and reported, not analysed)",
    "pending": "planned, not started (counted and reported, not analysed)",
    "stale": "its worker died mid-run; a relaunch resumes it from its checkpoint (counted and "
             "reported, not analysed)",
    "missing": "planned, no run directory (never started, or deleted: a relaunch trains it; "
               "counted and reported, not analysed)",
    "unreadable": "a file of its run directory cannot be read (named in the collect summary; "
                  "counted and reported, not analysed)",
    "orphaned": "finished, but built on runs that are gone or unfinished (an ensemble's "
                "members, a student's teacher, an evaluated model): not analysed until they are "
                "retrained",
}
ROLE_MEANINGS = {
    "standard": "the baseline recipe: a size law per budget (>= 3 sizes), its best run per "
                "budget and its data law",
    "regularized": "tuned per size: a size law per budget and its asymptote",
    "member": "a training run that is an ensemble member",
    "ensemble": "an ensemble's loss (fitted over K), or an ensemble's eval",
    "distill": "a distilled student",
    "other": "anything else: kept in tables, fitted into no law",
}
RULE_MEANINGS = {
    "logit-mean": "members' logits averaged (the default, and the authors' rule)",
    "prob-mean": "members' probabilities averaged",
    "uniform-soup": "members' weights averaged into one model",
}
KINDS = tuple(KIND_MEANINGS)
STATUSES = tuple(STATUS_MEANINGS)
ROLES = tuple(ROLE_MEANINGS)
RULES = tuple(RULE_MEANINGS)

# The recipe column's names for an ensemble's rows and its members' training runs: what
# `dcsl sweep collect` writes (sweeps.planning.MEMBER_LABEL), and what a table without a role
# column is read by.
ENSEMBLE_RECIPE = "ensemble"
MEMBER_RECIPE = "ensemble-member"


def default_role(recipe: str, kind: str, *, listed: bool = False) -> str:
    """The role of a row whose producer does not give one (ROLE_MEANINGS).

    An ensemble's row and a member's are known by kind and by the names every producer uses
    for them (a training run under an ensemble name is a member). Without `listed` the usual
    recipe names (standard, regularized) and the distill kind speak too: that is how a table
    without a role column is read. A producer that lists every recipe and distillation it
    has (collect, from the study file) passes `listed`: a row under a name it did not list
    (one a renamed recipe left in the launch index, say) is none of them, so it is "other".
    """
    if kind == "distill" and not listed:
        return "distill"
    if kind == "ensemble":
        return "ensemble"
    if recipe in (ENSEMBLE_RECIPE, MEMBER_RECIPE):
        return "member" if kind == "train" else "ensemble"
    if recipe in ("standard", "regularized") and not listed:
        return recipe
    return "other"


X_COLUMNS = ("n_params", "n_params_non_embedding")
RESULTS_NAMES = ("results.parquet", "results.csv")
# Beside the table (optional; `dcsl sweep collect` writes it from every training run's
# metrics.csv): each run's training curve, one row per logged step, joined to the results
# table by run_id. The report draws learning curves from it.
CURVES_FILE = "curves.parquet"
CURVE_COLUMNS = ("run_id", "step", "tokens", "epoch", "lr", "train_loss", "val_loss",
                 "tokens_per_s", "grad_norm")

# Beside the table (optional; `dcsl sweep collect` writes it from the study file): how the
# study's laws are fitted, so `dcsl fit DIR` and `dcsl report DIR` fit as the study asks (the
# demo's report, reproduced). A command-line flag still wins over it.
ANALYSIS_FILE = "analysis.json"
ANALYSIS_KEYS = {
    "n_boot": "bootstrap resamples", "bootstrap": "pairs or residual",
    "x_column": "n_params or n_params_non_embedding", "method": "huber-log or least-squares",
    "level": "interval level", "rule": "the ensemble rule analysed",
    "main_budget": "the budget where the study's full search ran (its phenomena are checked there)",
    "phenomena": "true: the report checks the reference study's phenomena",
    "study": "the study's name",
}

# name -> (type, meaning) of every documented column; the renderers below raise KeyError on a
# contract column without a meaning, and a test renders them.
COLUMN_MEANINGS = {
    "run_id": ("str", "the run's id"),
    "kind": ("str", "what produced the row: one of the kinds below"),
    "recipe": ("str", "the study's name for the recipe or stage (standard, regularized, "
                      "ensemble, distill-ensemble, ...): shown, never interpreted"),
    "status": ("str", "one of the statuses below: only succeeded rows are analysed"),
    "size": ("str", "size name, e.g. 150m or tiny-3"),
    "n_params": ("int", "total parameters including embeddings: the default x of size laws"),
    "budget_tokens": ("int", "the unique-data budget D, in tokens"),
    "val_loss": ("float", "final validation loss in nats/token: what every law is fitted on"),
    "K": ("int", "ensemble members; 1 for a single model (blank reads as 1 except on "
                 "ensemble rows)"),
    ROLE_COLUMN: ("str", "what the row is to the analysis, whatever its recipe is called: one "
                         "of the roles below; without the column, roles come from the usual "
                         "recipe names (standard, regularized, ensemble, ensemble-member) and "
                         "the kind"),
    "n_params_non_embedding": ("int", "parameters without embeddings: the other x of size "
                                      "laws (--x-column)"),
    "epochs": ("float", "passes over the budget"),
    "lr": ("float", "peak learning rate"),
    "weight_decay": ("float", "weight decay"),
    "seed": ("int", "the run's seed"),
    "best_val_loss": ("float", "lowest validation loss seen during training"),
    "tokens_seen": ("float", "tokens trained on (budget_tokens x epochs): D of the two-variable "
                             "laws, whose U is budget_tokens"),
    "train_flops": ("float", "FLOPs to train: a model's own training; an ensemble's, the sum "
                             "over its members; a student's, its own training plus its "
                             "teacher's sampling (the compute-matched view)"),
    "rule": ("str", "on ensemble rows, how members are combined: one of the rules below "
                    "(blank reads as logit-mean); empty on other rows"),
    "teacher_loss": ("float", "the teacher's loss"),
    "single_loss": ("float", "one single model at the teacher's size and recipe: the "
                             "baseline; retained share = (single_loss - val_loss) / "
                             "(single_loss - teacher_loss)"),
    "synthetic_weight": ("float", "share of teacher-generated tokens in the student's data"),
    "task": ("str", "benchmark name: arc_easy, piqa, sciq, ..."),
    "acc": ("float", "accuracy"),
    "acc_stderr": ("float", "standard error of acc"),
    "acc_norm": ("float", "length-normalised accuracy"),
    "acc_norm_stderr": ("float", "standard error of acc_norm"),
}
TUNING_MEANINGS = {
    "recipe": ("str", "the tuned recipe"), "size": ("str", "size name"),
    "budget_tokens": ("int", "the budget D"), "epochs": ("float", "tuned epochs"),
    "lr": ("float", "tuned learning rate"), "weight_decay": ("float", "tuned weight decay"),
    "val_loss": ("float", "the tuned point's loss"),
    "certified": ("bool", "true when every one-step lattice neighbour was trained and none is "
                          "better"),
    "runs_used": ("int", "runs the search trained"),
    "lattice_size": ("int", "points in the search lattice"),
}


def contract_sections() -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The contract as (title, [(name, type, meaning)]) sections, for help text and docs."""
    def columns(names: tuple[str, ...], note: str = "") -> list[tuple[str, str, str]]:
        return [(n, COLUMN_MEANINGS[n][0] + note, COLUMN_MEANINGS[n][1]) for n in names]

    def values(meanings: dict[str, str]) -> list[tuple[str, str, str]]:
        return [(value, "", meaning) for value, meaning in meanings.items()]

    return [
        ("Required columns", columns(REQUIRED_COLUMNS)),
        ("Optional columns, used when present", columns((ROLE_COLUMN, *OPTIONAL_COLUMNS))),
        ("Distill rows (kind distill) also have",
         columns(DISTILL_REQUIRED_COLUMNS, ", required")
         + columns(DISTILL_COLUMNS[len(DISTILL_REQUIRED_COLUMNS):], ", optional")),
        ("Eval rows (kind eval) also have",
         columns(EVAL_COLUMNS, ", required") + columns(EVAL_OPTIONAL_COLUMNS, ", optional")),
        ("kind values", values(KIND_MEANINGS)),
        ("status values", values(STATUS_MEANINGS)),
        ("role values", values(ROLE_MEANINGS)),
        ("rule values", values(RULE_MEANINGS)),
        (f"{ANALYSIS_FILE} beside the table (optional, from `dcsl sweep collect`: how the study "
         "fits its laws; a flag given to fit or report wins)",
         [(key, "", meaning) for key, meaning in ANALYSIS_KEYS.items()]),
        ("tuning.csv beside the table (optional, from the sweep's tuner)",
         [(n, f"{TUNING_MEANINGS[n][0]}, {need}", TUNING_MEANINGS[n][1])
          for names, need in ((TUNING_COLUMNS, "required"), (TUNING_OPTIONAL_COLUMNS, "optional"))
          for n in names]),
    ]


CONTRACT_INTRO = ("One row per (recipe, run), as `dcsl sweep collect` writes results.parquet; "
                  "any parquet or CSV file with these columns works. Numbers are fitted on "
                  "succeeded train and ensemble rows, where n_params, budget_tokens and K must "
                  "be positive.")


def contract_help(width: int = 92) -> str:
    """The contract as plain text for `--help` (argparse.RawDescriptionHelpFormatter)."""
    indent = " " * 33
    lines = ["the results table (what the study analysis reads):",
             *textwrap.wrap(CONTRACT_INTRO, width, initial_indent="  ", subsequent_indent="  ")]
    for title, entries in contract_sections():
        lines += ["", f"{title[0].lower()}{title[1:]}:"]
        for name, kind, meaning in entries:
            label = f"  {name} ({kind})" if kind else f"  {name}"
            if len(label) < len(indent):
                lines += textwrap.wrap(meaning, width, initial_indent=label.ljust(len(indent)),
                                       subsequent_indent=indent)
            else:  # a long label gets a line of its own
                lines += [label, *textwrap.wrap(meaning, width, initial_indent=indent,
                                                subsequent_indent=indent)]
    return "\n".join(lines)


def contract_markdown() -> str:
    """The contract as a markdown section (docs/results-table.md holds it verbatim)."""
    lines = ["## The results table", "", CONTRACT_INTRO]
    for title, entries in contract_sections():
        value_list = not entries[0][1]
        lines += ["", f"### {title}", "",
                  "| value | meaning |" if value_list else "| column | type | meaning |",
                  "|---|---|" if value_list else "|---|---|---|"]
        for name, kind, meaning in entries:
            cells = [f"`{name}`", meaning] if value_list else [f"`{name}`", kind, meaning]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
