"""Every bad study is refused by ``load_study``, and so by ``sweep plan`` and ``launch`` (which
both load it), with one line naming the key at its file:line:col, before any compute."""

import re
import textwrap

import pytest

from dcsl_cli import main as dcsl
from sweeps.study.study import StudyError, load_study

GOOD = """\
name: t
data: {prepare: {source: bible, vocab_size: 512, val_tokens: 8k, max_train_tokens: 60k}}
budgets: [8k]
sizes: [tiny-50k]
training: {batch_size: 8, seq_len: 32}
lattice: {epochs: [1, 2], lr: [1.0e-3, 3.0e-3], weight_decay: [0.0, 0.1]}
recipes:
  standard: {weight_decay: 0.1, search: grid}
  regularized:
    search: adaptive
    start: {epochs: 1, lr: 3.0e-3, weight_decay: 0.1}
ensembles: {from: regularized, members: 2}
eval: {tasks: [arc_easy]}
executor: {kind: debug}
"""
SHAPE = "d_model: 32, n_layers: 1, n_heads: 4, n_kv_heads: 4, d_mlp: 112"
PREPARE = "prepare: {source: bible, vocab_size: 512, val_tokens: 8k, max_train_tokens: 60k}"

# (what is replaced, by what, the key the error names, words of its message)
BAD = {
    "empty-lattice-axis": ("lattice: {epochs: [1, 2],", "lattice: {epochs: [],", "lattice.epochs", "an empty list"),
    "unknown-task": ("tasks: [arc_easy]", "tasks: [arc_easy, nosuchtask]", "eval.tasks.1", "unknown task 'nosuchtask'"),
    "task-without-validation": ("tasks: [arc_easy]", "tasks: [mmlu]", "eval.tasks.0", "has no validation split"),
    "repeated-task": ("tasks: [arc_easy]", "tasks: [arc_easy, arc_easy]", "eval.tasks.1", "listed twice"),
    "empty-tasks": ("tasks: [arc_easy]", "tasks: []", "eval.tasks", "an empty list"),
    "seq-len-over-budget": ("seq_len: 32", "seq_len: 100000", "budgets.0", "makes 0 sequences"),
    "batch-over-budget": ("batch_size: 8", "batch_size: 1024", "budgets.0", "fewer than one batch of 1024"),
    "repeated-budget": ("budgets: [8k]", "budgets: [8k, 8k]", "budgets.1", "listed twice"),
    "repeated-size": ("sizes: [tiny-50k]", "sizes: [tiny-50k, tiny-50k]", "sizes.1", "listed twice"),
    "repeated-grid-value": ("search: grid}", "search: grid, grid: {lr: [1.0e-3, 1.0e-3]}}",
                            "recipes.standard.grid.lr.1", "listed twice"),
    "empty-grid-axis": ("search: grid}", "search: grid, grid: {lr: []}}", "recipes.standard.grid.lr", "an empty list"),
    "repeated-recipe-budget": ("search: grid}", "search: grid, budgets: [8k, 8k]}", "recipes.standard.budgets.1",
                               "listed twice"),
    "empty-recipe-sizes": ("search: grid}", "search: grid, sizes: []}", "recipes.standard.sizes", "an empty list"),
    "repeated-ensemble-budget": ("members: 2}", "members: 2, budgets: [8k, 8k]}", "ensembles.budgets.1",
                                 "listed twice"),
    "empty-ensemble-rules": ("members: 2}", "members: 2, rules: []}", "ensembles.rules", "an empty list"),
    "missing-ensembles-from": ("{from: regularized, members: 2}", "{members: 2}", "ensembles.from", "is required"),
    "ensembles-from-a-list": ("from: regularized", "from: [regularized]", "ensembles.from", "is not a recipe"),
    "missing-teacher-size": ("executor:", "distill: [{student_size: tiny-50k}]\nexecutor:",
                             "distill.0.teacher_size", "is required"),
    "repeated-student": ("executor:", "distill: [{teacher: single, teacher_size: tiny-50k, student_size: tiny-50k}, "
                         "{teacher: single, teacher_size: tiny-50k, student_size: tiny-50k}]\nexecutor:",
                         "distill.1", "'distill-single' is listed twice"),
    "store-not-a-path": (PREPARE, "store: 5", "data.store", "expected a token store directory"),
    "prepare-vocab-not-a-number": ("vocab_size: 512", "vocab_size: big", "data.prepare.vocab_size",
                                   "must be a positive integer"),
    "prepare-unknown-source": ("source: bible", "source: nowhere", "data.prepare.source", "is not one of"),
    "prepare-hub-without-dataset": ("source: bible", "source: hub", "data.prepare.source", "dataset is required"),
    "prepare-missing-tokenizer": ("source: bible,", "source: bible, tokenizer: /no/tokenizer.json,",
                                  "data.prepare.tokenizer", "does not exist"),
    "prepare-bad-dtype": ("source: bible,", "source: bible, dtype: int8,", "data.prepare.dtype", "uint16 or uint32"),
    "size-as-a-mapping-missing-a-field": ("sizes: [tiny-50k]", "sizes: [{name: my-300k, d_model: 768}]",
                                          "sizes.0.n_layers", "is required"),
    "custom-size-without-a-name": ("sizes: [tiny-50k]", f"sizes: [{{{SHAPE}}}]", "sizes.0.name", "is required"),
    "custom-size-heads-not-dividing": ("sizes: [tiny-50k]", f"sizes: [{{name: c, {SHAPE.replace('32', '30')}}}]",
                                       "sizes.0.n_heads", "must divide d_model 30"),
    "custom-size-kv-not-dividing": ("sizes: [tiny-50k]", f"sizes: [{{name: c, {SHAPE.replace('kv_heads: 4', 'kv_heads: 3')}}}]",
                                    "sizes.0.n_kv_heads", "must divide n_heads 4"),
    "custom-size-zero-layers": ("sizes: [tiny-50k]", f"sizes: [{{name: c, {SHAPE.replace('layers: 1', 'layers: 0')}}}]",
                                "sizes.0.n_layers", "must be positive"),
    "custom-size-odd-head-dim": ("sizes: [tiny-50k]", f"sizes: [{{name: c, {SHAPE.replace('32', '36')}}}]",
                                 "sizes.0.n_heads", "even"),
    "custom-size-unknown-field": ("sizes: [tiny-50k]", f"sizes: [{{name: c, layers: 2, {SHAPE}}}]",
                                  "sizes.0.layers", "unknown shape field"),
    "custom-size-named-as-a-registered-one": ("sizes: [tiny-50k]", f"sizes: [{{name: tiny-50k, {SHAPE}}}]",
                                              "sizes.0.name", "is a registered size of another shape"),
    "custom-size-twice": ("sizes: [tiny-50k]", f"sizes: [{{name: c, {SHAPE}}}, {{name: c, {SHAPE}}}]",
                          "sizes.1", "listed twice"),
    "start-of-a-fixed-axis": ("start: {epochs: 1, lr: 3.0e-3, weight_decay: 0.1}",
                              "start: {epochs: 1, lr: 3.0e-3, weight_decay: 0.1}\n    weight_decay: 0.1",
                              "recipes.regularized.start.weight_decay", "is fixed by"),
    "ensemble-teacher-of-no-member-cell": ("members: 2}", "members: 2, sizes: [tiny-50k]}\ndistill: [{teacher: "
                                           "ensemble, members: 2, teacher_size: tiny-16k, student_size: tiny-50k}]",
                                           "distill.0.teacher_size", "trains no members of tiny-16k"),
    "student-of-no-tuning-cell": ("executor:", "distill: [{teacher: single, teacher_size: tiny-50k, "
                                  "student_size: tiny-16k}]\nexecutor:", "distill.0.student_size",
                                  "tunes no tiny-16k"),
    "students-without-distill": ("tasks: [arc_easy]", "tasks: [arc_easy], models: [students]", "eval.models.0",
                                 "no distill section"),
    "recipe-naming-an-undeclared-size": ("search: grid}", "search: grid, sizes: [my-size]}",
                                         "recipes.standard.sizes.0", "unknown model size 'my-size'"),
}


def write(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def plan(path, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        dcsl(["sweep", "plan", str(path), "--root", str(tmp_path / "root"), "--no-probe", "--sims", "0"])
    return done.value.code, capsys.readouterr()


def test_the_good_study_plans(tmp_path, capsys):
    code, printed = plan(write(tmp_path, GOOD), tmp_path, capsys)
    assert code == 0, printed.err


@pytest.mark.parametrize("name", BAD)
def test_a_bad_study_is_refused_by_load_and_by_plan_with_its_position(tmp_path, capsys, name):
    old, new, key, words = BAD[name]
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: {re.escape(key)}: ", message), message
    assert words in message and "\n" not in message
    code, printed = plan(path, tmp_path, capsys)
    assert code == 2 and printed.err == f"dcsl sweep: {message}\n"
    assert not (tmp_path / "root").exists()  # nothing was prepared or written


def test_launch_refuses_before_building_the_store(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace(*BAD["unknown-task"][:2]))
    with pytest.raises(SystemExit) as done:
        dcsl(["sweep", "launch", str(path), "--root", str(tmp_path / "root")])
    assert done.value.code == 2 and "eval.tasks.1: unknown task 'nosuchtask'" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_a_budget_over_the_store_is_refused_by_plan_and_launch_alike(tmp_path, capsys):
    """The store's size is a preflight check (``check_budgets``), positioned at the budget."""
    path = write(tmp_path, GOOD.replace("budgets: [8k]", "budgets: [8k, 100k]"))
    load_study(path)  # the file alone is fine
    code, printed = plan(path, tmp_path, capsys)
    expected = (f"{path}:3:15: budgets.1: budget 100,000 tokens exceeds the 60,000 training tokens of the "
                f"data.prepare.max_train_tokens of {path}")
    assert code == 2 and printed.err.startswith(f"dcsl sweep: {expected}")
    with pytest.raises(SystemExit) as done:
        dcsl(["sweep", "launch", str(path), "--root", str(tmp_path / "root")])
    assert done.value.code == 2 and capsys.readouterr().err == f"dcsl sweep: {expected}\n"
    assert not (tmp_path / "root" / "store").exists()


def test_preflight_is_every_check_that_needs_more_than_the_file(tmp_path):
    from sweeps.planning.preflight import preflight_checks

    preflight_checks(load_study(write(tmp_path, GOOD)))
    with pytest.raises(ValueError, match=r"study.yaml:3:15: budgets.1: budget 100,000 tokens exceeds"):
        preflight_checks(load_study(write(tmp_path, GOOD.replace("budgets: [8k]", "budgets: [8k, 100k]"))))
    two = load_study(write(tmp_path, GOOD.replace("seq_len: 32}", "seq_len: 32, devices: 2}")))
    with pytest.raises(ValueError, match="which the debug executor cannot start"):
        preflight_checks(two)
