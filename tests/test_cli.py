"""One set of command-line conventions for every dcsl command (README, "The pieces")."""

import argparse

import pytest

from dcsl_cli import build_parser, main


def _options(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*prefix, name))
        elif action.option_strings and action.dest not in ("help", "version"):
            yield " ".join(prefix), action


def test_every_option_has_plain_help_text():
    options = list(_options(build_parser()))
    assert len(options) > 100
    for command, action in options:
        assert action.help and "``" not in action.help, (command, action.option_strings)


def test_one_flag_one_meaning():
    flags = {flag for _, action in _options(build_parser()) for flag in action.option_strings}
    assert "--out" not in flags  # a store is --store, a study root --root, a run --run-dir
    stores = [c for c, a in _options(build_parser()) if "--store" in a.option_strings]
    assert {"data prepare", "train"} <= set(stores)
    for command, action in _options(build_parser()):
        if {"--tasks", "--rules", "--members", "--teachers", "--files"} & set(action.option_strings):
            assert action.nargs in ("+", "*"), (command, action.option_strings)  # lists are words


def test_help_shows_defaults_and_sizes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "(default: 0.003)" in text and "tiny-16k" in text


def test_version_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("dcsl ")
    with pytest.raises(SystemExit) as done:
        main(["train", "--size", "huge"])
    assert done.value.code == 2
