"""Every run kind the sweep launches, by name: each is defined by the package that owns it
(``pretrain.runkind``, ``eval.kinds``, ``distill.kinds``); importing them loads no torch.
"""

from __future__ import annotations

from distill.kinds import KINDS as DISTILL_KINDS
from eval.kinds import KINDS as EVAL_KINDS
from pretrain.runkind import TRAIN, RunKind

KINDS: dict[str, RunKind] = {k.name: k for k in (TRAIN, *EVAL_KINDS, *DISTILL_KINDS)}


def kind_of(spec_json: dict) -> RunKind:
    name = spec_json.get("kind")
    if name not in KINDS:
        raise ValueError(f"unknown run kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]
