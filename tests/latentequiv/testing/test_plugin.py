"""The pytest plugin: options, ini values, marker overrides and fixtures, run in a nested pytest."""

import subprocess
import sys

pytest_plugins = ["pytester"]

TESTS = """
import pytest
from latentequiv.testing import current_settings

def test_defaults(equivariance_samples, equivariance_seed, equivariance_generator):
    assert equivariance_samples == {samples} and equivariance_seed == {seed}
    assert equivariance_generator.initial_seed() == {seed}
    assert current_settings().samples == {samples} and current_settings().seed == {seed}

@pytest.mark.equivariance(samples=2, seed=11)
def test_marker_overrides(equivariance_generator):
    assert current_settings().samples == 2 and current_settings().seed == 11
    assert equivariance_generator.initial_seed() == 11
"""

GIVEN_TESTS = """
import pytest
import torch
from hypothesis import given, settings
from latentequiv.groups import SO3
from latentequiv.testing import assert_invariant, current_settings, point_clouds

def energy(x):
    return torch.cdist(x, x).sum(dim=(1, 2))

@settings(max_examples=3, deadline=None)
@given(point_clouds(min_points=2, max_points=5))
def test_given_with_session_fixtures(equivariance_samples, equivariance_seed, x):
    report = assert_invariant(energy, x, group=SO3())
    assert report.n_samples == equivariance_samples == 3

@pytest.mark.equivariance(samples=5)
@settings(max_examples=3, deadline=None)
@given(point_clouds(min_points=2, max_points=5))
def test_marker_reaches_the_assertions(x):
    assert assert_invariant(energy, x, group=SO3()).n_samples == 5

def test_seeded_assertions_repeat():
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    bent = lambda p: p[:, 0, 0]
    a = assert_invariant(bent, x, group=SO3(), atol=1e9)
    b = assert_invariant(bent, x, group=SO3(), atol=1e9)
    assert a == b and a.worst_g is not None
"""


def test_given_tests_use_session_fixtures_and_the_settings(pytester):
    """Hypothesis refuses function-scoped fixtures in @given tests; these are session-scoped, and
    --equivariance-samples and the marker reach the assertions' defaults without any fixture."""
    pytester.makepyfile(GIVEN_TESTS)
    pytester.runpytest_inprocess("--equivariance-samples=3", "-p", "no:cacheprovider").assert_outcomes(
        passed=3
    )


def test_assertions_outside_pytest_use_eight_samples():
    import torch

    from latentequiv.groups import SO3
    from latentequiv.testing import assert_invariant, current_settings, equivariance_settings

    x = torch.randn(2, 4, 3, dtype=torch.float64)
    energy = lambda p: torch.cdist(p, p).sum(dim=(1, 2))  # noqa: E731
    with equivariance_settings(samples=8, seed=None):
        assert assert_invariant(energy, x, group=SO3()).n_samples == 8
        assert current_settings().seed is None


def test_defaults_and_marker(pytester):
    pytester.makepyfile(TESTS.format(samples=8, seed=0))
    pytester.runpytest_inprocess("--strict-markers").assert_outcomes(passed=2)


def test_command_line_options(pytester):
    pytester.makepyfile(TESTS.format(samples=3, seed=5))
    result = pytester.runpytest_inprocess("--equivariance-samples=3", "--equivariance-seed=5")
    result.assert_outcomes(passed=2)


def test_ini_values_and_marker_selection(pytester):
    pytester.makeini("[pytest]\nequivariance_samples = 4\nequivariance_seed = 9\n")
    pytester.makepyfile(TESTS.format(samples=4, seed=9))
    pytester.runpytest_inprocess("-m", "equivariance").assert_outcomes(passed=1, deselected=1)


def test_plugin_import_does_not_load_the_test_kit():
    """Loaded in every pytest run: importing it must not pull in torch, hypothesis or the probes;
    the assertions work without hypothesis too."""
    code = (
        "import sys, latentequiv.testing.plugin\n"
        "heavy = ('torch', 'hypothesis', 'latentequiv.probes', 'latentequiv.testing._strategies')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "from latentequiv.testing import assert_invariant\n"
        "print('hypothesis' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["", "False"]
