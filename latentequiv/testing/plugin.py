"""pytest plugin for latentequiv, loaded automatically through the ``pytest11`` entry point.

It adds:

* ``--equivariance-samples=N`` (ini: ``equivariance_samples``, default 8): group elements per probe;
* ``--equivariance-seed=S`` (ini: ``equivariance_seed``, default 0): seed of the sampling generator;
* the marker ``@pytest.mark.equivariance(samples=..., seed=...)``, which tags a test (select with
  ``-m equivariance``) and may override both values for that test;
* the fixtures ``equivariance_samples`` (an ``int``) and ``equivariance_generator`` (a seeded
  ``torch.Generator``) to pass to the probes and assertions.

Importing it touches only pytest; torch is imported when ``equivariance_generator`` is first used.
Disable it with ``-p no:latentequiv``.
"""

from __future__ import annotations

import pytest

_MARKER = (
    "equivariance(samples=None, seed=None): an equivariance test; optionally overrides "
    "--equivariance-samples / --equivariance-seed for this test"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("latentequiv", "equivariance tests (latentequiv)")
    group.addoption(
        "--equivariance-samples",
        type=int,
        default=None,
        help="group elements each equivariance probe draws (ini: equivariance_samples, default 8)",
    )
    group.addoption(
        "--equivariance-seed",
        type=int,
        default=None,
        help="seed of the equivariance_generator fixture (ini: equivariance_seed, default 0)",
    )
    parser.addini("equivariance_samples", "group elements per equivariance probe", default="8")
    parser.addini("equivariance_seed", "seed of the equivariance_generator fixture", default="0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER)


def _setting(request: pytest.FixtureRequest, name: str) -> int:
    marker = request.node.get_closest_marker("equivariance")
    if marker is not None and marker.kwargs.get(name) is not None:
        return int(marker.kwargs[name])
    option = request.config.getoption(f"--equivariance-{name}")
    if option is not None:
        return int(option)
    return int(request.config.getini(f"equivariance_{name}"))


@pytest.fixture
def equivariance_samples(request: pytest.FixtureRequest) -> int:
    """Group elements each probe should draw: marker kwarg, else command line, else ini (default 8)."""
    return _setting(request, "samples")


@pytest.fixture
def equivariance_generator(request: pytest.FixtureRequest):
    """A ``torch.Generator`` seeded from the marker, the command line or the ini file (default 0)."""
    import torch

    return torch.Generator().manual_seed(_setting(request, "seed"))
