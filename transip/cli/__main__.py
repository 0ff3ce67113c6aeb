"""``python -m transip.cli``: the ``transip`` command (useful under ``torchrun`` without ``--no-python``)."""

import sys

from ._main import main

sys.exit(main())
