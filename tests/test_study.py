import textwrap

import pytest

from sweeps.study.study import StudyError, load_study

GOOD = """\
name: t
data: {store: /nonexistent/store}
budgets: [8k]
sizes: [tiny-50k]
lattice: {epochs: [1, 2], lr: [1.0e-3, 3.0e-3], weight_decay: [0.0, 0.1]}
recipes:
  standard: {weight_decay: 0.1, search: grid}
  regularized:
    search: adaptive
    start: {epochs: 1, lr: 3.0e-3, weight_decay: 0.1}
"""


def write(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_study_loads(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    assert study.budgets == (8000,) and study.sizes == ("tiny-50k",)
    assert study.recipes["standard"].fixed == {"weight_decay": 0.1}
    assert study.recipes["regularized"].start == {"epochs": 1, "lr": 3e-3, "weight_decay": 0.1}


@pytest.mark.parametrize("old, new, expected", [
    ("sizes: [tiny-50k]", "sizes: [tiny-50k, huge]", r"study.yaml:4:\d+: sizes.1: unknown model size 'huge'"),
    ("name: t", "name: t\nbudgest: [1k]", r"study.yaml:2:1: budgest: unknown key"),
    ("{weight_decay: 0.1, search: grid}", "{weight_decay: 0.3, search: grid}",
     r"study.yaml:7:\d+: recipes.standard.weight_decay: 0.3 is not on the weight_decay lattice"),
    ("budgets: [8k]", "budgets: [-8k]", r"study.yaml:3:\d+: budgets.0: cannot read token count"),
    ("epochs: [1, 2]", "epochs: [0, 2]", r"study.yaml:5:\d+: lattice.epochs.0: must be positive"),
    ("start: {epochs: 1,", "start: {epochs: 3,", r"recipes.regularized.start.epochs: 3 is not on the epochs lattice"),
    ("search: adaptive", "search: bayesian", r"recipes.regularized.search: 'bayesian' is not one of grid, adaptive"),
    ("data: {store: /nonexistent/store}", "data: {}", r"study.yaml:2:\d+: data: give exactly one of"),
    ("search: grid}", "search: grid, speed: 3}", r"recipes.standard.speed: unknown key"),
    ("search: grid}", "search: grid, repeat: {budgets: [8k], sizes: [tiny-50k]}}",
     r"recipes.standard.repeat.budgets: \[8000\] are already main budgets"),
    ("data: {store: /nonexistent/store}", "data: {prepare: {source: bible, vocab: 512}}",
     r"study.yaml:2:\d+: data.prepare.vocab: unknown key"),
    ("name: t", 'name: "../../x"', r"study.yaml:1:\d+: name: '../../x' is not a safe folder name"),
    ("lr: [1.0e-3, 3.0e-3]", "lr: [1.0e-3, .inf]", r"study.yaml:5:\d+: lattice.lr.1: must be a finite number"),
    ("weight_decay: [0.0, 0.1]", "weight_decay: [0.0, .nan]", r"lattice.weight_decay.1: must be a finite"),
    ("budgets: [8k]", "budgets: !!python/tuple [8k]", r"study.yaml:3:10: YAML tag .* is not allowed"),
    ("sizes: [tiny-50k]", "sizes: !mine [tiny-50k]", r"study.yaml:4:8: YAML tag '!mine' is not allowed"),
    ("budgets: [8k]", "budgets: [!!str 8k]", r"YAML tag 'tag:yaml.org,2002:str' is not allowed"),
    ("sizes: [tiny-50k]", "sizes: [tiny-50k]\ntraining: {seq_len: 0}", r"study.yaml:5:\d+: training.seq_len: must be positive"),
    ("sizes: [tiny-50k]", "sizes: [tiny-50k]\ntraining: {batch_size: 8, micro_batch_size: 3}",
     r"training.micro_batch_size: micro_batch_size 3 must divide batch_size 8"),
    ("sizes: [tiny-50k]", "sizes: [tiny-50k]\ntraining: {precision: fp7}", r"training.precision: precision must be one of"),
    ("sizes: [tiny-50k]", "sizes: [tiny-50k]\ntraining: {threads: two}", r"training.threads: expected an integer, got 'two'"),
    ("sizes: [tiny-50k]", "sizes: [tiny-50k]\ntraining: {epochs: 2}", r"training.epochs: unknown key"),
    # one number rule for every section: true is not 1, and a quoted number is a string
    ("lr: [1.0e-3, 3.0e-3]", "lr: [1.0e-3, true]", r"study.yaml:5:\d+: lattice.lr.1: expected a number, got True"),
    ("start: {epochs: 1,", "start: {epochs: true,", r"recipes.regularized.start.epochs: expected an integer, got True"),
    ("sizes: [tiny-50k]", "sizes: [tiny-50k]\ntraining: {batch_size: true}", r"training.batch_size: expected an integer, got True"),
    ("epochs: [1, 2]", "epochs: [1, '2']", r"lattice.epochs.1: expected an integer, got '2'"),
])
def test_bad_study_files_fail_with_positions(tmp_path, old, new, expected):
    assert old in GOOD
    with pytest.raises(StudyError, match=expected) as err:
        load_study(write(tmp_path, GOOD.replace(old, new)))
    assert "\n" not in str(err.value)


def test_numbers_without_a_dot_are_numbers(tmp_path):
    """PyYAML reads 3e-3 (no dot) as a string; a study file reads it as the number written."""
    text = GOOD.replace("lr: [1.0e-3, 3.0e-3]", "lr: [1e-3, 3e-3]").replace("lr: 3.0e-3,", "lr: 3e-3,")
    study = load_study(write(tmp_path, text + "training: {batch_size: 8, warmup_frac: 5e-2}\n"))
    assert study.lattice.lr == (1e-3, 3e-3)
    assert study.recipes["regularized"].start["lr"] == 3e-3
    assert study.training.warmup_frac == 0.05


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "nope.yaml")
    with pytest.raises(StudyError, match=r"study.yaml:\d+:\d+: not valid YAML"):
        load_study(write(tmp_path, "name: [unclosed\n"))


def test_shipped_studies_load(repo_root):
    for path in sorted((repo_root / "sweeps" / "studies").glob("*.yaml")):
        study = load_study(path)
        assert study.recipes, path


def test_a_study_seed_moves_every_run_to_other_seeds(tmp_path):
    from sweeps.planning.plan import train_spec
    from sweeps.planning.tune import point

    path = write(tmp_path, GOOD)
    p = point({"epochs": 1, "lr": 3e-3, "weight_decay": 0.1})
    first, second = load_study(path), load_study(path, seed=2)
    assert (first.seed, second.seed) == (0, 2)
    a, b = (train_spec(s, "id", 8000, "tiny-50k", p) for s in (first, second))
    assert (a.init_seed, a.data_seed) == (0, 0) and (b.init_seed, b.data_seed) == (2000, 2000)
    assert train_spec(second, "id", 8000, "tiny-50k", p, member=3).init_seed == 2003
    assert a.run_id != b.run_id
    assert load_study(write(tmp_path, GOOD + "seed: 5\n")).seed == 5


def test_root_option_overrides_a_study_root(tmp_path):
    path = write(tmp_path, GOOD + "root: from-file\n")
    assert load_study(path).root.name == "from-file"
    assert load_study(path, root=tmp_path / "elsewhere").root == tmp_path / "elsewhere"


def test_prepare_options_are_the_commands_own(tmp_path):
    """data.prepare takes every `dcsl data prepare` option, checked by the same mapping."""
    from pretrain.store import prepare_config

    text = GOOD.replace("data: {store: /nonexistent/store}",
                        "data: {prepare: {source: bible, vocab_size: 512, shuffle_buffer: 100, val_tokens: 8k}}")
    study = load_study(write(tmp_path, text))
    cfg = prepare_config(study.prepare, study.store)
    assert cfg.source.shuffle_buffer == 100 and cfg.val_tokens == 8000 and cfg.vocab_size == 512
    with pytest.raises(StudyError, match=r"study.yaml:2:\d+: data.prepare.val_tokens: .*lots"):
        load_study(write(tmp_path, text.replace("val_tokens: 8k", "val_tokens: lots")))


def test_a_study_eval_section_asks_for_few_shot(tmp_path, repo_root):
    from sweeps.planning.preflight import pin_eval_data

    quick = repo_root / "sweeps" / "studies" / "demo-quick.yaml"
    text = quick.read_text().replace("  limit: 20\n", "  limit: 20\n  num_fewshot: 2\n")
    assert "num_fewshot: 2" in text
    study = load_study(write(tmp_path, text))
    assert study.evals.fewshot == {"num_fewshot": 2, "fewshot_split": "validation"}
    assert load_study(quick).evals.fewshot == {}  # zero-shot specs keep their ids
    # The pinned identity is of the examples as scored, shots included.
    assert pin_eval_data(study) != pin_eval_data(load_study(quick))
