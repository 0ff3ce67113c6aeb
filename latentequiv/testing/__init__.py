"""Test kit for property-based equivariance tests (strategies, assertions, pytest plugin)."""

__all__: list[str] = []
