"""Run configuration: frozen dataclasses loaded from YAML with typed ``--section.key=value`` overrides.

A configuration is a :class:`TrainingConfig` made of sections. Every value is type-checked against
the dataclass field it lands in, and every problem (unknown section or key, a wrong type, a value
outside its choices, a missing file) raises :class:`ConfigError` naming the key and the file *before*
any work starts. The ``model`` section is open: it takes a ``preset`` name plus any field of
:class:`transip.model.TransIPConfig`, checked against that dataclass's own types.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration problem, reported before a run starts (names the key and the file)."""


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
    max_atoms_per_batch: int = 256
    energy_key: str = ""  # empty: the ASE calculator's energy
    forces_key: str = ""  # empty: the ASE calculator's forces
    num_workers: int = 0


@dataclass(frozen=True)
class ModelSection:
    """A ``TransIPConfig`` preset plus field overrides, kept as sorted ``(name, value)`` pairs.

    The default is the ``"tiny"`` preset widened for the CPU demo run (about 2 minutes on one core).
    """

    preset: str = "tiny"
    overrides: tuple[tuple[str, Any], ...] = (("d_model", 96), ("n_layers", 3), ("num_rbf", 32))


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
    tau: Literal["mlp", "identity", "hyperlinear"] = "mlp"
    tau_hidden: int = 0  # 0: twice the embedding width
    tau_depth: int = 2
    tau_residual: bool = True
    normalize: bool = False
    temperature: float = 0.1
    latent_pass: Literal["separate", "joint"] = "separate"  # joint: rotated copy in the same pass


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
    log_every: int = 10


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


def _model_fields() -> dict[str, Any]:
    from transip.model import TransIPConfig

    return typing.get_type_hints(TransIPConfig)


def _suggest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; strings from the command line are parsed."""

    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{where}: {key} expects {expected}, got {value!r}")

    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            fail("one of " + ", ".join(repr(c) for c in choices))
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as e:
                errors.append(str(e))
        fail(" or ".join(str(a) for a in args))
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, (list, tuple)):
            fail(f"a list {tp}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key, where) for v in value)
        if len(value) != len(args):
            fail(f"a list of {len(args)} values")
        return tuple(_coerce(v, a, key, where) for v, a in zip(value, args, strict=True))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        fail("a boolean (true/false)")
    if tp is int:
        if isinstance(value, bool):
            fail("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                fail("an integer")
        fail("an integer")
    if tp is float:
        if isinstance(value, bool):
            fail("a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                fail("a number")
        fail("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        fail("a string")
    if isinstance(value, tp):
        return value
    fail(str(tp))


def _check_model_preset(name: str, where: str) -> None:
    from transip.model import TransIPConfig

    try:
        TransIPConfig.preset(name)
    except Exception as e:  # the model's own message says which presets exist
        raise ConfigError(f"{where}: model.preset {name!r} is not a preset: {e}") from None


def _build_section(name: str, values: dict[str, Any], base: Any, where: str) -> Any:
    """Apply ``values`` (already split per section) on top of the section dataclass ``base``."""
    if name == "model":
        hints = _model_fields()
        preset = base.preset
        # naming a preset starts from it: overrides of earlier layers (defaults, the YAML file)
        # are dropped, those given next to the preset in the same layer apply
        over = {} if "preset" in values else dict(base.overrides)
        for key, value in values.items():
            if key == "preset":
                preset = _coerce(value, str, "model.preset", where)
                _check_model_preset(preset, where)
                continue
            if key not in hints:
                raise ConfigError(
                    f"{where}: unknown key model.{key}{_suggest(key, [*hints, 'preset'])}; "
                    f"model keys are 'preset' and the fields of TransIPConfig: {', '.join(hints)}"
                )
            over[key] = _coerce(value, hints[key], f"model.{key}", where)
        return ModelSection(preset=preset, overrides=tuple(sorted(over.items())))
    hints = typing.get_type_hints(type(base))
    updates = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(
                f"{where}: unknown key {name}.{key}{_suggest(key, hints)}; {name} keys: {', '.join(hints)}"
            )
        updates[key] = _coerce(value, hints[key], f"{name}.{key}", where)
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
                f"{where}: unknown section {section!r}{_suggest(str(section), _SECTIONS)}; "
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
