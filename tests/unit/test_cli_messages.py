"""Every flag a message names exists: a message that tells the user to run `dcsl X --flag`
(or to choose another --flag) must name a flag of that command, or of some dcsl command."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dcsl_cli

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pretrain", "eval", "distill", "sweeps", "scaling")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMAND = re.compile(r"\bdcsl\s+([a-z]+)(?:\s+([a-z]+))?")
# Other programs' flags that messages quote (installing, Slurm, Python itself).
OTHER_TOOLS = ("pip ", "sbatch", "srun", "#SBATCH", "python -m pytest", "torchrun", "--index-url")


def options_by_command() -> dict[tuple[str, ...], set[str]]:
    parser = dcsl_cli.build_parser()
    out: dict[tuple[str, ...], set[str]] = {}

    def walk(p, path: tuple[str, ...]) -> None:  # noqa: ANN001
        out[path] = {o for a in p._actions for o in a.option_strings}
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))

    walk(parser, ())
    return out


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def literals() -> list[tuple[str, int, str, bool]]:
    """(file, line, text, raised) of every string literal (f-strings' text parts joined) in the
    code; raised: it is part of an exception a user sees as the command's one-line error."""
    found = []
    files = [REPO / "dcsl_cli.py", *(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))]
    for path in files:
        tree = ast.parse(path.read_text())
        in_raise = {id(n) for r in ast.walk(tree) if isinstance(r, ast.Raise) for n in ast.walk(r)}
        for node in ast.walk(tree):
            text = _text(node)
            if text is not None:
                found.append((str(path.relative_to(REPO)), node.lineno, text, id(node) in in_raise))
    return found


def test_every_flag_a_message_names_exists():
    options = options_by_command()
    every = set().union(*options.values())
    wrong = []
    for where, line, text, raised in literals():
        flags = FLAG.findall(text)
        commands = [tuple(c for c in m if c) for m in COMMAND.findall(text)]
        if not flags or any(tool in text for tool in OTHER_TOOLS) or not (commands or raised):
            continue
        for flag in flags:
            allowed = set()
            for command in commands:
                # "dcsl sweep launch" names a sub-command; "dcsl fit TABLE" only the command
                allowed |= options.get(command, options.get(command[:1], set()))
            if flag not in (allowed if commands and allowed else every):
                wrong.append(f"{where}:{line}: {flag} in {text[:90]!r}")
    assert not wrong, "\n".join(wrong)
