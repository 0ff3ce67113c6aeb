"""Test kit for property-based equivariance tests: strategies, assertions and a pytest plugin.

Use it to test *your* models the way ``latentequiv`` tests its own::

    from hypothesis import given
    from latentequiv.groups import SO3
    from latentequiv.testing import assert_invariant, point_clouds

    @given(point_clouds(min_points=2, max_points=32))
    def test_energy_is_invariant(x):
        assert_invariant(model, x, group=SO3())

Names are loaded on first use: the pytest plugin (``latentequiv.testing.plugin``) imports this
package in every pytest run, and the strategies need ``hypothesis``, which only tests require.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._assertions import (
        Tolerance,
        assert_equivariant,
        assert_invariant,
        assert_translation_equivariant,
        assert_translation_invariant,
        default_tolerance,
    )
    from ._settings import EquivarianceSettings, current_settings, equivariance_settings
    from ._strategies import (
        embeddings,
        group_elements,
        point_clouds,
        rotations,
        seeded_gaussian,
        seeded_group_elements,
    )

_HOME = {
    "Tolerance": "._assertions",
    "assert_equivariant": "._assertions",
    "assert_invariant": "._assertions",
    "assert_translation_equivariant": "._assertions",
    "assert_translation_invariant": "._assertions",
    "EquivarianceSettings": "._settings",
    "current_settings": "._settings",
    "equivariance_settings": "._settings",
    "default_tolerance": "._assertions",
    "embeddings": "._strategies",
    "group_elements": "._strategies",
    "point_clouds": "._strategies",
    "rotations": "._strategies",
    "seeded_gaussian": "._strategies",
    "seeded_group_elements": "._strategies",
}

__all__ = [
    "EquivarianceSettings",
    "Tolerance",
    "assert_equivariant",
    "assert_invariant",
    "assert_translation_equivariant",
    "assert_translation_invariant",
    "current_settings",
    "default_tolerance",
    "embeddings",
    "equivariance_settings",
    "group_elements",
    "point_clouds",
    "rotations",
    "seeded_gaussian",
    "seeded_group_elements",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
