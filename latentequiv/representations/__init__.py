"""Real representations of SO(3) and O(3): Wigner-D matrices, their Lie-algebra generators and
``Irreps``, direct sums of irreducible representations.

The basis of each irrep is a real spherical-harmonic basis in which ``l = 1`` is ``(x, y, z)``
(``wigner_D(1, R) == R``); ``docs/latentequiv/conventions.md`` lists it for ``l >= 2``.
"""

from ._generators import irrep_generators
from ._irreps import Irreps
from ._wigner import wigner_D

__all__ = ["Irreps", "irrep_generators", "wigner_D"]
