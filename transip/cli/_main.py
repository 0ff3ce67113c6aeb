"""Argument parsing and dispatch for the ``transip`` command."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Sequence

from . import _data, _evaluate, _export, _md, _predict, _probe, _train
from ._common import UsageError

_COMMANDS = (_train, _evaluate, _predict, _md, _probe, _data, _export)

_DESCRIPTION = """\
TransIP: a Transformer interatomic potential with learned latent equivariance.

Run `transip train` with no arguments to train a small model on the bundled GFN2-xTB set
(a few CPU minutes), then `transip evaluate runs/<run>/best.pt <data>`.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``transip`` parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="transip", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from transip import __version__

    parser.add_argument("--version", action="version", version=f"transip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def joined_overrides(argv: list[str]) -> list[str]:
    """``--section.key value`` as ``--section.key=value`` in a ``train`` command line (argparse
    would take the value for the config file)."""
    if "train" not in argv:
        return argv
    start = argv.index("train") + 1
    out = argv[:start]
    rest = iter(argv[start:])
    for item in rest:
        if _OVERRIDE.fullmatch(item):
            value = next(rest, None)
            if value is None or value.startswith("--"):
                raise UsageError(f"{item} needs a value ({item}=VALUE)")
            item = f"{item}={value}"
        out.append(item)
    return out


_OVERRIDE = re.compile(r"--[A-Za-z_]\w*\.[A-Za-z_]\w*")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``transip`` command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        argv = joined_overrides(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        print(f"transip train: error: {e}", file=sys.stderr)
        return 2
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = unknown if getattr(args, "accepts_overrides", False) else []
    # the package (and torch) load only once the command line is parsed: --help stays fast
    from transip.checkpoint import CheckpointError
    from transip.data import DataError
    from transip.training import ConfigError

    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", force=True)
    # warnings as one line each, like the errors (not Python's "file:line: UserWarning: ...")
    shown = warnings.showwarning
    prefix = f"transip {args.command}: warning: "

    def one_line(message, *_, **__) -> None:
        text = str(message)
        print(text if text.startswith(prefix) else f"{prefix}{text}", file=sys.stderr)

    warnings.showwarning = one_line
    try:
        return int(args.run(args) or 0)
    except (CheckpointError, ConfigError, DataError, FileNotFoundError, UsageError) as e:
        print(f"transip {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"transip {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
