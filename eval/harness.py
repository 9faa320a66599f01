"""An lm-evaluation-harness ``LM`` for dcsl checkpoints: run any harness task on our models.

Optional: needs the ``[lmeval]`` extra (``pip install 'dcsl[lmeval]'``). Scoring goes
through ``eval.likelihood`` (same tokenisation rules, batching and ensemble combination
as ``dcsl eval``), so the harness and our own scorer agree by construction; a test checks
they do on real task files.

    python -m eval.harness RUN [RUN ...] --tasks hellaswag,winogrande --limit 100

or from Python::

    lm = DcslLM(runs=["runs/tiny-..."])
    lm_eval.simple_evaluate(model=lm, tasks=["arc_easy"])

``generate_until`` is not supported: dcsl studies score likelihoods only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer

try:
    from lm_eval import utils as lm_utils
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("eval.harness needs lm-evaluation-harness: pip install 'dcsl[lmeval]' "
                      f"(import failed: {e})") from None

from eval.ensemble import open_members
from eval.likelihood import encode_pairs, score_pairs, tok_encode
from pretrain.load import resolve_device
from pretrain.tokenizer import eos_id, load_tokenizer


@register_model("dcsl")
class DcslLM(LM):
    """One dcsl model, or an ensemble of several (``rule``: logit-mean or prob-mean)."""

    def __init__(self, runs: str | Sequence[str | Path] = (), rule: str = "logit-mean",
                 batch_size: int | str | None = 32, device: str | None = "auto",
                 max_batch_size: int | None = None) -> None:
        super().__init__()
        if isinstance(runs, str):  # from --model_args: runs=dirA:dirB
            runs = [r for r in runs.split(":") if r]
        if not runs:
            raise ValueError("DcslLM needs at least one run directory (runs=...)")
        members = open_members(runs)
        self._device = resolve_device(device or "auto")
        # The harness may pass batch_size "auto" (probe memory) or None; we take a fixed size.
        size = int(batch_size) if str(batch_size).isdigit() else 32
        self._setup([m.load_model(self.device) for m in members],
                    load_tokenizer(members[0].store.tokenizer_path),
                    min(m.spec.seq_len for m in members), rule, size)

    @classmethod
    def from_models(cls, models: Sequence[torch.nn.Module], tokenizer: Tokenizer, max_length: int,
                    rule: str = "logit-mean", batch_size: int = 32) -> DcslLM:
        """An adapter around models already in memory (tests, notebooks)."""
        self = cls.__new__(cls)
        LM.__init__(self)
        self._device = next(models[0].parameters()).device
        self._setup(list(models), tokenizer, max_length, rule, batch_size)
        return self

    def _setup(self, models: list[torch.nn.Module], tokenizer: Tokenizer, max_length: int, rule: str,
               batch_size: int) -> None:
        self.models, self.tokenizer, self.max_length = models, tokenizer, max_length
        self.rule, self.batch_size = rule, batch_size
        self.prefix_id = eos_id(tokenizer)

    @property
    def eot_token_id(self) -> int:
        return self.prefix_id

    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> tuple:
        return score_pairs(self.models, pairs, self.max_length, self.rule, self.batch_size, self._device)

    def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = encode_pairs(self.tokenizer, [req.args for req in requests], self.prefix_id)
        lls, greedy = self._score(pairs)
        out = [(float(ll), bool(g)) for ll, g in zip(lls, greedy, strict=True)]
        for req, res in zip(requests, out, strict=True):
            self.cache_hook.add_partial("loglikelihood", req.args, res)
        return out

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        """Whole-document log-likelihood in disjoint windows of the model's context, each
        window conditioned on as much preceding text as fits (the harness's rolling rule)."""
        strings = [req.args[0] for req in requests]
        windows, owner = [], []
        for i, tokens in enumerate(tok_encode(self.tokenizer, strings)):
            for window in lm_utils.get_rolling_token_windows(
                    token_list=tokens, prefix_token=self.prefix_id, max_seq_len=self.max_length, context_len=1):
                windows.append(lm_utils.make_disjoint_window(window))
                owner.append(i)
        lls, _ = self._score(windows)
        totals = [0.0] * len(strings)
        for i, ll in zip(owner, lls, strict=True):
            totals[i] += float(ll)
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError("the dcsl adapter scores log-likelihoods only; generation tasks "
                                  "(generate_until) are not supported")


def main(argv: list[str] | None = None) -> None:
    import lm_eval
    import lm_eval.tasks

    p = argparse.ArgumentParser(prog="python -m eval.harness", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="training run directories (several: an ensemble)")
    p.add_argument("--tasks", required=True, help="comma-separated lm-evaluation-harness task names")
    p.add_argument("--limit", type=float, default=None)
    p.add_argument("--num-fewshot", type=int, default=None)
    p.add_argument("--rule", choices=["logit-mean", "prob-mean"], default="logit-mean")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--include-path", default=None, help="folder of extra task YAML files")
    p.add_argument("--output", default=None, help="write the harness's results JSON here")
    args = p.parse_args(argv)
    lm = DcslLM(args.runs, rule=args.rule, batch_size=args.batch_size, device=args.device)
    manager = lm_eval.tasks.TaskManager(include_path=args.include_path)
    results = lm_eval.simple_evaluate(model=lm, tasks=args.tasks.split(","), limit=args.limit,
                                      num_fewshot=args.num_fewshot, task_manager=manager,
                                      log_samples=False)
    print(lm_eval.utils.make_table(results))
    if args.output:
        Path(args.output).write_text(json.dumps(results["results"], indent=2, default=str))


if __name__ == "__main__":
    main()
