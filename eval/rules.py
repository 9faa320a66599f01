"""The ensemble combination rules, named in every result (torch-free; see eval.combine).

- ``logit-mean``: average the members' logits, then softmax (the paper's authors' rule);
- ``prob-mean``: average the members' probabilities.
"""

from __future__ import annotations

RULES = ("logit-mean", "prob-mean")


def check_rules(rules: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise ValueError(f"unknown ensemble rule(s) {unknown or rules}; use {' or '.join(RULES)}")
    return tuple(rules)
