"""tau-networks: how a group element acts on an embedding, ``tau(g, z) -> z'``.

Which one to use:

- :class:`MLPTau` -- the paper's choice; assumes nothing (not even linearity). Most flexible, but a
  nonlinear tau can also absorb part of the work the encoder should do.
- :class:`HyperLinearTau` -- linear in ``z`` with a matrix predicted from ``g``: the embedding must
  transform linearly, but not necessarily as a group representation.
- :class:`RepresentationTau` -- an exact representation (direct sum of Wigner-D blocks), optionally in a
  learned orthonormal basis: asks for a genuinely equivariant embedding of a prescribed type.
- :class:`IdentityTau` -- asks for an invariant embedding.
"""

from ._hyperlinear import HyperLinearTau
from ._identity import IdentityTau
from ._mlp import MLPTau
from ._protocol import Tau, group_features
from ._representation import RepresentationTau

__all__ = ["HyperLinearTau", "IdentityTau", "MLPTau", "RepresentationTau", "Tau", "group_features"]
