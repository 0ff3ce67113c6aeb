"""Frame averaging: exact invariance or equivariance for any function, at the cost of ``K`` evaluations.

Given equivariant frames ``F(x) = {g_1, ..., g_K}`` (``F(g . x) = g F(x)``),

    FA[fn](x) = 1/K sum_k rho_out(g_k) fn(g_k^{-1} . x)

is exactly equivariant, ``FA[fn](g . x) = rho_out(g) FA[fn](x)``, whatever ``fn`` is (Puny et al.,
ICLR 2022): each term only sees the cloud in a canonical orientation. With ``rho_out`` trivial it is
exactly invariant. ``K = 1`` (:func:`~latentequiv.frames.canonical_frame`) is canonicalisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..groups import Group
from ..probes import as_output_action
from ._pca import pca_frames

Frames = Callable[[torch.Tensor], torch.Tensor]


def frame_average(
    fn: Callable[[Any], torch.Tensor],
    x: torch.Tensor,
    *,
    frames: Frames = pca_frames,
    input_action: Callable[[torch.Tensor, Any], Any] | None = None,
    output_action: object = None,
    detach_frames: bool = False,
) -> torch.Tensor:
    """``1/K sum_k rho_out(g_k) fn(g_k^{-1} . x)`` over the frames ``g_k`` of each input.

    Args:
        fn: any function of a batch, ``(B, ...) -> (B, ...)``; it is called once on ``B K`` inputs.
        x: ``(B, N, d)`` points (or, with ``input_action``, any tensor batch ``frames`` understands).
        frames: ``x -> (B, K, d, d)`` equivariant frames; default :func:`pca_frames` (SO(d)).
        input_action: ``(g, x) -> g . x``; default :meth:`Group.act` on the last dimension.
        output_action: how ``g`` acts on ``fn``'s output; ``None`` averages invariantly (see
            :func:`latentequiv.probes.as_output_action` for the accepted spellings).
        detach_frames: cut gradients through the frames. Leave it ``False`` when derivatives with
            respect to ``x`` matter (e.g. forces ``-dE/dx``): the frames depend on ``x``.

    Shape:
        - x: ``(B, ...)``; frames ``(B, K, d, d)``; output ``(B, ...)`` like ``fn(x)``.

    Example:
        >>> from latentequiv.groups import SO3
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(15, 1)).double()  # not invariant at all
        >>> x = torch.randn(2, 5, 3, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
        >>> g = SO3().sample(2, dtype=torch.float64)
        >>> bool(torch.allclose(frame_average(net, SO3.act(g, x)), frame_average(net, x)))
        True
    """
    g = frames(x)  # (B, K, d, d)
    if detach_frames:
        g = g.detach()
    B, K = g.shape[:2]
    g = g.reshape(B * K, *g.shape[2:])  # (B K, d, d)
    act = Group.act if input_action is None else input_action
    canonical = act(g.transpose(-1, -2), x.repeat_interleave(K, dim=0))  # g_k^{-1} . x
    y = as_output_action(output_action)(g, fn(canonical))  # (B K, ...)
    return y.reshape(B, K, *y.shape[1:]).mean(dim=1)


class FrameAveraging(nn.Module):
    r"""Wrap any module or function so that it is exactly invariant or equivariant: :func:`frame_average`.

    Train with it (the wrapped function then only ever sees canonical orientations) or wrap a model
    trained another way, e.g. with the latent objective, at inference only. Its cost is ``K`` calls
    of ``fn`` (4 for SO(3) with :func:`pca_frames`, 1 with :func:`canonical_frame`).

    Args:
        fn: the function; an ``nn.Module`` is registered as a submodule.
        frames, input_action, output_action, detach_frames: as in :func:`frame_average`.

    Example:
        >>> from latentequiv.probes import invariance_error
        >>> from latentequiv.groups import SO3
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(15, 1)).double()
        >>> x = torch.randn(4, 5, 3, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
        >>> invariance_error(FrameAveraging(net), x, group=SO3()).rel_max < 1e-10
        True
    """

    def __init__(
        self,
        fn: Callable[[Any], torch.Tensor],
        *,
        frames: Frames = pca_frames,
        input_action: Callable[[torch.Tensor, Any], Any] | None = None,
        output_action: object = None,
        detach_frames: bool = False,
    ) -> None:
        super().__init__()
        self.fn = fn
        self.frames = frames
        self.input_action = input_action
        self.output_action = output_action
        self.detach_frames = detach_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return frame_average(
            self.fn,
            x,
            frames=self.frames,
            input_action=self.input_action,
            output_action=self.output_action,
            detach_frames=self.detach_frames,
        )

    def extra_repr(self) -> str:
        name = getattr(self.frames, "__name__", type(self.frames).__name__)
        return f"frames={name}, detach_frames={self.detach_frames}"
