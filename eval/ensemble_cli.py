"""``dcsl ensemble eval``: the validation loss of nested ensembles of trained members."""

from __future__ import annotations

import argparse

from pretrain.cli import add_device_flags, add_run_location, run_dir_for


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("ensemble", help="ensembles of trained runs").add_subparsers(
        dest="ensemble_command", metavar="ACTION")
    e = group.add_parser(
        "eval", help="validation loss of the ensembles of members 0..K-1 for every K, in one pass",
        description="Members are training run directories, in order; member k joins at K = k + 1.")
    e.add_argument("--members", nargs="+", required=True, metavar="RUN_DIR", help="member run directories")
    e.add_argument("--rules", nargs="+", default=["logit-mean", "prob-mean"],
                   choices=["logit-mean", "prob-mean", "uniform-soup"],
                   help="logit-mean: average logits, then softmax (the paper's); prob-mean: average "
                        "probabilities; uniform-soup: average the members' weights into one model")
    e.add_argument("--store", default=None, help="store with the validation set (default: member 0's)")
    e.add_argument("--seq-len", type=int, default=None, help="evaluation length (default: member 0's)")
    add_run_location(e)
    e.add_argument("--batch-size", type=int, default=16, help="sequences per member forward pass")
    e.add_argument("--buffer-mb", type=int, default=512, help="memory for one chunk's combined predictions")
    e.add_argument("--keep-members", action="store_true", help="keep all members loaded (no reloads)")
    add_device_flags(e)
    e.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from eval.ensemble import run_ensemble
    from eval.kinds import EnsembleEvalSpec
    from pretrain.load import open_run
    from pretrain.store import TokenStore

    first = open_run(args.members[0])
    members = [first] + [open_run(d) for d in args.members[1:]]
    store = TokenStore(args.store or first.spec.store)
    spec = EnsembleEvalSpec(
        size=first.spec.size, member_ids=tuple(m.run_id for m in members),
        member_dirs=tuple(str(m.path) for m in members), store=str(store.path), store_id=store.store_id,
        seq_len=args.seq_len or first.spec.seq_len, rules=tuple(args.rules), batch_size=args.batch_size,
        buffer_mb=args.buffer_mb, keep_members=args.keep_members, device=args.device, threads=args.threads,
    )
    run_dir = run_dir_for(args, spec)
    result = run_ensemble(spec, run_dir, log=lambda _: None)
    print(f"{run_dir}: {result['val_tokens']:,} validation tokens, mean member loss "
          f"{result['mean_member_loss']:.4f}")
    print("K  " + "  ".join(f"{rule:>10}" for rule in result["rules"]))
    for k in range(result["K"]):
        print(f"{k + 1:<2} " + "  ".join(f"{result['losses'][r][k]:>10.4f}" for r in result["rules"]))
    return 0
