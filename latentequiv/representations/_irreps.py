"""Direct sums of irreducible representations of SO(3) / O(3)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import torch

from ._generators import irrep_generators
from ._wigner import wigner_D

_TERM = re.compile(r"^(?:(\d+)\s*x\s*)?(\d+)\s*([eo]?)$")


def _parse(spec: str | Iterable) -> tuple[tuple[int, int, int], ...]:
    if isinstance(spec, Irreps):
        return spec._terms
    if isinstance(spec, str):
        items = []
        for term in spec.split("+"):
            term = term.strip()
            if not term:
                continue
            match = _TERM.match(term)
            if match is None:
                raise ValueError(f"cannot parse irreps term {term!r} in {spec!r} (expected e.g. '2x1o')")
            mul, l, p = match.groups()
            items.append((int(mul or 1), int(l)) + ({"e": (1,), "o": (-1,), "": ()}[p]))
        spec = items
    terms = []
    for item in spec:
        if isinstance(item, tuple) and tuple.__len__(item) == 2 and isinstance(item[1], tuple):
            item = (item[0], *tuple.__iter__(item[1]))  # e3nn's Irrep has no len(); tuple's methods work
        item = tuple(int(v) for v in item)
        if len(item) == 2:
            item = item + ((-1) ** item[1],)
        if len(item) != 3:
            raise ValueError(f"irreps entries are (mul, l) or (mul, l, parity), got {item}")
        mul, l, p = item
        if mul < 0 or l < 0 or p not in (1, -1):
            raise ValueError(f"need mul >= 0, l >= 0, parity +-1; got {item}")
        terms.append((mul, l, p))
    return tuple(terms)


class Irreps:
    """A direct sum of real SO(3)/O(3) irreps, e.g. ``Irreps("4x0 + 2x1 + 1x2")``.

    Each term is ``(mul, l, parity)``: ``mul`` copies of the degree-``l`` irrep (dimension
    ``2l+1``, basis of :func:`wigner_D`). Parity (``e`` = +1, ``o`` = -1) only matters for improper
    elements of O(3); when it is left out it is the natural one, ``(-1)^l``, of spherical harmonics
    (so ``"1"`` means ``"1o"``, a polar vector). Coordinates are ordered term by term, copy by
    copy, each copy a contiguous block of ``2l+1``.

    Args:
        irreps: a string ``"mulxl[e|o] + ..."``, an iterable of ``(mul, l)``, ``(mul, l, parity)`` or
            ``(mul, (l, parity))`` tuples (so an ``e3nn.o3.Irreps`` works as it is, in the same basis),
            or another ``Irreps``.

    Example:
        >>> irreps = Irreps("4x0 + 2x1 + 1x2")
        >>> irreps.dim, irreps.ls
        (15, [0, 0, 0, 0, 1, 1, 2])
        >>> irreps
        Irreps('4x0e+2x1o+1x2e')
        >>> irreps == Irreps([(4, 0), (2, 1), (1, 2)])
        True
        >>> R = torch.eye(3).expand(7, 3, 3)
        >>> torch.equal(irreps.D(R), torch.eye(15).expand(7, 15, 15))
        True
    """

    def __init__(self, irreps: str | Iterable = ()) -> None:
        self._terms = _parse(irreps)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return iter(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    def __getitem__(self, i: int) -> tuple[int, int, int]:
        return self._terms[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Irreps) and self._terms == other._terms

    def __hash__(self) -> int:
        return hash(self._terms)

    def __add__(self, other: Irreps | str) -> Irreps:
        return Irreps(self._terms + Irreps(other)._terms)

    def __str__(self) -> str:
        return "+".join(f"{mul}x{l}{'e' if p == 1 else 'o'}" for mul, l, p in self._terms)

    def __repr__(self) -> str:
        return f"Irreps('{self}')"

    @property
    def dim(self) -> int:
        """Total dimension ``sum mul (2l + 1)``."""
        return sum(mul * (2 * l + 1) for mul, l, _ in self._terms)

    @property
    def num_irreps(self) -> int:
        """Number of irreducible blocks, ``sum mul``."""
        return sum(mul for mul, _, _ in self._terms)

    @property
    def ls(self) -> list[int]:
        """Degree of every irreducible block, in coordinate order (each ``l`` repeated ``mul`` times)."""
        return [l for mul, l, _ in self._terms for _ in range(mul)]

    @property
    def lmax(self) -> int:
        """Largest degree (``-1`` for the empty sum)."""
        return max((l for _, l, _ in self._terms), default=-1)

    def slices(self) -> list[slice]:
        """Coordinate range of each term (all ``mul`` copies together)."""
        out, start = [], 0
        for mul, l, _ in self._terms:
            out.append(slice(start, start + mul * (2 * l + 1)))
            start = out[-1].stop
        return out

    def _blocks(self, R: torch.Tensor):
        """``(mul, l, slice, D^l(R))`` for each nonempty term; improper ``R`` act through the parity.

        Each degree's Wigner-D matrices ``(..., 2l+1, 2l+1)`` are computed once for all its terms.
        """
        det = torch.linalg.det(R).sign()[..., None, None]  # (..., 1, 1)
        proper = R * det
        cache: dict[int, torch.Tensor] = {}
        for (mul, l, p), sl in zip(self._terms, self.slices(), strict=True):
            if mul == 0:
                continue
            if l not in cache:
                cache[l] = wigner_D(l, proper)  # (..., 2l+1, 2l+1)
            yield mul, l, sl, cache[l] if p == 1 else cache[l] * det

    def D(self, R: torch.Tensor) -> torch.Tensor:
        """Block-diagonal representation matrices ``D(R)``.

        Args:
            R: orthogonal matrices; improper ones (``det = -1``) act through each term's parity.

        Shape:
            - R: ``(..., 3, 3)``
            - output: ``(..., dim, dim)``, same dtype and device as ``R``.
        """
        batch = R.shape[:-2]
        out = R.new_zeros(*batch, self.dim, self.dim)
        if self.dim == 0:
            return out
        for mul, l, sl, block in self._blocks(R):
            eye = torch.eye(mul, dtype=R.dtype, device=R.device)
            n = 2 * l + 1
            out[..., sl, sl] = torch.einsum("uv,...ij->...uivj", eye, block).reshape(*batch, mul * n, mul * n)
        return out

    def act(self, R: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``D(R) x`` block by block, without building the ``(dim, dim)`` matrices.

        The same result as ``(D(R) @ x[..., None])[..., 0]`` at a cost of ``sum mul (2l+1)^2``
        per vector instead of ``dim^2`` (and none of the ``dim^2`` matrix entries are stored).

        Args:
            R: orthogonal matrices; improper ones act through each term's parity.
            x: vectors of width ``dim``; the batch axes of ``R`` and ``x`` broadcast.

        Shape:
            - R: ``(..., 3, 3)``
            - x: ``(..., dim)``
            - output: the broadcast batch shape of both, then ``dim``

        Example:
            >>> irreps = Irreps("2x0 + 1x1 + 1x2")
            >>> from latentequiv import SO3
            >>> R = SO3().sample(4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            >>> x = torch.randn(4, irreps.dim, dtype=torch.float64)
            >>> torch.allclose(irreps.act(R, x), (irreps.D(R) @ x[..., None])[..., 0])
            True
        """
        if x.shape[-1] != self.dim:
            raise ValueError(f"x has width {x.shape[-1]} but {self} has dim {self.dim}")
        parts = []
        for mul, l, sl, block in self._blocks(R):
            xs = x[..., sl].unflatten(-1, (mul, 2 * l + 1))  # (..., mul, 2l+1)
            parts.append(torch.einsum("...ij,...uj->...ui", block, xs).flatten(-2))
        if not parts:
            return x.clone()
        return torch.cat(parts, dim=-1)

    @classmethod
    def filling(cls, dim: int, lmax: int = 2) -> Irreps:
        """Degrees ``0..lmax`` sharing ``dim`` coordinates about equally, with exactly ``dim`` in all.

        Each degree ``l >= 1`` gets ``floor(dim / ((lmax + 1) (2l + 1)))`` copies and the scalars
        (``l = 0``) take every coordinate left, so there are at least ``dim / (lmax + 1)`` of them.

        Example:
            >>> Irreps.filling(96)
            Irreps('36x0e+10x1o+6x2e')
            >>> Irreps.filling(32, lmax=1).dim
            32
        """
        if dim < 1 or lmax < 0:
            raise ValueError(f"need dim >= 1 and lmax >= 0, got dim={dim}, lmax={lmax}")
        muls = [dim // ((lmax + 1) * (2 * l + 1)) for l in range(1, lmax + 1)]
        scalars = dim - sum(m * (2 * l + 1) for l, m in enumerate(muls, start=1))
        return cls([(scalars, 0)] + [(m, l) for l, m in enumerate(muls, start=1) if m > 0])

    def generators(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Block-diagonal so(3) generators ``(3, dim, dim)`` (see :func:`irrep_generators`).

        ``D(so3_exp(w)) == expm(sum_k w_k generators()[k])`` for every ``w``.
        """
        dtype = dtype or torch.get_default_dtype()
        out = torch.zeros(3, self.dim, self.dim, dtype=dtype, device=device)
        for (mul, l, _), sl in zip(self._terms, self.slices(), strict=True):
            J = irrep_generators(l, dtype=dtype, device=device)
            eye = torch.eye(mul, dtype=dtype, device=device)
            n = 2 * l + 1
            out[:, sl, sl] = torch.einsum("uv,kij->kuivj", eye, J).reshape(3, mul * n, mul * n)
        return out
