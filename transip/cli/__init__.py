"""The ``transip`` command: ``train``, ``evaluate``, ``predict``, ``md``, ``probe`` and ``data``.

Each subcommand is a thin layer over library functions; ``main(argv)`` returns the exit status
(0 on success, 2 for a usage or configuration error, 130 when interrupted).
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
