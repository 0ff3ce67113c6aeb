"""Hypothesis strategies for group elements, point clouds and embeddings.

Random values come from a torch generator seeded by an integer that hypothesis draws, so examples
are reproducible and shrink towards seed 0 (and towards small sizes); sampling stays exactly Haar.
Values are built by the public functions :func:`seeded_gaussian` and :func:`seeded_group_elements`,
so hypothesis reports a falsifying example as a call you can paste, e.g.
``x=seeded_gaussian(shape=(1, 26, 3), seed=0, scale=1.0, dtype=torch.float64)``.
Options are keyword-only and validated when the strategy is built, raising ``InvalidArgument`` like
hypothesis's own strategies.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..groups import SO3, Group

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def group_elements(
    group: Group, *, batch_size: int = 1, dtype: torch.dtype = torch.float64
) -> st.SearchStrategy[torch.Tensor]:
    """Haar-random elements of ``group`` as ``(batch_size, d, d)`` tensors.

    Example:
        >>> from hypothesis import given, settings
        >>> from latentequiv.groups import SO3
        >>> @settings(max_examples=5)
        ... @given(group_elements(SO3(), batch_size=2))
        ... def test_determinant_is_one(g):
        ...     assert torch.allclose(torch.linalg.det(g), torch.ones(2, dtype=g.dtype))
        >>> test_determinant_is_one()
    """
    if not isinstance(group, Group):
        raise InvalidArgument(f"group must be a latentequiv Group, got {group!r}")
    _check_count("batch_size", batch_size)
    _check_dtype(dtype)
    return st.builds(
        seeded_group_elements, st.just(group), st.just(batch_size), seed=_SEEDS, dtype=st.just(dtype)
    )


def rotations(*, batch_size: int = 1, dtype: torch.dtype = torch.float64) -> st.SearchStrategy[torch.Tensor]:
    """Haar-random rotations of 3D space, ``(batch_size, 3, 3)``.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5)
        ... @given(rotations(batch_size=4))
        ... def test_orthogonal(g):
        ...     assert torch.allclose(g @ g.transpose(-1, -2), torch.eye(3, dtype=g.dtype).expand(4, 3, 3))
        >>> test_orthogonal()
    """
    return group_elements(SO3(), batch_size=batch_size, dtype=dtype)


def point_clouds(
    *,
    min_points: int = 1,
    max_points: int = 16,
    dim: int = 3,
    scale: float = 1.0,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[torch.Tensor]:
    """Gaussian point clouds ``(batch_size, N, dim)`` with ``min_points <= N <= max_points``.

    Args:
        min_points, max_points: bounds on the number of points ``N`` (drawn, shrinks towards the minimum).
        dim: dimension of the space.
        scale: standard deviation of the coordinates.
        batch_size: number of clouds, all of the same size.
        dtype: floating dtype.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5)
        ... @given(point_clouds(min_points=2, max_points=6, batch_size=3))
        ... def test_shape(x):
        ...     assert x.shape[0] == 3 and 2 <= x.shape[1] <= 6 and x.shape[2] == 3
        >>> test_shape()
    """
    _check_count("min_points", min_points)
    _check_count("max_points", max_points)
    if max_points < min_points:
        raise InvalidArgument(f"max_points={max_points} < min_points={min_points}")
    _check_count("dim", dim)
    _check_count("batch_size", batch_size)
    _check_scale(scale)
    _check_dtype(dtype)
    sizes = st.integers(min_value=min_points, max_value=max_points)
    shapes = st.tuples(st.just(batch_size), sizes, st.just(dim))
    return st.builds(seeded_gaussian, shape=shapes, seed=_SEEDS, scale=st.just(scale), dtype=st.just(dtype))


def embeddings(
    *,
    dim: int,
    batch_size: int = 1,
    tokens: int | None = None,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[torch.Tensor]:
    """Gaussian embeddings ``(batch_size, dim)``, or ``(batch_size, tokens, dim)`` when ``tokens`` is given.

    Example:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5)
        ... @given(embeddings(dim=8, tokens=5))
        ... def test_shape(z):
        ...     assert z.shape == (1, 5, 8)
        >>> test_shape()
    """
    _check_count("dim", dim)
    _check_count("batch_size", batch_size)
    if tokens is not None:
        _check_count("tokens", tokens)
    _check_scale(scale)
    _check_dtype(dtype)
    shape = (batch_size, dim) if tokens is None else (batch_size, tokens, dim)
    return st.builds(
        seeded_gaussian, shape=st.just(shape), seed=_SEEDS, scale=st.just(scale), dtype=st.just(dtype)
    )


def seeded_gaussian(
    shape: tuple[int, ...], *, seed: int, scale: float = 1.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The tensor the strategies draw for ``seed``: ``scale`` times standard normal values, made in
    float64 and then cast (so a seed gives the same values in every dtype).

    Example:
        >>> torch.equal(seeded_gaussian((2, 3), seed=4), seeded_gaussian((2, 3), seed=4))
        True
    """
    return scale * torch.randn(shape, generator=_generator(seed), dtype=torch.float64).to(dtype)


def seeded_group_elements(
    group: Group, n: int, *, seed: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The ``(n, d, d)`` elements the strategies draw for ``seed``: ``group.sample`` with a generator
    seeded by it."""
    return group.sample(n, generator=_generator(seed), dtype=dtype)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be a positive integer, got {value!r}")


def _check_scale(scale: object) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale < float("inf"):
        raise InvalidArgument(f"scale must be a positive finite number, got {scale!r}")


def _check_dtype(dtype: object) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidArgument(f"dtype must be a floating torch.dtype, got {dtype!r}")
