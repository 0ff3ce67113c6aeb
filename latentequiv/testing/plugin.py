"""pytest plugin for latentequiv, loaded automatically through the ``pytest11`` entry point.

It adds:

* ``--equivariance-samples=N`` (ini: ``equivariance_samples``, default 8): group elements per probe;
* ``--equivariance-seed=S`` (ini: ``equivariance_seed``, default 0): seed of the sampling generator;
* the marker ``@pytest.mark.equivariance(samples=..., seed=...)``, which tags a test (select with
  ``-m equivariance``) and may override both values for that test;
* around every test, those values as the defaults of the assertions (``n_samples`` and
  ``generator`` left out), so ``assert_invariant(model, x, group=SO3())`` follows the command line,
  in ``@given`` tests too, without any fixture;
* the session-scoped fixtures ``equivariance_samples`` and ``equivariance_seed`` (``int``; command
  line, else ini: hypothesis accepts them in ``@given`` tests), and the function-scoped
  ``equivariance_generator`` (a ``torch.Generator`` seeded from the marker, command line or ini) for
  plain tests that call the probes.

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


def _setting(config: pytest.Config, name: str, node: pytest.Item | None = None) -> int:
    marker = None if node is None else node.get_closest_marker("equivariance")
    if marker is not None and marker.kwargs.get(name) is not None:
        return int(marker.kwargs[name])
    option = config.getoption(f"--equivariance-{name}")
    if option is not None:
        return int(option)
    return int(config.getini(f"equivariance_{name}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Run the test with the assertions' defaults set from the marker, command line or ini."""
    from ._settings import equivariance_settings

    samples, seed = _setting(item.config, "samples", item), _setting(item.config, "seed", item)
    with equivariance_settings(samples=samples, seed=seed):
        return (yield)


@pytest.fixture(scope="session")
def equivariance_samples(pytestconfig: pytest.Config) -> int:
    """Group elements each probe should draw: command line, else ini (default 8). Session-scoped, so
    ``@given`` tests may use it; a marker's ``samples`` reaches the assertions' defaults instead."""
    return _setting(pytestconfig, "samples")


@pytest.fixture(scope="session")
def equivariance_seed(pytestconfig: pytest.Config) -> int:
    """The seed from the command line, else the ini file (default 0). Session-scoped."""
    return _setting(pytestconfig, "seed")


@pytest.fixture
def equivariance_generator(request: pytest.FixtureRequest):
    """A ``torch.Generator`` seeded from the marker, the command line or the ini file (default 0).

    Function-scoped (a generator has state): for plain tests; in ``@given`` tests rely on the
    assertions' defaults or build ``torch.Generator().manual_seed(equivariance_seed)`` inside.
    """
    import torch

    return torch.Generator().manual_seed(_setting(request.config, "seed", request.node))
