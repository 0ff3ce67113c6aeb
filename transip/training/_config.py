"""Run configuration: frozen dataclasses loaded from YAML with typed ``--section.key=value`` overrides.

A configuration is a :class:`TrainingConfig` made of sections. Every value is type-checked against
the dataclass field it lands in, and every problem (unknown section or key, a wrong type, a value
outside its choices, a missing file) raises :class:`ConfigError` naming the key and the file *before*
any work starts. The ``model`` section is open: it takes a ``preset`` name plus any field of
:class:`transip.model.TransIPConfig`, checked against that dataclass's own types, and is resolved
into a ``TransIPConfig`` once (:attr:`ModelSection.config`). Values are checked by ``_coerce.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from transip.model import TransIPConfig

from ._coerce import ConfigError, coerce, suggest


@dataclass(frozen=True)
class DataConfig:
    """Where the structures come from and how they are batched.

    Paths may name a bundled dataset as ``bundled:<name>`` (see :func:`transip.data.bundled_dataset`).
    """

    train: str = "bundled:g2_xtb"
    val: str = ""  # empty: split ``val_fraction`` off the training set
    test: str = ""  # empty: no test evaluation at the end
    val_fraction: float = 0.1
    split_by: Literal["source", "frame"] = "frame"
    max_train: int = 0  # 0: every training structure
    max_val: int = 0  # 0: every validation structure
    max_atoms_per_batch: int = 128
    energy_key: str = ""  # empty: the ASE calculator's energy
    forces_key: str = ""  # empty: the ASE calculator's forces
    num_workers: int = 0


#: the default run's model, "demo": the ``"tiny"`` preset widened for the CPU demo run (about 2
#: minutes on one core); named here since it is not one of the model's presets
DEMO_PRESET, DEMO_OVERRIDES = (
    "tiny",
    (  # sorted by name, as a merged section keeps them
        ("angular_channels", 16),
        ("d_model", 96),
        ("n_layers", 3),
        ("neighbour_channels", 16),
        ("num_rbf", 32),
    ),
)


@dataclass(frozen=True)
class ModelSection:
    """A ``TransIPConfig`` preset plus field overrides, kept as sorted ``(name, value)`` pairs.

    The default is the demo size (:data:`DEMO_PRESET` with :data:`DEMO_OVERRIDES`).
    :attr:`config` resolves the section into a :class:`~transip.model.TransIPConfig`, once: the
    one place where a preset name and its overrides are checked.
    """

    preset: str = DEMO_PRESET
    overrides: tuple[tuple[str, Any], ...] = DEMO_OVERRIDES

    @functools.cached_property
    def config(self) -> TransIPConfig:
        """The resolved model configuration.

        Raises:
            ConfigError: an unknown preset, or an invalid combination (``d_model`` not divisible
                by ``n_heads``, ...).
        """
        try:
            return TransIPConfig.preset(self.preset, **dict(self.overrides))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model.preset={self.preset!r} with {dict(self.overrides)}: {e}") from None

    def spelled_out(self) -> ModelSection:
        """The same model with every field of :attr:`config` as an override (what a run records)."""
        return ModelSection(self.preset, tuple(sorted(self.config.to_dict().items())))


@dataclass(frozen=True)
class LossConfig:
    """Weights and forms of the energy and force terms (see ``docs/transip/training.md``)."""

    energy_weight: float = 5.0
    force_weight: float = 15.0
    energy: Literal["mse", "per_atom_mse"] = "mse"
    force: Literal["l2", "squared"] = "l2"
    # the energy head's output unit: the RMS of the referenced training energies (eV), or the RMS of
    # the training force components (eV/Å, read as eV: MACE's choice), which puts the forces at the
    # start of training on the scale of the labels whatever the energy spread
    head_unit: Literal["energy_rms", "force_rms"] = "energy_rms"
    # what the force error is divided by: the energy RMS (read per Å) or the force RMS
    force_unit: Literal["energy_rms", "force_rms"] = "energy_rms"


@dataclass(frozen=True)
class EquivarianceConfig:
    """How rotational symmetry is learned: TransIP's latent loss, TransAug, or nothing."""

    mode: Literal["transip", "transaug", "none"] = "transip"
    weight: float = 5.0
    target: Literal["node", "graph"] = "node"
    loss: Literal["mse", "contrastive"] = "mse"
    tau: Literal["mlp", "identity", "hyperlinear", "representation"] = "mlp"
    tau_hidden: int = 0  # 0: twice the embedding width
    tau_depth: int = 2
    tau_residual: bool = True
    tau_rank: int = 8  # hyperlinear: rank of A(R) in M(R) = I + A(R); 0: a full D x D matrix
    tau_irreps: str = ""  # representation: e.g. "32x0 + 16x1 + 4x2"; empty: Irreps.filling(D, lmax=2)
    normalize: bool = False
    temperature: float = 0.1
    latent_pass: Literal["separate", "joint"] = "separate"  # joint: rotated copy in the same pass
    augment_task: bool = False  # transip: energy and force terms on the rotated copy R x
    consistency_weight: float = 0.0  # transip: lambda_cons of readout(tau(R, f(x))) vs E; 0: off
    latent_fraction: float = 1.0  # transip: the latent term on this part of each batch's molecules


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a warm-up + cosine schedule, gradient clipping and optional EMA of the weights."""

    lr: float = 3e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 100.0  # 0: no clipping
    warmup_fraction: float = 0.01
    final_lr_fraction: float = 0.01
    ema_decay: float = 0.0  # 0: no EMA


@dataclass(frozen=True)
class TrainConfig:
    """The step budget, reproducibility and the device."""

    steps: int = 1500
    budget_seconds: float = 0.0  # >0: also stop after this many CPU seconds of training steps
    seed: int = 0
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    amp: Literal["none", "bf16"] = "none"
    threads: int = 1  # CPU intra-op threads during the run; 0: torch's default (all cores)
    val_every: int = 250
    checkpoint_every: int = 250
    checkpoint_minutes: float = 5.0  # >0: also write last.pt after this many wall-clock minutes
    log_every: int = 10
    # fine-tuning (docs/transip/training.md#fine-tuning): a checkpoint to start from; empty: fresh weights
    init: str = ""
    init_references: Literal["keep", "refit"] = "keep"  # keep the checkpoint's, fit new elements only
    freeze: tuple[str, ...] = ()  # parameter-name prefixes not trained, e.g. [tokens, blocks.0]


@dataclass(frozen=True)
class EvalConfig:
    """Validation and test evaluation."""

    max_atoms_per_batch: int = 1024
    group_by: Literal["source", "data_id", "none"] = "source"
    equivariance: bool = True
    n_rotations: int = 1
    best_metric: Literal["loss", "energy_mae", "energy_per_atom_mae", "force_mae"] = "loss"


@dataclass(frozen=True)
class LoggingConfig:
    """Where a run writes, and which optional outputs it produces."""

    root: str = "runs"
    run_dir: str = ""  # empty: <root>/<timestamp>-<mode>
    progress: bool = True
    tensorboard: bool = True
    plots: bool = True


@dataclass(frozen=True)
class TrainingConfig:
    """A whole run: one frozen dataclass per section."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    loss: LossConfig = field(default_factory=LossConfig)
    equivariance: EquivarianceConfig = field(default_factory=EquivarianceConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


_SECTIONS: dict[str, type] = typing.get_type_hints(TrainingConfig)
_MODEL_FIELDS: dict[str, Any] = typing.get_type_hints(TransIPConfig)


def _section_keys(section: str) -> list[str]:
    if section == "model":
        return ["preset", *_MODEL_FIELDS]
    return list(typing.get_type_hints(_SECTIONS[section]))


def _suggest_key(section: str, key: str) -> str:
    """`` (did you mean ...?)`` for an unknown ``section.key``: the same key in another section
    (``train.mode`` -> ``equivariance.mode``), else the closest key of this section, else the
    closest ``section.key`` of all."""
    elsewhere = [f"{s}.{key}" for s in _SECTIONS if s != section and key in _section_keys(s)]
    if elsewhere:
        return f" (did you mean {' or '.join(repr(k) for k in elsewhere)}?)"
    near = suggest(key, _section_keys(section))
    if near:
        return near
    return suggest(f"{section}.{key}", [f"{s}.{k}" for s in _SECTIONS for k in _section_keys(s)])


def _build_section(name: str, values: dict[str, Any], base: Any, where: str) -> Any:
    """Apply ``values`` (already split per section) on top of the section dataclass ``base``."""
    if name == "model":
        hints = _MODEL_FIELDS
        # naming a preset starts from it: overrides of earlier layers (defaults, the YAML file)
        # are dropped, those given next to the preset in the same layer apply
        preset = coerce(values["preset"], str, "model.preset", where) if "preset" in values else base.preset
        over = {} if "preset" in values else dict(base.overrides)
        for key, value in values.items():
            if key == "preset":
                continue
            if key not in hints:
                raise ConfigError(
                    f"{where}: unknown key model.{key}{_suggest_key('model', key)}; "
                    f"model keys are 'preset' and the fields of TransIPConfig: {', '.join(hints)}"
                )
            over[key] = coerce(value, hints[key], f"model.{key}", where)
        section = ModelSection(preset=preset, overrides=tuple(sorted(over.items())))
        try:
            section.config  # noqa: B018 -- resolved (and checked) once, here
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        return section
    hints = typing.get_type_hints(type(base))
    updates = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(
                f"{where}: unknown key {name}.{key}{_suggest_key(name, key)}; {name} keys: {', '.join(hints)}"
            )
        updates[key] = coerce(value, hints[key], f"{name}.{key}", where)
    return dataclasses.replace(base, **updates)


def merge_config(config: TrainingConfig, nested: dict[str, Any], where: str) -> TrainingConfig:
    """Return ``config`` updated by a nested ``{section: {key: value}}`` mapping (type-checked).

    Args:
        config: the starting configuration.
        nested: values to apply, e.g. parsed from YAML.
        where: a label for error messages (a file name or ``"command line"``).
    """
    if nested is None:
        return config
    if not isinstance(nested, dict):
        raise ConfigError(f"{where}: expected a mapping of sections, got {type(nested).__name__}")
    updates = {}
    for section, values in nested.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"{where}: unknown section {section!r}{suggest(str(section), _SECTIONS)}; "
                f"sections: {', '.join(_SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: section {section!r} must be a mapping of key: value")
        updates[section] = _build_section(section, values, getattr(config, section), where)
    return dataclasses.replace(config, **updates)


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Split ``["--section.key=value", ...]`` (leading dashes optional) into a nested mapping.

    Values stay strings here; :func:`merge_config` converts them to the field's type.

    Example:
        >>> parse_overrides(["--optim.lr=3e-4", "train.steps=10"])
        {'optim': {'lr': '3e-4'}, 'train': {'steps': '10'}}
    """
    nested: dict[str, dict[str, str]] = {}
    for item in overrides:
        text = item.lstrip("-")
        if "=" not in text or "." not in text.split("=", 1)[0]:
            raise ConfigError(f"command line: override {item!r} is not of the form --section.key=value")
        key, value = text.split("=", 1)
        section, name = key.split(".", 1)
        nested.setdefault(section, {})[name] = value
    return nested


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainingConfig:
    """Defaults, then a YAML file, then command-line overrides; every value type-checked.

    Args:
        path: a YAML file with ``section: {key: value}`` entries, or ``None`` for the defaults.
        overrides: strings ``--section.key=value``.

    Raises:
        ConfigError: missing or unreadable file, unknown section/key, wrong type or choice.

    Example:
        >>> cfg = load_config(None, ["--train.steps=20", "--equivariance.mode=transaug"])
        >>> cfg.train.steps, cfg.equivariance.mode
        (20, 'transaug')
    """
    config = TrainingConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            nested = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        config = merge_config(config, nested or {}, str(path))
    return merge_config(config, parse_overrides(overrides), "command line")


def config_to_dict(config: TrainingConfig) -> dict[str, dict[str, Any]]:
    """A plain nested mapping (YAML/JSON friendly) that :func:`merge_config` reads back identically."""
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(config):
        section = getattr(config, f.name)
        if isinstance(section, ModelSection):
            values = {"preset": section.preset}
            values.update({k: list(v) if isinstance(v, tuple) else v for k, v in section.overrides})
        else:
            values = {
                k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()
            }
        out[f.name] = values
    return out


def save_config(config: TrainingConfig, path: str | Path) -> None:
    """Write the resolved configuration as YAML."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
