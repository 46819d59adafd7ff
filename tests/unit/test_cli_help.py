"""Every command's ``--help`` reads whole on an 80-column terminal (issue 35, item 7).

Rich lays the options out as a table and, when the columns do not fit, cuts cells with
"…": a newcomer saw ``--trust-remote-c…`` and ``--delete-missin…`` and could not type
them. The commands group their rarer options into panels (each panel is a table of its
own, sized to its own widest names) and keep help texts short, so nothing is cut.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from splare_connect.cli import app

WIDTH = "80"
# ingest's help was 217 lines at 80 columns (108 with the panels and shorter texts): room
# for an option or two, not for the old sprawl.
INGEST_HELP_LINES = 120


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(path, click command)`` for the app and every command and subcommand under it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


COMMANDS = list(command_paths(typer.main.get_command(app)))


def option_names(command: Any) -> list[str]:
    """Every spelling of every visible option: ``--top-k``, ``-k``, ``--no-dense`` ..."""
    names: list[str] = []
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option" and not getattr(param, "hidden", False):
            names += [*param.opts, *param.secondary_opts]
    return names


def help_texts(command: Any) -> list[str]:
    """The help of the command and of each of its parameters, as written in the source."""
    return [text for text in (command.help, *(getattr(p, "help", None) for p in command.params)) if text]


def help_at_80_columns(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> str:
    # typer reads TERMINAL_WIDTH once, at import; a CI that sets it must not widen this test.
    monkeypatch.setattr("typer.rich_utils.MAX_WIDTH", None, raising=False)
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": WIDTH})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "splare-connect" for p, _ in COMMANDS])
def test_help_at_80_columns_cuts_nothing(path: tuple[str, ...], command: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    output = help_at_80_columns(path, monkeypatch)
    assert max(len(line) for line in output.splitlines()) <= int(WIDTH)
    cut = [line.strip() for line in output.splitlines() if "…" in line]
    assert not cut, "help text cut at 80 columns:\n" + "\n".join(cut)
    for name in option_names(command):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", output), f"{name} is not shown whole"
    shown = set(output.split())
    for text in help_texts(command):
        lost = [word for word in text.replace("\\[", "[").split() if word not in shown]
        assert not lost, f"help text lost words (read as Rich markup?): {lost} in {text!r}"


def test_ingest_help_fits_a_few_screens(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = help_at_80_columns(("ingest",), monkeypatch).splitlines()
    assert len(lines) <= INGEST_HELP_LINES, f"ingest --help is {len(lines)} lines at 80 columns"
