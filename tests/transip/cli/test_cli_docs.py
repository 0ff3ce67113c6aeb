"""docs/transip/cli.md shows, for every command, a usage block with every option the command takes."""

import argparse
import re
from pathlib import Path

import pytest

from transip.cli._main import build_parser

CLI_MD = Path(__file__).resolve().parents[3] / "docs" / "transip" / "cli.md"


def _commands() -> dict[str, argparse.ArgumentParser]:
    """``{"train": parser, ..., "data convert": parser}``: every command and data subcommand."""
    found = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                        found[f"{prefix}{name}".strip()] = sub
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    return found


def _usage_block(command: str) -> str:
    """The text block of cli.md whose first line is the command's usage line."""
    blocks = re.findall(r"```text\n(.*?)```", CLI_MD.read_text(), flags=re.S)
    start = re.compile(rf"^(usage: )?transip {re.escape(command)} (?!.*\$)")
    for block in blocks:
        if start.match(block) and not block.startswith("$"):
            return block
    raise AssertionError(f"cli.md has no usage block for 'transip {command}'")


COMMANDS = _commands()


def test_every_command_is_found():
    assert {"train", "evaluate", "predict", "md", "probe", "data convert", "data fit-references"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_usage_block_of_each_command_shows_its_options(command):
    block = _usage_block(command)
    options = [
        action.option_strings
        for action in COMMANDS[command]._actions
        if action.option_strings and action.option_strings != ["-h", "--help"]
    ]
    shown = lambda o: re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", block)  # noqa: E731
    missing = sorted(max(names, key=len) for names in options if not any(shown(o) for o in names))
    assert not missing, f"cli.md's usage of 'transip {command}' lacks {missing}"


@pytest.mark.parametrize(
    "command", sorted(c for c, p in COMMANDS.items() if "--overwrite" in p._option_string_actions)
)
def test_every_command_that_writes_a_file_shows_overwrite(command):
    assert "[--overwrite]" in _usage_block(command)
