"""``dcsl distill generate`` (teacher sampling) and ``dcsl distill student`` (training)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pretrain.cli import (
    NOT_FLAGS,
    add_device_flags,
    add_run_location,
    add_spec_flags,
    given_spec_flags,
    run_dir_for,
)

# Student fields without a generated flag: dcsl train's (content ids, a study's shapes, trackers,
# sweep labels), those the command fills in itself, --mode (its own choices), and continuing
# a base (dcsl train's).
_STUDENT_OWN = {*NOT_FLAGS, "teacher_ids", "teacher_dirs", "synthetic_store", "synthetic_store_id",
                "init_from", "mode"}


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("distill", help="teacher sampling and distillation students").add_subparsers(
        dest="distill_command", metavar="ACTION")
    g = group.add_parser("generate", help="sample a teacher (one run or an ensemble) into a token store",
                         description="Sequences start from EOS; resumable; deterministic for a seed.")
    g.add_argument("--teachers", nargs="+", required=True, metavar="RUN_DIR",
                   help="teacher run directories (one: self-distillation)")
    g.add_argument("--tokens", required=True, help="sampled tokens, e.g. 200k (rounded up to sequences)")
    g.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: the teachers')")
    g.add_argument("--store", default=None, help="real store: tokenizer and val set (default: teacher 0's)")
    g.add_argument("--rule", default="logit-mean", choices=["logit-mean", "prob-mean"],
                   help="how an ensemble teacher's members combine")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (the paper's: 1)")
    g.add_argument("--sampling-seed", type=int, default=0, help="seed of the sampling")
    g.add_argument("--batch-size", type=int, default=32, help="sequences sampled together")
    add_run_location(g)
    add_device_flags(g)
    g.set_defaults(func=_generate)

    s = group.add_parser("student", help="train a distillation student (resumes if interrupted)")
    s.add_argument("--mode", choices=["sequence", "token"], default="sequence",
                   help="sequence: train on real + synthetic data; token: KL to the teacher on real data")
    s.add_argument("--synthetic", default=None,
                   help="sequence mode: synthetic store, or the generate run directory holding it")
    s.add_argument("--teachers", nargs="*", default=None, metavar="RUN_DIR",
                   help="teacher run directories (sequence mode: default the synthetic store's teachers)")
    add_run_location(s)
    from distill.spec import DistillSpec
    from pretrain.cli import field_docs

    docs = {**field_docs(DistillSpec.__mro__[1]), **field_docs(DistillSpec)}
    add_spec_flags(s, DistillSpec, _STUDENT_OWN, docs)
    s.set_defaults(func=_student)


def _generate(args: argparse.Namespace) -> int:
    from distill.generate import run_generate
    from distill.spec import GenerateSpec
    from pretrain.load import open_run
    from pretrain.store import TokenStore, parse_tokens

    teachers = [open_run(d) for d in args.teachers]
    store = TokenStore(args.store or teachers[0].spec.store)
    spec = GenerateSpec(
        teacher_ids=tuple(t.run_id for t in teachers), teacher_dirs=tuple(str(t.path) for t in teachers),
        store=str(store.path), store_id=store.store_id, tokens=parse_tokens(args.tokens),
        seq_len=args.seq_len or min(t.spec.seq_len for t in teachers), rule=args.rule,
        temperature=args.temperature, seed=args.sampling_seed, batch_size=args.batch_size, device=args.device,
        threads=args.threads,
    )
    run_dir = run_dir_for(args, spec)
    result = run_generate(spec, run_dir)
    print(f"{result['store']}: {result['sampled_tokens']:,} sampled tokens in {result['sequences']:,} "
          f"sequences, {result['tokens_per_s']:,.0f} tokens/s")
    return 0


def _student(args: argparse.Namespace) -> int:
    from distill.spec import DistillSpec
    from distill.student import run_distill
    from pretrain.load import open_run
    from pretrain.store import TokenStore, parse_tokens

    store = TokenStore(args.store)
    values = given_spec_flags(args, DistillSpec, _STUDENT_OWN)
    values["tokens"] = parse_tokens(values["tokens"])
    teacher_dirs = args.teachers
    syn_path, syn_id = "", ""
    if args.mode == "sequence":
        if not args.synthetic:
            raise ValueError("a sequence-level student needs --synthetic (a store or generate run directory)")
        path = Path(args.synthetic)
        syn = TokenStore(path / "store" if (path / "store" / "manifest.json").is_file() else path)
        syn_path, syn_id = str(syn.path), syn.store_id
        teacher_dirs = teacher_dirs or syn.manifest.get("teacher", {}).get("dirs")
    if not teacher_dirs:
        raise ValueError("no teachers: pass --teachers RUN_DIR ...")
    teachers = [open_run(d) for d in teacher_dirs]
    spec = DistillSpec(
        store_id=store.store_id, mode=args.mode, teacher_ids=tuple(t.run_id for t in teachers),
        teacher_dirs=tuple(str(t.path) for t in teachers), synthetic_store=syn_path,
        synthetic_store_id=syn_id, **values,
    )
    run_dir = run_dir_for(args, spec)
    r = run_distill(spec, run_dir)
    if not r:  # a rank other than 0 of a multi-process student: rank 0 reports
        return 0
    share = "undefined" if r["retained_share"] is None else f"{r['retained_share']:.3f}"
    print(f"{run_dir}: student {r['final_val_loss']:.4f} nats/token in {r['steps']} steps; teacher "
          f"{r['teacher_loss']:.4f}, single {r['single_loss']:.4f}, retained share {share}")
    return 0
