"""The reference of every study-file key, docs/study-file.md: ``python -m sweeps.study.reference``.

Sections the schema reads (training, eval, executor, analysis) come from their dataclasses alone:
type and bounds from each field's hint and metadata, default from the field, meaning from its
docstring. Sections ``load_study`` reads by hand are described key by key here, with choices and
defaults from the parsing code's constants and dataclasses (``data.prepare``: ``dcsl data prepare``'s
options). tests/test_docs.py checks that the page is this output, that its keys are the keys
``load_study`` reads, its choices the ones it accepts, and that every example loads."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from eval.kinds import STUDY_SPLIT
from eval.rules import LOSS_RULES, RULES
from eval.taskdefs import TASKS
from pretrain.sizes import OPTIONAL_SHAPE_FIELDS, SHAPE_FIELDS, SIZES, ModelShape
from pretrain.spec import PRECISIONS, TrainSpec
from pretrain.store import PREPARE_OPTIONS, SOURCE_OPTIONS, PrepareConfig
from sweeps.study import study as study_module
from sweeps.study.basemodel import Base
from sweeps.study.fitting import Analysis
from sweeps.study.study_ensembles import Distill, Ensembles

AXES, Lattice, Recipe, Study = study_module.AXES, study_module.Lattice, study_module.Recipe, study_module.Study
from sweeps.study.reference_examples import (  # noqa: E402 - the tables beside the generator
    PREPARE_EXAMPLES,
    PREPARE_MEANINGS,
    SHAPE_EXAMPLES,
    SHAPE_MEANINGS,
)

COMMAND = "python -m sweeps.study.reference > docs/study-file.md"
TEACHERS = ("ensemble", "single")  # the choices of sweeps.study.study_ensembles._distill (tested)
METHODS = ("sequence", "token")
TOKENS, SIZE = "token count", "size name"


@dataclass(frozen=True)
class Row:
    """One key as the page prints it, an example (YAML), the sibling keys that example needs (a
    YAML mapping) and the values a choice key accepts."""

    key: str
    type: str
    default: str
    meaning: str
    example: str | None = None
    needs: str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Part:
    """A section: its dotted path ('' at the top, ``<name>`` any recipe, ``[]`` any list entry)."""

    path: str
    intro: str
    rows: tuple[Row, ...]


def doc(obj: Any) -> str:
    """A docstring (or text) on one line, with RST ``code`` written as markdown."""
    return " ".join((obj if isinstance(obj, str) else obj.__doc__ or "").replace("``", "`").split())


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass: the string literal under each field."""
    body = ast.parse(inspect.getsource(cls)).body[0].body  # type: ignore[attr-defined]
    return {node.target.id: doc(str(nxt.value.value)) for node, nxt in zip(body, body[1:], strict=False)
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)}


def default_of(cls: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def yaml_value(value: Any) -> str:
    """A value as a study file writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return "null" if value is None else '""'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def code(value: Any) -> str:
    return f"`{yaml_value(value)}`"


def one_of(choices: tuple) -> str:
    return "one of " + ", ".join(f"`{c}`" for c in choices)


def type_text(hint: Any, meta: dict) -> str:
    """A type hint and its schema metadata (``sweeps.study.schema``) in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        text = " or ".join(type_text(a, meta) for a in args if a is not type(None))
        return text + (" or `null`" if type(None) in args else "")
    if origin is tuple:
        return f"list of {type_text(args[0], meta)}s"
    if hint is bool:
        return "`true` or `false`"
    if hint is str:
        return one_of(meta["choices"]) if "choices" in meta else "string"
    if hint in (int, float):
        word = "integer" if hint is int else "number"
        return (f"{word} > 0" if meta.get("positive") else f"{word} >= {meta['min']}" if "min" in meta
                else word)
    return "mapping"


def schema_part(path: str, cls: type, examples: dict[str, str], *, fallback: type | None = None,
                meanings: dict[str, str] | None = None, choices: dict[str, tuple] | None = None) -> Part:
    """A section the schema reads: one row per field of ``cls`` that the section sets (a field
    with ``metadata["from"]`` comes from elsewhere). A field without a docstring takes
    ``fallback``'s (Training's come from TrainSpec) or ``meanings``; each needs an example here."""
    docs = {**(field_docs(fallback) if fallback else {}), **field_docs(cls), **(meanings or {})}
    hints, rows = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        if "from" in f.metadata:
            continue
        if f.name not in docs or f.name not in examples:
            raise KeyError(f"sweeps/study/reference.py: give {path}.{f.name} a meaning and an example")
        options = (choices or {}).get(f.name) or tuple(f.metadata.get("choices", ()))
        kind = type_text(hints[f.name], dict(f.metadata))
        if options:
            kind = f"list, each {one_of(options)}" if kind.startswith("list") else one_of(options)
        rows.append(Row(f.name, kind, code(default_of(cls, f.name)), docs[f.name], examples[f.name],
                        choices=options))
    return Part(path, doc(cls), tuple(rows))


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


def prepare_part() -> Part:
    """``data.prepare``: the options of ``dcsl data prepare`` (its help texts and choices, flags
    written as keys) with the dataclasses' defaults."""
    from pretrain.cli import register
    from pretrain.corpus import CorpusSource

    top = argparse.ArgumentParser()
    register(top.add_subparsers())
    actions, rows = {a.dest: a for a in subcommand(subcommand(top, "data"), "prepare")._actions}, []
    for key in PREPARE_OPTIONS:
        cls, name = (CorpusSource, SOURCE_OPTIONS[key]) if key in SOURCE_OPTIONS else (PrepareConfig, key)
        action = actions.get(key)
        meaning, default = action.help if action else PREPARE_MEANINGS[key], code(default_of(cls, name))
        for a in actions.values():  # flags as keys: "--source hub" is `source: hub`, "--files" `files`
            for option in a.choices or () if a.option_strings else ():
                meaning = meaning.replace(f"{a.option_strings[0]} {option}", f"`{a.dest}: {option}`")
        meaning = re.sub(r"--([a-z][a-z-]*)", lambda m: f"`{m.group(1).replace('-', '_')}`", meaning)
        meaning, _, said = meaning.partition(" (default: ")  # the help's own words for its default
        default += ": " + said[:-1] if said and said != "%(default)s)" else ""
        options = tuple(action.choices) if action and action.choices else ()
        for option in options:
            meaning = re.sub(rf"\b{option}: ", f"`{option}`: ", meaning)
        meaning = meaning.replace("%%", "%").rstrip(".")
        kind = (one_of(options) if options else TOKENS if key in ("val_tokens", "max_train_tokens")
                else type_text(typing.get_type_hints(cls)[name], {}))
        rows.append(Row(key, kind, default, meaning[:1].upper() + meaning[1:] + ".",
                        *PREPARE_EXAMPLES[key], options))
    return Part("data.prepare", "How `dcsl sweep launch` prepares the study's token store (in "
                "`<root>/store`) when there is no `data.store`: the options of `dcsl data prepare`, "
                "checked when the study loads.", tuple(rows))


def custom_size_part() -> Part:
    """A ``sizes:`` entry that is a mapping: ModelShape's own fields (``pretrain.sizes``)."""
    hints, docs = typing.get_type_hints(ModelShape), {**field_docs(ModelShape), **SHAPE_MEANINGS}
    rows = [Row("name", "string (letters, digits, `.`, `_`, `-`)", "required", "The size's name in "
                "recipes, ensembles, distillation entries and results; a registered name only with "
                "its registered shape.", "my-300k", "{d_model: 768, n_layers: 12, n_heads: 12, "
                "n_kv_heads: 12, d_mlp: 2688}")]
    for key in (*SHAPE_FIELDS, *OPTIONAL_SHAPE_FIELDS):
        kind = "integer > 0" if key in SHAPE_FIELDS else type_text(hints[key], {"positive": True})
        default = "required" if key in SHAPE_FIELDS else code(default_of(ModelShape, key))
        rows.append(Row(key, kind, default, docs[key], SHAPE_EXAMPLES[key]))
    return Part("sizes[]", "A custom size, declared in place of a size name: a mapping with a name "
                "and the model's shape (the vocabulary comes from the store). Its shape joins the "
                "run ids of its runs.", tuple(rows))


def axis_rows(meaning: str, examples: dict[str, str], listed: bool = False) -> tuple[Row, ...]:
    """One row per lattice axis (``AXES``): a value on the study's lattice, or a list of them."""
    kind = {"epochs": "integer", "lr": "number", "weight_decay": "number"}
    return tuple(Row(a, f"list of {kind[a]}s on the lattice" if listed else f"{kind[a]} on the lattice",
                     "the whole axis" if listed else "—", meaning.format(axis=a), examples[a]) for a in AXES)


def lattice_part() -> Part:
    kinds = {"epochs": "integers > 0", "lr": "numbers > 0", "weight_decay": "numbers >= 0"}
    what = {"epochs": "epoch counts (passes over the budget)", "lr": "peak learning rates",
            "weight_decay": "weight decays"}
    examples = {"epochs": "[4, 8, 16, 32]", "lr": "[1.0e-3, 3.0e-3, 1.0e-2]",
                "weight_decay": "[0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]"}
    return Part("lattice", doc(Lattice) + " Every value a recipe names must be on it.", tuple(
        Row(a, f"list of {kinds[a]}", code(default_of(Lattice, a)), f"The lattice's {what[a]}, "
            "increasing and distinct.", examples[a]) for a in AXES))


def subset_row(key: str, meaning: str, example: str, default: str = "all of the study's") -> Row:
    return Row(key, f"list of {TOKENS if key == 'budgets' else SIZE}s from the study's `{key}`",
               default, meaning, example)


def parts() -> list[Part]:
    """Every section of a study file, in the order a study file writes them."""
    recipe, ens, dist, study = field_docs(Recipe), field_docs(Ensembles), field_docs(Distill), field_docs(Study)
    tasks = tuple(t for t in TASKS if STUDY_SPLIT in TASKS[t].splits)
    safe = "string (letters, digits, `.`, `_`, `-`)"
    return [
        Part("", "Every key of a study file; the sections are described below.", (
            Row("name", safe, "the file's name without `.yaml`", "The study's name, and its output "
                "folder's by default.", "paper"),
            Row("root", "path", "`runs/<name>`", "Where the study's runs, tables and report go; "
                "`--root` on the command line overrides it.", "runs/paper"),
            Row("seed", "integer >= 0", code(default_of(Study, "seed")), study["seed"] + " `--seed` "
                "overrides it.", "1"),
            Row("data", "mapping", "required", "The token store: an existing one or how to prepare it."),
            Row("budgets", f"list of {TOKENS}s", "required", "The unique-data budgets (prefixes of the "
                "store's training stream); each must hold at least one batch of `training.batch_size` "
                "sequences of `training.seq_len` tokens.", "[8k, 16k, 32k, 64k, 128k]"),
            Row("sizes", f"list of {SIZE}s or custom sizes", "required without `base`", "The model "
                "sizes: registered ones (`pretrain/sizes.py`: " + ", ".join(f"`{s}`" for s in SIZES)
                + ") or custom ones (mappings, below). A study with a `base` has no `sizes`: it "
                "trains the base.", "[tiny-16k, tiny-50k, tiny-100k]"),
            Row("base", "mapping", "none", study["base"]),
            Row("training", "mapping", "TrainSpec's defaults", "How every run trains."),
            Row("lattice", "mapping", "the paper's lattice", "The hyperparameter grid of every recipe."),
            Row("recipes", "mapping of recipe names to recipes", "required", "At least one recipe; at "
                "most one per role."),
            Row("ensembles", "mapping", "none (no ensembles)", doc(Ensembles)),
            Row("distill", "list of mappings", "`[]`", "Distillation students, one entry each, with "
                "distinct names."),
            Row("eval", "mapping", "none (no downstream evals)", doc(study_module.Evals)),
            Row("executor", "mapping", "local, 2 workers", doc(study_module.Executor)),
            Row("analysis", "mapping", "the analysis's defaults", study["analysis"]),
        )),
        Part("data", "Give exactly one of `store` and `prepare`.", (
            Row("store", "path", "—", "An existing token store (`dcsl data prepare`).", "stores/dclm-llama3"),
            Row("prepare", "mapping", "—", "Prepare the store: see below.", "{source: bible, vocab_size: 512}"),
            Row("vocab_size", "integer >= 0", "`0`: read from the store", study["vocab_size"], "128256"),
        )),
        prepare_part(),
        custom_size_part(),
        Part("base", doc(Base) + " Continued pretraining: the base's name is the study's one size.", (
            Row("path", "string", "required", field_docs(Base)["path"], "${LLAMA_3_2_3B}"),
            Row("config", "path, relative to the study file", "required", "The base's `config.json`, "
                "checked in beside the study, so `sweep plan` needs no base on disk.", "bases/llama-3.2-3b.json"),
            Row("name", safe, "the config file's name without `.json`", "The runs' size column.", "llama-3.2-3b"),
        )),
        schema_part("training", study_module.Training, fallback=TrainSpec, choices={"precision": PRECISIONS},
                    examples={"batch_size": "32", "seq_len": "256", "warmup_frac": "0.01",
                              "micro_batch_size": "4", "val_every": "100000", "ckpt_every": "500",
                              "threads": "1", "precision": "bf16-mixed", "compile": "true",
                              "activation_checkpointing": "true", "keep_checkpoints": "true",
                              "devices": "2", "nodes": "2", "strategy": "ddp",
                              "metrics_every": "50", "loggers": "[tensorboard]"}),
        lattice_part(),
        Part("recipes.<name>", doc(Recipe) + " Keys `epochs`, `lr` and `weight_decay` fix an axis; "
             "the free axes are tuned.", (
                 Row("search", one_of(study_module.SEARCHES), code(default_of(Recipe, "search")),
                     "`grid` trains every point of `grid`; `adaptive` searches the lattice from `start` "
                     "until the best point's one-step neighbours are all trained and none is better.",
                     "adaptive", choices=study_module.SEARCHES),
                 Row("role", one_of(study_module.RECIPE_ROLES), "the recipe's name if that is a role, "
                     "else required", recipe["role"], "regularized", choices=study_module.RECIPE_ROLES),
                 *axis_rows("Fix {axis} at this value. " + recipe["fixed"],
                            {"epochs": "16", "lr": "3.0e-3", "weight_decay": "0.1"}),
                 Row("start", "mapping of free axes to lattice values", "required for `adaptive`: every "
                     "free axis", recipe["start"], "{epochs: 8, lr: 3.0e-3, weight_decay: 0.8}"),
                 Row("grid", "mapping of axes to lists of lattice values", "the whole lattice",
                     recipe["grid"], "{epochs: [8, 16], weight_decay: [0.8, 1.6]}"),
                 Row("max_rounds", "integer > 0", code(default_of(Recipe, "max_rounds")),
                     "Adaptive search: at most this many rounds per (budget, size).", "3"),
                 subset_row("budgets", "The budgets this recipe is tuned at.", "[128k]"),
                 subset_row("sizes", "The sizes this recipe is tuned at.", "[tiny-50k, tiny-100k]"),
                 Row("repeat", "mapping", "none", recipe["repeat_budgets"],
                     "{budgets: [8k, 16k], sizes: [tiny-16k], max_rounds: 2}"),
             )),
        Part("recipes.<name>.start", recipe["start"], axis_rows("The search's first {axis}.", {
            "epochs": "16", "lr": "1.0e-2", "weight_decay": "1.6"})),
        Part("recipes.<name>.grid", recipe["grid"], axis_rows("The {axis} values to train.", {
            "epochs": "[4, 8, 16]", "lr": "[3.0e-3]", "weight_decay": "[0.8, 1.6]"}, listed=True)),
        Part("recipes.<name>.repeat", recipe["repeat_budgets"], (
            subset_row("budgets", "Further budgets, none of them a main budget of the recipe.",
                       "[8k, 16k]", "none"),
            subset_row("sizes", "The sizes to run at (required with `budgets`).", "[tiny-16k]", "none"),
            Row("max_rounds", "integer >= 0", code(default_of(Recipe, "repeat_rounds")),
                recipe["repeat_rounds"], "2"),
        )),
        Part("ensembles", doc(Ensembles), (
            Row("from", "recipe name", "required", "The recipe whose tuned points the members start "
                "from.", "regularized"),
            Row("members", "integer > 0", "required", "K, the members per ensemble (seeds 0 ... K-1, "
                "so ensembles nest).", "4"),
            Row("member_rule", "mapping", f"`{{epochs: {yaml_value(default_of(Ensembles, 'epochs_factor'))}, "
                f"weight_decay: {yaml_value(default_of(Ensembles, 'weight_decay_factor'))}}}`",
                "Factors on the tuned point's epochs and weight decay.", "{epochs: 1, weight_decay: 1}"),
            Row("rules", f"list, each {one_of(LOSS_RULES)}", code(RULES), ens["rules"],
                "[logit-mean, prob-mean, uniform-soup]", choices=LOSS_RULES),
            subset_row("budgets", "The budgets that get ensembles.", "[128k]", "the `from` recipe's"),
            subset_row("sizes", "The sizes that get ensembles.", "[tiny-100k, tiny-200k]", "the `from` recipe's"),
        )),
        Part("ensembles.member_rule", "A member trains at the tuned point with its epochs and weight "
             "decay multiplied by these factors, at the same lr.", (
                 Row("epochs", "number > 0", code(default_of(Ensembles, "epochs_factor")),
                     "Factor on the tuned epochs (rounded, at least 1).", "1"),
                 Row("weight_decay", "number >= 0", code(default_of(Ensembles, "weight_decay_factor")),
                     "Factor on the tuned weight decay.", "1"),
             )),
        Part("distill[]", doc(Distill) + " The student trains at its size's tuned point of the "
             "`ensembles.from` recipe.", (
                 Row("name", "string", "`distill-<teacher>`", "The student's label in tables and the "
                     "report.", "distill-ensemble-w0.9"),
                 Row("teacher", one_of(TEACHERS), code(TEACHERS[0]), dist["teacher"], "single", choices=TEACHERS),
                 Row("teacher_size", SIZE, "required", "The teacher's size: a registered size or one of "
                     "the study's custom sizes.", "tiny-100k"),
                 Row("student_size", SIZE, "required", "The student's size, likewise.", "tiny-50k"),
                 Row("budget", f"{TOKENS} from `budgets`", "the study's first budget", "The budget of "
                     "real data the student trains on.", "128k"),
                 Row("members", "integer > 0", code(default_of(Distill, "members")), "An ensemble "
                     "teacher's members (at most `ensembles.members`).", "2"),
                 Row("method", one_of(METHODS), code(default_of(Distill, "method")), "`sequence`: train "
                     "on real data mixed with the teacher's samples; `token`: token-level distillation "
                     "from the teacher's distribution.", "token", choices=METHODS),
                 Row("synthetic_weight", "number >= 0, below 1", code(default_of(Distill, "synthetic_weight")),
                     "w, the synthetic share of the student's data; it still sees the real data "
                     "`epochs` times, so it trains 1 / (1 - w) times longer.", "0.9"),
                 Row("synthetic_tokens", f"{TOKENS} or `0`", code(default_of(Distill, "synthetic_tokens")),
                     "Tokens the teacher samples; 0: enough that the student sees each once.", "256k"),
                 Row("temperature", "number > 0", code(default_of(Distill, "temperature")),
                     "The teacher's sampling temperature (`token`: the distillation temperature).", "1.0"),
             )),
        schema_part("eval", study_module.Evals, choices={"tasks": tasks}, meanings={
            "tasks": f"Downstream multiple-choice tasks with a `{STUDY_SPLIT}` split, each named once."},
            examples={"tasks": "[arc_easy, piqa, sciq]", "limit": "100", "nested_ensembles": "true",
                      "models": "[standard, regularized, ensemble, students]", "num_fewshot": "5"}),
        schema_part("executor", study_module.Executor, examples={
            "kind": "slurm", "profile": "example-gpu", "parallelism": "2", "runs_per_task": "4"}),
        schema_part("analysis", Analysis, meanings={
            "method": "The fit's objective: `huber-log` (a Huber loss on log L from a grid of starts) or "
                      "`least-squares` (squares on the raw loss, as the paper's authors fitted).",
            "level": "Confidence level of the bootstrap intervals (between 0 and 1)."}, examples={
            "n_boot": "1000", "bootstrap": "residual", "x_column": "n_params_non_embedding",
            "method": "least-squares", "level": "0.9", "rule": "prob-mean"}),
    ]


def reference_markdown() -> str:
    """The page: a header saying how it is made, then one table per section."""
    lines = [f"<!-- Generated by `{COMMAND}` from the code that reads study files "
             "(sweeps/study/); do not edit: tests/test_docs.py checks it. -->",
             "# Study-file reference", "",
             "A study file (`sweeps/studies/*.yaml` are worked examples) is YAML read by "
             "`sweeps.study.load_study`, which checks every key before anything runs: an unknown key, "
             "a wrong type, an unknown size, a value off the lattice, a value listed twice, a "
             "non-finite number or a YAML tag is a one-line error with its `file:line:col`. Token "
             "counts may be written as `50000`, `50k`, `200M` or `1.6B`. `<name>` stands for any "
             "recipe's name and `[]` for any entry of a list."]
    for part in parts():
        lines += ["", f"## `{part.path}`" if part.path else "## Top level", "", part.intro, "",
                  "| key | type | default | meaning | example |", "|---|---|---|---|---|"]
        for r in part.rows:
            example = "see below" if r.example is None else f"`{r.key}: {r.example}`" + (
                f" (with `{r.needs.strip('{}')}`)" if r.needs else "")
            cells = (f"`{r.key}`", r.type, r.default, r.meaning, example)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
