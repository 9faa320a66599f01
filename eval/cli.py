"""``dcsl ensemble ...``, ``dcsl eval ...`` and ``dcsl export``: each defined by the module
that owns it."""

from __future__ import annotations

import argparse
import importlib


def register(sub: argparse._SubParsersAction) -> None:
    for name in ("eval.ensemble_cli", "eval.downstream_cli", "eval.export"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
