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

# Errors that mean "bad input" (a usage error, exit 2); anything else a command raises is a
# runtime failure (exit 1). Either is one line; DCSL_DEBUG=1 shows the traceback, and a run's
# own traceback is always kept in its status.json and log.txt.
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
    "export": "eval",
    "distill": "distill",
    "demo": "sweeps",
}


class HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it (or there
    is none to say: a flag, a required option, an empty default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or "%(default)" in text or not action.option_strings
                or default in (None, False, [], "", argparse.SUPPRESS)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else "%(default)s"
        return f"{text} (default: {shown})"


class DcslParser(argparse.ArgumentParser):
    """Every dcsl parser, sub-commands included, shows option defaults in its help."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    parser = DcslParser(prog="dcsl", description=__doc__.splitlines()[0])
    try:
        parser.add_argument("--version", action="version", version=f"dcsl {version('dcsl')}")
    except PackageNotFoundError:  # running from a checkout that is not installed
        parser.add_argument("--version", action="version", version="dcsl (not installed)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=DcslParser)
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
    except KeyboardInterrupt:
        print(f"dcsl {args.command}: interrupted; run the same command again to continue",
              file=sys.stderr)
        code = 130
    except Exception as e:  # noqa: BLE001 - every failure becomes one line (see above)
        if os.environ.get("DCSL_DEBUG"):
            raise
        print(f"dcsl {args.command}: {one_line(e)}", file=sys.stderr)
        code = 2 if isinstance(e, USER_ERRORS) else 1
    raise SystemExit(code)


def one_line(error: BaseException) -> str:
    """An exception as one line: input errors by their message, failures with their type."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    message = " ".join(message.split()) or type(error).__name__
    if isinstance(error, USER_ERRORS):
        return message
    return f"{type(error).__name__}: {message} (DCSL_DEBUG=1 shows the traceback)"


def _study_to_table(args: argparse.Namespace) -> None:
    """``dcsl fit|report STUDY.yaml`` reads the study's collected tables from its root.

    ``scaling`` works on tables and never imports the sweep code; this glue does.
    """
    attr = {"fit": "table", "report": "table_or_dir"}.get(args.command)
    value = getattr(args, attr, None) if attr else None
    if value and str(value).endswith((".yaml", ".yml")):
        from sweeps.study import load_study

        root = load_study(value).root
        if not any((root / name).is_file() for name in ("results.parquet", "results.csv")):
            raise FileNotFoundError(
                f"{value} has no results in {root} yet: run `dcsl sweep launch {value}` first "
                f"(or `dcsl sweep collect {value}` if its runs exist)")
        setattr(args, attr, str(root))


if __name__ == "__main__":
    main()
