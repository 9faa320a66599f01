"""The ensemble combination rules, named in every result (torch-free; see eval.combine).

- ``logit-mean``: average the members' logits, then softmax (the paper's authors' rule);
- ``prob-mean``: average the members' probabilities;
- ``uniform-soup``: average the members' weights into one model (eval.soup). Only
  validation-loss ensembles offer it; it is not a way of combining outputs.
"""

from __future__ import annotations

from scaling.table.contract import RULES as LOSS_RULES

# The names live in the results table's contract (a module of constants that imports
# nothing), which the analysis reads them from too: one list for producer and consumer.
SOUP = "uniform-soup"
RULES = tuple(rule for rule in LOSS_RULES if rule != SOUP)
"""How members' outputs combine (a soup averages weights instead)."""
__all__ = ["LOSS_RULES", "RULES", "SOUP", "check_rules"]


def check_rules(rules: tuple[str, ...] | list[str], allowed: tuple[str, ...] = RULES) -> tuple[str, ...]:
    unknown = [r for r in rules if r not in allowed]
    if unknown or not rules:
        raise ValueError(f"unknown ensemble rule(s) {unknown or rules}; use {' or '.join(allowed)}")
    return tuple(rules)
