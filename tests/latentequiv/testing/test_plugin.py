"""The pytest plugin: options, ini values, marker overrides and fixtures, run in a nested pytest."""

import subprocess
import sys

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_defaults(equivariance_samples, equivariance_generator):
    assert equivariance_samples == {samples}
    assert equivariance_generator.initial_seed() == {seed}

@pytest.mark.equivariance(samples=2, seed=11)
def test_marker_overrides(equivariance_samples, equivariance_generator):
    assert equivariance_samples == 2
    assert equivariance_generator.initial_seed() == 11
"""


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
