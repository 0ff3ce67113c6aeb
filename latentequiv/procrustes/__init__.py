"""Procrustes diagnostics: best orthogonal maps between embeddings and what they say about the action.

``procrustes`` solves the orthogonal Procrustes problem; ``fit_latent_action`` fits the map an encoder's
embeddings undergo for each group element (``fit_embedding_maps``: the same fit on embeddings already
computed); ``representation_consistency`` checks that those maps compose like the group;
``estimate_irreps`` reads SO(3) irrep multiplicities off their characters.
"""

from ._irreps import IrrepsEstimate, estimate_irreps, rotation_angle, so3_characters
from ._latent_action import (
    ConsistencyReport,
    DiagnosticWarning,
    LatentActionFit,
    fit_embedding_maps,
    fit_latent_action,
    representation_consistency,
)
from ._procrustes import ProcrustesFit, procrustes

__all__ = [
    "ConsistencyReport",
    "DiagnosticWarning",
    "IrrepsEstimate",
    "LatentActionFit",
    "ProcrustesFit",
    "estimate_irreps",
    "fit_embedding_maps",
    "fit_latent_action",
    "procrustes",
    "representation_consistency",
    "rotation_angle",
    "so3_characters",
]
