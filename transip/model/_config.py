"""The TransIP hyper-parameters, one frozen dataclass at the edge."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

#: the paper's three sizes (Table 3) plus a small CPU/test size
_PRESETS: dict[str, dict] = {
    "tiny": dict(d_model=64, n_layers=2, n_heads=4, num_rbf=16),
    "S": dict(d_model=384, n_layers=8, n_heads=6, num_rbf=64),
    "M": dict(d_model=768, n_layers=12, n_heads=12, num_rbf=64),
    "L": dict(d_model=1024, n_layers=24, n_heads=16, num_rbf=64),
}


@dataclass(frozen=True)
class TransIPConfig:
    """Hyper-parameters of :class:`~transip.model.TransIP`.

    Args:
        d_model: token width ``D``.
        n_layers: number of pre-norm Transformer blocks.
        n_heads: attention heads ``H`` (must divide ``d_model``).
        mlp_ratio: hidden width of each block's MLP, as a multiple of ``d_model``.
        dropout: projection dropout after the attention output and the MLP (paper: 0.01).
        attn_dropout: dropout on attention weights (paper: 0.0).
        num_rbf: Gaussian radial-basis channels ``K``; ``0`` disables both RBF paths.
        rbf_cutoff: RBF centres span ``[0, rbf_cutoff]`` Å; also the cosine cutoff of the per-atom sum.
        neighbour_channels: ``S``; when positive, each token also gets
            ``sum_{j != i} e(Z_j) fc(r_ij) phi(r_ij)``, the RBF sums weighted by a learned
            ``S``-dimensional embedding of the neighbour's element (which elements sit at which
            distances), projected to ``d_model``. ``0``: off (needs ``num_rbf > 0``).
        angular_channels: ``P``; when positive, each token also gets the three-body features of
            :class:`~transip.model._angular.AngularFeatures` (the Gram matrix of ``P`` learned
            radial-element moments of neighbour directions). ``0``: off (needs ``neighbour_channels``).
        max_atoms: context length, the largest molecule accepted.
        max_z: largest atomic number accepted.
        charge_range: inclusive ``(min, max)`` total charge with a learned embedding.
        spin_range: inclusive ``(min, max)`` spin multiplicity ``2S + 1`` with a learned embedding.
        species_dim: width of the atomic-number embedding (``None``: ``d_model // 2``).
        position_dim: width of the coordinate MLP output (``None``: ``d_model - species_dim``).
            When ``species_dim + position_dim != d_model`` the concatenation is projected to ``d_model``.
        pooling: ``"sum"`` sums per-atom energies from the head (extensive);
            ``"mean"`` applies the head once to the mean of the atom embeddings.
        direct_forces: predict forces with a linear head on atom embeddings instead of ``-dE/dx``
            (faster, but not conservative).
        bucket_growth: attention layout knob: a molecule may be padded to at most ``bucket_growth``
            times its size (or by ``bucket_slack`` atoms, whichever is larger). Changes speed only.
        bucket_slack: see ``bucket_growth``.

    Example:
        >>> TransIPConfig.preset("S").d_model
        384
        >>> TransIPConfig.preset("tiny", num_rbf=0).num_rbf
        0
    """

    d_model: int = 384
    n_layers: int = 8
    n_heads: int = 6
    mlp_ratio: float = 4.0
    dropout: float = 0.01
    attn_dropout: float = 0.0
    num_rbf: int = 64
    rbf_cutoff: float = 6.0
    neighbour_channels: int = 0
    angular_channels: int = 0
    max_atoms: int = 1024
    max_z: int = 118
    charge_range: tuple[int, int] = (-10, 10)
    spin_range: tuple[int, int] = (1, 11)
    species_dim: int | None = None
    position_dim: int | None = None
    pooling: Literal["sum", "mean"] = "sum"
    direct_forces: bool = False
    bucket_growth: float = 1.25
    bucket_slack: int = 16

    def __post_init__(self) -> None:
        # YAML/JSON give lists; keep the dataclass hashable and comparable
        object.__setattr__(self, "charge_range", tuple(int(v) for v in self.charge_range))
        object.__setattr__(self, "spin_range", tuple(int(v) for v in self.spin_range))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.pooling not in ("sum", "mean"):
            raise ValueError(f"pooling must be 'sum' or 'mean', got {self.pooling!r}")
        if self.num_rbf < 0 or self.n_layers < 1 or self.d_model < 1:
            raise ValueError("num_rbf must be >= 0, n_layers and d_model >= 1")
        if self.neighbour_channels < 0 or (self.neighbour_channels > 0 and self.num_rbf == 0):
            raise ValueError("neighbour_channels must be >= 0 and needs num_rbf > 0")
        if self.angular_channels < 0 or (self.angular_channels > 0 and self.neighbour_channels == 0):
            raise ValueError("angular_channels must be >= 0 and needs neighbour_channels > 0")
        for name, (lo, hi) in (("charge_range", self.charge_range), ("spin_range", self.spin_range)):
            if lo > hi:
                raise ValueError(f"{name}={(lo, hi)} is empty")
        if self.spin_range[0] < 1:
            raise ValueError("spin multiplicities start at 1")
        if self.bucket_growth < 1.0 or self.bucket_slack < 0:
            raise ValueError("bucket_growth must be >= 1 and bucket_slack >= 0")
        if self.species_dim is not None and self.species_dim < 1:
            raise ValueError("species_dim must be positive")
        if self.position_dim is not None and self.position_dim < 1:
            raise ValueError("position_dim must be positive")

    @property
    def token_dims(self) -> tuple[int, int]:
        """``(species_dim, position_dim)`` after defaults."""
        zd = self.species_dim if self.species_dim is not None else self.d_model // 2
        xd = self.position_dim if self.position_dim is not None else max(self.d_model - zd, 1)
        return zd, xd

    @classmethod
    def preset(cls, name: str, **overrides) -> TransIPConfig:
        """A named size: ``"tiny"`` (tests, CPU demos), ``"S"``, ``"M"``, ``"L"`` (the paper's Table 3).

        Keyword arguments override single fields of the preset.
        """
        if name not in _PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(_PRESETS)}")
        return cls(**{**_PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        """Plain ``dict`` of primitives (for checkpoints and YAML)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TransIPConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (they signal a version mismatch)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TransIPConfig fields {unknown}")
        return cls(**values)

    def replace(self, **changes) -> TransIPConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)
