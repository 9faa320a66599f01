"""The ``dcsl`` console script: one sub-command group per package.

Each package owns the module that defines its commands (``<package>/cli.py`` with a
``register(subparsers)`` function). They are imported lazily by name, so ``dcsl fit``
never pays for importing torch or Lightning.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Errors that mean "bad input": shown as one line (set DCSL_DEBUG=1 for the traceback).
USER_ERRORS = (ValueError, FileNotFoundError, KeyError)

# command -> package whose cli module defines it
COMMANDS = {
    "data": "pretrain",
    "train": "pretrain",
    "sweep": "sweeps",
    "fit": "scaling",
    "report": "scaling",
    "ensemble": "eval",
    "eval": "eval",
    "distill": "distill",
    "demo": "sweeps",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcsl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    packages = [COMMANDS[only]] if only in COMMANDS else dict.fromkeys(COMMANDS.values())
    for package in packages:
        try:
            module = importlib.import_module(f"{package}.cli")
        except ModuleNotFoundError as e:
            if e.name != f"{package}.cli":
                raise
            continue  # a package without commands yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        raise SystemExit(2)
    try:
        _study_to_table(args)
        code = args.func(args)
    except USER_ERRORS as e:
        if os.environ.get("DCSL_DEBUG"):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"dcsl {args.command}: error: {message}", file=sys.stderr)
        code = 2
    raise SystemExit(code)


def _study_to_table(args: argparse.Namespace) -> None:
    """``dcsl fit|report STUDY.yaml`` reads the study's collected tables from its root.

    ``scaling`` works on tables and never imports the sweep code; this glue does.
    """
    attr = {"fit": "table", "report": "table_or_dir"}.get(args.command)
    value = getattr(args, attr, None) if attr else None
    if value and str(value).endswith((".yaml", ".yml")):
        from sweeps.study import load_study

        setattr(args, attr, str(load_study(value).root))


if __name__ == "__main__":
    main()
