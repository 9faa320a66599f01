"""Study files: one YAML file declares a whole data-constrained scaling study.

A study names its data (an existing token store, or how to prepare one), the budgets
and model sizes, the hyperparameter lattice, the recipes tuned on it, the ensembles
built from tuned points, distillation students, downstream evals, and the executor.
Loading validates everything the file alone decides, before anything runs: unknown or
missing keys, unknown sizes and eval tasks, custom sizes' shapes (``sweeps.study.customsizes``),
values off the lattice, values listed twice, empty lists, non-positive numbers and budgets too
small for one batch (``sweeps.study.checks``) are one-line errors that name the key and its
``file:line:column``; ``sweep plan`` and ``launch`` both load, so they refuse the same files.
``sweeps/studies/*.yaml`` are worked examples.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.sizes import ModelShape, get_shape
from pretrain.spec import TrainSpec
from pretrain.store import PREPARE_OPTIONS, prepare_config
from pretrain.trackers import missing_tracker
from sweeps.study.basemodel import Base, read_base
from sweeps.study.checks import check_distill, check_models, check_sequences, check_tasks
from sweeps.study.customsizes import read_sizes, spec_shapes
from sweeps.study.fitting import Analysis
from sweeps.study.schema import build, named_key, read
from sweeps.study.sections import (
    AXES,
    RECIPE_ROLES,
    SEARCHES,
    Evals,
    Executor,
    Lattice,
    Recipe,
    Training,
)
from sweeps.study.study_ensembles import Distill, Ensembles, _distill, _ensembles, subset
from sweeps.study.yamlpos import Section, StudyError, load_yaml


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    root: Path
    store: Path
    prepare: dict[str, Any] | None
    vocab_size: int | None
    """Vocabulary for planning estimates before the store exists (else read from it)."""
    budgets: tuple[int, ...]
    sizes: tuple[str, ...]
    training: Training
    lattice: Lattice
    recipes: dict[str, Recipe]
    ensembles: Ensembles | None
    distill: tuple[Distill, ...]
    evals: Evals | None
    executor: Executor
    seed: int = 0
    """Replicate of the whole study: run k of a member set trains with init and data seed
    ``seed * SEED_STRIDE + k`` (seed 0 keeps seeds 0, 1, ...), so two replicates share no run."""
    base: Base | None = None
    """Continued pretraining: the pretrained model every training run starts from (its name is
    the study's one size; sweeps.study.basemodel)."""
    analysis: Analysis = Analysis()
    """How its laws are fitted (the demo, ``dcsl report STUDY`` and the design review)."""
    custom_shapes: dict[str, ModelShape] = field(default_factory=dict)
    """The shapes of its custom sizes (``sweeps.study.customsizes``), without a vocabulary."""

    @property
    def source_recipe(self) -> Recipe:
        """The recipe whose tuned points ensemble members, teachers and students train at: the
        ensembles' ``from_recipe``, else the study's first recipe."""
        return self.recipes[self.ensembles.from_recipe] if self.ensembles else next(iter(self.recipes.values()))

    @property
    def main_budget(self) -> int:
        """Where the full search runs: the smallest main budget of any recipe (data-scaling
        repeats cover fewer sizes). Evals score its models; the report checks its laws."""
        return min(min(r.budgets or self.budgets) for r in self.recipes.values())


def shape_of(study: Study, size: str, vocab: int) -> ModelShape:
    """The architecture planning uses for ``size``: the base's checked-in config (with its own
    vocabulary), or a custom or registered size with the store's vocabulary. Written once, for
    every planner."""
    if study.base is not None and size == study.base.name:
        return study.base.shape
    if size in study.custom_shapes:
        return study.custom_shapes[size].with_vocab(vocab)
    return get_shape(size, vocab)


SEED_STRIDE = 1000
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def load_study(path: str | Path, root: str | Path | None = None, seed: int | None = None) -> Study:
    """Read and validate a study file; ``root`` overrides its output folder and ``seed`` its
    replicate."""
    data, pos = load_yaml(path)
    top = Section(data, (), pos)
    name = str(top.raw("name") or Path(path).stem)
    if not SAFE_NAME.fullmatch(name):
        raise pos.error(("name",), f"{name!r} is not a safe folder name (letters, digits, '.', '_', "
                        "'-'; not starting with '.')")
    file_root = top.raw("root")  # read even when overridden, so it is a known key
    study_root = Path(root or file_root or f"runs/{name}")
    if seed and not root:
        # A replicate asked for on the command line gets a root of its own (its runs would
        # otherwise share the index and tables of the study's seed 0).
        study_root = study_root.with_name(f"{study_root.name}-seed{seed}")
    data_sec = top.sub("data")
    vocab_size = data_sec.number("vocab_size", int, default=0, allow_zero=True) or None
    store, prepare = _data_section(data_sec, study_root)
    budgets = top.unique("budgets", [top.tokens("budgets", v, p) for v, p in top.items("budgets")])
    base = read_base(top.sub("base"), Path(path)) if top.has("base") else None
    sizes, custom = read_sizes(top)
    if base is not None:
        if sizes:
            raise pos.error(("sizes",), "a study with a base trains the base: remove 'sizes'")
        if prepare is not None and not prepare.get("tokenizer"):
            raise pos.error(("data", "prepare", "tokenizer"), "a study with a base needs its store tokenized "
                            "with the base's tokenizer: set it to the base's tokenizer.json")
        sizes = (base.name,)
    if not budgets:
        raise pos.error(("budgets",), "at least one budget is required")
    if not sizes:
        raise pos.error(("sizes",), "at least one model size is required")
    training = _training_section(top.sub("training"), sizes[0], base, spec_shapes(custom))
    check_sequences(pos, budgets, training.seq_len, training.batch_size)
    lattice = _lattice_section(top.sub("lattice"))
    recipes_sec = top.sub("recipes")
    recipes = {n: _recipe(n, recipes_sec.sub(n), lattice, budgets, sizes) for n in list(recipes_sec.data)}
    recipes_sec.done()
    if not recipes:
        raise pos.error(("recipes",), "at least one recipe is required")
    for role in RECIPE_ROLES:
        named = [n for n, r in recipes.items() if r.role == role]
        if len(named) > 1:
            raise pos.error(("recipes", named[1], "role"), f"recipes {named[0]!r} and {named[1]!r} "
                            f"both have role {role}; a study has one recipe per role")
    ensembles = _ensembles(top.sub("ensembles"), recipes, budgets, sizes) if top.has("ensembles") else None
    distill = tuple(_distill(Section(v, p, pos), budgets, tuple(custom)) for v, p in top.items("distill"))
    top.unique("distill", [d.name for d in distill])
    check_distill(pos, distill, recipes, ensembles, budgets, sizes)
    evals = None
    if top.has("eval"):
        eval_sec = top.sub("eval")
        evals = _evals(eval_sec)
        check_models(eval_sec, evals.models, recipes, ensembles, distill)
    executor = _executor(top.sub("executor"))
    analysis_sec = top.sub("analysis")
    analysis = build(analysis_sec, Analysis, read(analysis_sec, Analysis))
    study_seed = top.number("seed", int, default=0, allow_zero=True)
    if seed is not None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        study_seed = seed
    top.done()
    return Study(name=name, path=Path(path), root=study_root, store=store, prepare=prepare,
                 vocab_size=vocab_size,
                 budgets=budgets, sizes=sizes, training=training, lattice=lattice, recipes=recipes,
                 ensembles=ensembles, distill=distill, evals=evals, executor=executor,
                 seed=study_seed, base=base, analysis=analysis, custom_shapes=custom)


def _data_section(sec: Section, root: Path) -> tuple[Path, dict | None]:
    store, prepare = sec.raw("store"), sec.raw("prepare")
    sec.done()
    if (store is None) == (prepare is None):
        raise sec.pos.error(sec.path, "give exactly one of 'store' (an existing token store) or 'prepare'")
    if store is not None and (not isinstance(store, str) or not store.strip()):
        raise sec.pos.error(sec.path + ("store",), f"expected a token store directory, got {store!r}")
    if prepare is not None:
        if not isinstance(prepare, dict):
            raise sec.pos.error(sec.path + ("prepare",), "expected a mapping of `dcsl data prepare` options")
        unknown = sorted(set(prepare) - set(PREPARE_OPTIONS))
        if unknown:
            raise sec.pos.error(sec.path + ("prepare", unknown[0]),
                                f"unknown key; known: {', '.join(sorted(PREPARE_OPTIONS))}")
        try:  # the same mapping `launch` uses, so every value is checked before any work
            config = prepare_config(prepare, root / "store")
        except (ValueError, TypeError) as e:
            raise sec.pos.error(sec.path + ("prepare",) + named_key(str(e), prepare), str(e)) from None
        # Before the store exists (afterwards the tokenizer may move: the store keeps a copy).
        if config.tokenizer and not Path(config.tokenizer).is_file() and not (root / "store" / "manifest.json").exists():
            raise sec.pos.error(sec.path + ("prepare", "tokenizer"), f"{config.tokenizer} does not exist")
        return root / "store", prepare
    return Path(store), None


def _training_section(sec: Section, size: str, base: Base | None, custom_sizes: dict | None) -> Training:
    own = [f.name for f in dataclasses.fields(Training) if "from" not in f.metadata]
    training = build(sec, Training, {**read(sec, Training, only=own), "custom_sizes": custom_sizes})
    if missing := missing_tracker(training.loggers):  # refused now, not when a run starts
        raise sec.pos.error(sec.path + ("loggers",), missing)
    # The combination is TrainSpec's to check (micro_batch_size must divide batch_size, ...).
    continued = {"init_from": base.path, "init_id": "unpinned"} if base else {}
    build(sec, TrainSpec, {"size": size, "store": "", "store_id": "", "tokens": 1, **continued,
                           **training.spec_fields()})
    return training


def _lattice_section(sec: Section) -> Lattice:
    axes = {}
    for axis in AXES:
        if sec.has(axis):
            kind = int if axis == "epochs" else float
            values = [sec.number(axis, kind, value=v, path=p, allow_zero=axis == "weight_decay")
                      for v, p in sec.items(axis)]
            if not values:
                raise sec.pos.error(sec.path + (axis,), "an empty list: give at least one value (or leave "
                                    "the key out for the default lattice)")
            if len(set(values)) != len(values) or values != sorted(values):
                raise sec.pos.error(sec.path + (axis,), "lattice values must be increasing and distinct")
            axes[axis] = tuple(values)
    sec.done()
    return Lattice(**axes)


def _on_lattice(sec: Section, axis: str, value: Any, path: tuple, lattice: Lattice) -> Any:
    kind = int if axis == "epochs" else float
    v = sec.number(axis, kind, value=value, path=path, allow_zero=axis == "weight_decay")
    if v not in lattice.axis(axis):
        raise sec.pos.error(path, f"{value!r} is not on the {axis} lattice {list(lattice.axis(axis))}")
    return v


def _recipe(name: str, sec: Section, lattice: Lattice, budgets: tuple, sizes: tuple) -> Recipe:
    search = sec.choice("search", SEARCHES, "grid")
    if not sec.has("role") and name not in RECIPE_ROLES:
        raise sec.pos.error(sec.path + ("role",), f"required for a recipe not named "
                            f"{' or '.join(RECIPE_ROLES)}: say which it is ({', '.join(RECIPE_ROLES)})")
    role = sec.choice("role", RECIPE_ROLES, name)
    fixed = {a: _on_lattice(sec, a, sec.raw(a), sec.path + (a,), lattice) for a in AXES if sec.has(a)}
    start_sec, grid_sec = sec.sub("start"), sec.sub("grid")
    start = {a: _on_lattice(start_sec, a, start_sec.raw(a), start_sec.path + (a,), lattice)
             for a in AXES if start_sec.has(a)}
    grid = {a: grid_sec.unique(a, [_on_lattice(grid_sec, a, v, p, lattice) for v, p in grid_sec.items(a)],
                               "leave the axis out to search all of its lattice")
            for a in AXES if grid_sec.has(a)}
    start_sec.done()
    grid_sec.done()
    for given, what in ((start, "start"), (grid, "grid")):
        for a in sorted(set(given) & set(fixed), key=AXES.index):
            raise sec.pos.error(sec.path + (what, a), f"{a} is fixed by recipes.{name}.{a}: remove it from {what}")
    free = [a for a in AXES if a not in fixed]
    if search == "adaptive":
        missing = [a for a in free if a not in start]
        if missing:
            raise sec.pos.error(sec.path + ("start",), f"adaptive search needs a start value for {missing}")
    rep = sec.sub("repeat")
    recipe = Recipe(
        name=name, search=search, role=role, fixed=fixed, start=start, grid=grid,
        max_rounds=sec.number("max_rounds", int, default=10),
        budgets=subset(sec, "budgets", lambda v, p: sec.tokens("budgets", v, p), budgets),
        sizes=subset(sec, "sizes", lambda v, p: sec.size(v, p, sizes), sizes),
        repeat_budgets=subset(rep, "budgets", lambda v, p: rep.tokens("budgets", v, p), budgets),
        repeat_sizes=subset(rep, "sizes", lambda v, p: rep.size(v, p, sizes), sizes),
        repeat_rounds=rep.number("max_rounds", int, default=0, allow_zero=True),
    )
    rep.done()
    sec.done()
    if recipe.repeat_budgets and not recipe.repeat_sizes:
        raise sec.pos.error(sec.path + ("repeat", "sizes"), "a repeat needs the sizes to run at")
    overlap = set(recipe.repeat_budgets) & set(recipe.budgets or budgets)
    if overlap:
        raise sec.pos.error(sec.path + ("repeat", "budgets"),
                            f"{sorted(overlap)} are already main budgets of this recipe (set its 'budgets')")
    missing = set(recipe.repeat_sizes) - set(recipe.sizes or sizes)
    if recipe.repeat_rounds == 0 and missing:
        raise sec.pos.error(sec.path + ("repeat", "sizes"),
                            f"{sorted(missing)} are not tuned at the main budget, so have no point to repeat")
    return recipe


def _evals(sec: Section) -> Evals:
    evals = build(sec, Evals, read(sec, Evals))
    check_tasks(sec, evals.tasks)
    return evals


def _executor(sec: Section) -> Executor:
    return build(sec, Executor, read(sec, Executor))


__all__ = ["Study", "StudyError", "load_study", "Lattice", "Recipe", "Ensembles", "Distill", "Evals",
           "Executor", "AXES", "shape_of"]
