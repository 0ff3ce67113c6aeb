"""The TransIP backbone: atom tokens, a Transformer over each molecule, energy and forces.

Shape glossary: ``B`` molecules, ``T`` atoms of a packed batch, ``N`` atoms of one molecule,
``D`` width, ``H`` heads, ``E`` per-head width, ``K`` radial-basis channels.
"""

from ._attention import AttentionLayout, Bucket, attend
from ._block import SelfAttention, TransformerBlock
from ._config import TransIPConfig
from ._embedding import AtomTokens, GlobalBias, centre_of_mass
from ._rbf import RadialBasis, cosine_cutoff, gaussian_rbf, pair_distances
from ._readout import EnergyHead, ReferencedEnergy, segment_pool
from ._transip import TransIP, TransIPOutput

__all__ = [
    "AtomTokens",
    "AttentionLayout",
    "Bucket",
    "EnergyHead",
    "GlobalBias",
    "RadialBasis",
    "ReferencedEnergy",
    "SelfAttention",
    "TransIP",
    "TransIPConfig",
    "TransIPOutput",
    "TransformerBlock",
    "attend",
    "centre_of_mass",
    "cosine_cutoff",
    "gaussian_rbf",
    "pair_distances",
    "segment_pool",
]
