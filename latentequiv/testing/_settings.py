"""The defaults the assertions use when ``n_samples`` or ``generator`` are not given.

Outside pytest: 8 samples and torch's global random state. Under pytest the plugin sets them for the
duration of each test from the ``equivariance`` marker, ``--equivariance-samples`` /
``--equivariance-seed``, or the ini file, so a test needs no fixture (and ``@given`` tests no
function-scoped one). Importing this module loads nothing (the plugin imports it in every run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class EquivarianceSettings:
    """``samples``: group elements per assertion; ``seed``: seeds a fresh generator per assertion call
    (``None``: torch's global random state)."""

    samples: int = 8
    seed: int | None = None


_current = EquivarianceSettings()


def current_settings() -> EquivarianceSettings:
    """The settings in force (the plugin's, inside a pytest test)."""
    return _current


@contextlib.contextmanager
def equivariance_settings(*, samples: int = 8, seed: int | None = None) -> Iterator[EquivarianceSettings]:
    """Use these defaults inside the ``with`` block (what the pytest plugin does around each test).

    Example:
        >>> with equivariance_settings(samples=3, seed=1):
        ...     current_settings()
        EquivarianceSettings(samples=3, seed=1)
    """
    global _current
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    previous, _current = _current, EquivarianceSettings(samples=samples, seed=seed)
    try:
        yield _current
    finally:
        _current = previous
