"""``LatentEquivariance``: the latent loss for any encoder, group and input action, in one module."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..groups import Group
from ..tau import Tau
from ._latent import latent_equivariance_loss

#: ``loss(tau, z, z_transformed, g, *, mask) -> scalar``
LatentLoss = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class LatentEquivarianceOutput:
    """What one :class:`LatentEquivariance` step computed.

    Attributes:
        loss: the latent loss, a scalar.
        z: embeddings of the original inputs, ``(B, D)`` or ``(B, N, D)``; reuse them for a task head.
        z_transformed: embeddings of the transformed inputs ``g . x``, same shape as ``z``.
        g: the group elements used, ``(B, d, d)``.
    """

    loss: torch.Tensor
    z: torch.Tensor
    z_transformed: torch.Tensor
    g: torch.Tensor


class LatentEquivariance(nn.Module):
    r"""Sample ``g``, transform the input, encode both, and score ``tau(g, f(x))`` against ``f(g . x)``.

    The encoder is any callable ``x -> z`` (an ``nn.Module`` is registered as a submodule; a plain
    callable such as a bound method is only called, its owner keeps and moves the parameters). To put the
    loss on an intermediate embedding, pass a callable that returns it, e.g. ``model.embed``,
    ``lambda x: model.trunk(x)`` or ``nn.Sequential(*model.layers[:k])``; no hooks are needed.

    Args:
        encoder: ``encoder(x) -> z``; called as ``encoder(x, mask=mask)`` when a mask is given.
        tau: the tau-network (a module is registered as a submodule).
        group: samples ``g`` (one per sample, Haar-uniform) and provides the default input action.
        input_action: ``input_action(g, x) -> g . x``. Default: ``group.act`` (rotate every point).
        loss: ``"mse"`` for :func:`latent_equivariance_loss`, or any callable
            ``loss(tau, z, z_transformed, g, *, mask) -> scalar`` such as
            :func:`~latentequiv.losses.contrastive_latent_loss`.
        normalize: passed to :func:`latent_equivariance_loss` (``loss="mse"`` only).

    Shape:
        - x: ``(B, N, d)`` or ``(B, d)`` with the default action; anything ``input_action`` and the
          encoder accept otherwise (then ``len(x)`` must be the batch size, or pass ``g``)
        - mask: ``(B, N)`` bool, optional
        - output: :class:`LatentEquivarianceOutput`

    Example:
        >>> from latentequiv import SO3
        >>> from latentequiv.tau import MLPTau
        >>> encoder = nn.Sequential(nn.Flatten(), nn.Linear(15, 8))
        >>> step = LatentEquivariance(encoder, MLPTau(8), SO3())
        >>> out = step(torch.randn(4, 5, 3), generator=torch.Generator().manual_seed(0))
        >>> out.loss.shape, out.z.shape, out.g.shape
        (torch.Size([]), torch.Size([4, 8]), torch.Size([4, 3, 3]))
    """

    def __init__(
        self,
        encoder: Callable[..., torch.Tensor],
        tau: Tau,
        group: Group,
        input_action: Callable[[torch.Tensor, Any], Any] | None = None,
        loss: Literal["mse"] | LatentLoss = "mse",
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if loss != "mse" and not callable(loss):
            raise ValueError(f"loss must be 'mse' or a callable, got {loss!r}")
        if normalize and loss != "mse":
            raise ValueError("normalize applies to loss='mse'; bind it into your callable instead")
        tau_dim = getattr(tau, "group_dim", None)
        if isinstance(tau_dim, int) and tau_dim != group.dim:
            raise ValueError(
                f"{type(tau).__name__} was built for {tau_dim}x{tau_dim} elements but {group!r} has "
                f"{group.dim}x{group.dim}; build it with group_dim={group!r}"
            )
        self.encoder = encoder
        self.tau = tau
        self.group = group
        self.input_action = group.act if input_action is None else input_action
        self.loss_name = "mse" if loss == "mse" else getattr(loss, "__name__", repr(loss))
        self.normalize = normalize
        self.loss_fn: LatentLoss = (
            functools.partial(latent_equivariance_loss, normalize=normalize) if loss == "mse" else loss
        )

    def forward(
        self,
        x: Any,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        g: torch.Tensor | None = None,
    ) -> LatentEquivarianceOutput:
        """One latent-equivariance evaluation.

        Args:
            x: a batch of inputs.
            mask: ``True`` for valid tokens; passed to the encoder and the loss.
            generator: random generator for sampling ``g`` (on the device ``g`` is sampled on).
            g: use these group elements instead of sampling, ``(B, d, d)``.
        """
        if g is None:
            g = self.group.sample(len(x), generator=generator, **self._sample_spec(x))
        x_transformed = self.input_action(g, x)
        z = self._encode(x, mask)
        z_transformed = self._encode(x_transformed, mask)
        loss = self.loss_fn(self.tau, z, z_transformed, g, mask=mask)
        return LatentEquivarianceOutput(loss=loss, z=z, z_transformed=z_transformed, g=g)

    def _encode(self, x: Any, mask: torch.Tensor | None) -> torch.Tensor:
        return self.encoder(x) if mask is None else self.encoder(x, mask=mask)

    def _sample_spec(self, x: Any) -> dict[str, Any]:
        """dtype and device for ``g``: those of ``x``, else of the encoder's parameters, else the defaults."""
        if isinstance(x, torch.Tensor):
            dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
            return {"dtype": dtype, "device": x.device}
        params = self.encoder.parameters() if isinstance(self.encoder, nn.Module) else iter(())
        p = next(params, None)
        if p is None:
            return {"dtype": torch.get_default_dtype(), "device": None}
        return {"dtype": p.dtype, "device": p.device}

    def extra_repr(self) -> str:
        return f"group={self.group!r}, loss={self.loss_name}, normalize={self.normalize}"
