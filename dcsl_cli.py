"""The ``dcsl`` console script: one sub-command group per package.

Each package owns the module that defines its commands (``<package>/cli.py`` with a
``register(subparsers)`` function). They are imported lazily by name, so ``dcsl fit``
never pays for importing torch or Lightning.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# Errors that mean "bad input" (a usage error, exit 2); anything else a command raises is a
# runtime failure (exit 1). Either is one line; DCSL_DEBUG=1 shows the traceback, and a run's
# own traceback is always kept in its status.json and log.txt.
USER_ERRORS = (ValueError, FileNotFoundError, KeyError)

DESCRIPTION = ("dcsl: data-constrained pretraining scaling-law studies. Prepare a token store, "
               "train and sweep many small models, fit laws with intervals, and report.")

# command -> package whose cli module defines it
COMMANDS = {
    "data": "pretrain",
    "train": "pretrain",
    "sweep": "sweeps",
    "fit": "scaling",
    "report": "scaling",
    "compare": "scaling",
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
    """Every dcsl parser, sub-commands included, shows option defaults in its help, and reports
    a usage error in dcsl's one-line form (``dcsl report: unrecognized arguments: b.parquet``),
    exit code 2, with the command's usage line after it."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)

    command_hint: str | None = None
    """The sub-command named on the command line: extra arguments are found by the top parser,
    but belong to the sub-command's message."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse's hook
        command = self.prog if self.prog.startswith("dcsl") else f"dcsl {self.prog}"
        usage = self.format_usage()
        if command == "dcsl" and self.command_hint in COMMANDS and self._subparsers is not None:
            command = f"dcsl {self.command_hint}"
            sub = self._subparsers._group_actions[0].choices.get(self.command_hint)
            usage = sub.format_usage() if sub is not None else usage
        print(f"{command}: {message}", file=sys.stderr)
        print(usage.rstrip(), file=sys.stderr)
        raise SystemExit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    parser = DcslParser(prog="dcsl", description=DESCRIPTION)
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
    parser.command_hint = first
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        raise SystemExit(2)
    interrupted = _note_interrupts()
    try:
        _study_to_table(args)
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"dcsl {args.command}: interrupted; run the same command again to continue",
              file=sys.stderr)
        code = 130
    except SystemExit as e:
        if not interrupted():
            raise
        # Lightning turns Ctrl-C into a quiet exit(1); the run is left pending and resumable.
        print(f"dcsl {args.command}: interrupted; run the same command again to continue",
              file=sys.stderr)
        code = 130 if e.code not in (0, None) else 0
    except Exception as e:  # noqa: BLE001 - every failure becomes one line (see above)
        if os.environ.get("DCSL_DEBUG"):
            raise
        print(f"dcsl {args.command}: {one_line(e)}", file=sys.stderr)
        code = 2 if isinstance(e, USER_ERRORS) else 1
    raise SystemExit(code)


def _note_interrupts():  # noqa: ANN202 - a () -> bool
    """Remember a SIGINT (and still raise KeyboardInterrupt, as Python does), so an exit that a
    library makes of it is reported as the interruption it was."""
    seen = []

    def on_interrupt(signum: int, frame) -> None:  # noqa: ANN001
        seen.append(signum)
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_interrupt)
    return lambda: bool(seen)


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
    attrs = {"fit": ("table",), "report": ("table_or_dir",), "compare": ("first", "second")}
    for attr in attrs.get(args.command, ()):
        value = getattr(args, attr, None)
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
