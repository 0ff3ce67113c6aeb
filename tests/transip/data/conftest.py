"""Fixture paths and a helper to write small ASE files for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def g2_path() -> Path:
    """20 GFN2-xTB frames, six charge/spin states, elements H C N O F P S Cl."""
    return FIXTURES / "g2_xtb_small.extxyz"


@pytest.fixture(scope="session")
def ethanol_path() -> Path:
    """10 rMD17 ethanol frames (neutral singlets, no ``source`` key)."""
    return FIXTURES / "ethanol_small.extxyz"


@pytest.fixture(scope="session")
def spice_path() -> Path:
    """6 SPICE cation frames (5 and 27 atoms, with Na)."""
    return FIXTURES / "spice_small.extxyz"


@pytest.fixture(scope="session")
def g2_molecules(g2_path):
    from transip.data import read_dataset

    return list(read_dataset(g2_path))
