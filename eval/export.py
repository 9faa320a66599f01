"""``dcsl export RUN OUT``: a finished run as a Hugging Face Llama directory.

A training or distillation run exports as one model. An ensemble run exports as its
members (``OUT/member-0``, ``OUT/member-1``, ...), or with ``--soup`` as one model whose
weights are the members' uniform average. Each directory holds ``config.json``,
``model.safetensors`` and the store's tokenizer, which transformers,
lm-evaluation-harness and vLLM load as a ``LlamaForCausalLM``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pretrain.hf import save_hf_llama
from pretrain.load import TrainedRun, open_run
from pretrain.rundir import RunDir


def export_model(run: TrainedRun, out: Path) -> Path:
    """One trained model and its store's tokenizer as a Hugging Face Llama in ``out``."""
    return save_hf_llama(run.load_model(), out, run.store.path / "tokenizer.json", run.store.eos_id,
                         run.spec.seq_len)


def export_run(path: str | Path, out: str | Path, soup: bool = False) -> list[Path]:
    """Export the run at ``path`` into ``out``; the directories written."""
    from eval.ensemble import check_members, open_members
    from eval.soup import uniform_soup

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty; export into a new folder")
    spec = RunDir(path).spec() or {}
    if spec.get("kind") != "ensemble":
        if soup:
            raise ValueError(f"--soup needs an ensemble run; {path} is a {spec.get('kind')!r} run")
        return [export_model(open_run(path), out)]
    members = open_members(spec["member_dirs"], spec["member_ids"])
    check_members(members)
    if soup:
        first = members[0]
        model = uniform_soup(members)
        written = [save_hf_llama(model, out, first.store.path / "tokenizer.json", first.store.eos_id,
                                 first.spec.seq_len)]
        (out / "soup.json").write_text(json.dumps(
            {"members": [{"run_id": m.run_id, "path": str(m.path)} for m in members]}, indent=2))
        return written
    return [export_model(m, out / f"member-{k}") for k, m in enumerate(members)]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a finished run as a Hugging Face Llama (config.json, safetensors, tokenizer)",
        description="Write a finished run as a Hugging Face Llama directory: config.json, "
                    "model.safetensors and the store's tokenizer.")
    p.add_argument("run", metavar="RUN", help="a training, distillation or ensemble run directory")
    p.add_argument("out", metavar="OUT", help="new folder to write (an ensemble writes OUT/member-K)")
    p.add_argument("--soup", action="store_true",
                   help="export an ensemble as one model: the uniform average of its members' weights")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    for folder in export_run(args.run, args.out, args.soup):
        print(folder)
    return 0
