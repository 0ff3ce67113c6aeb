"""Exact symmetry for any function: principal-axis frames, canonicalisation and frame averaging.

``FrameAveraging(fn)`` evaluates ``fn`` on each input moved to its canonical orientations and maps
the outputs back, so the result is exactly invariant (or equivariant, with an ``output_action``)
whatever ``fn`` is. It composes with the latent objective: train an encoder with
:class:`~latentequiv.losses.LatentEquivariance` and wrap it at inference.
"""

from ._averaging import FrameAveraging, frame_average
from ._pca import canonical_frame, pca_frames, principal_axes, sign_flips

__all__ = [
    "FrameAveraging",
    "canonical_frame",
    "frame_average",
    "pca_frames",
    "principal_axes",
    "sign_flips",
]
