"""Fine-tuning: a run that starts from a trained checkpoint (``train.init``), with frozen layers if asked.

What a fine-tuning run takes from the checkpoint: the model configuration (the ``model`` section
may repeat it, but a field that changes the weights is a :class:`ConfigError`; dropout and the
attention layout knobs may differ), every weight and buffer (readout head, energy scale and element
references included), and the tau-network when the run builds the same kind of tau. So before
the first optimiser step the model predicts exactly what the checkpoint predicts.

Element references (``train.init_references``):

- ``keep`` (default): the checkpoint's non-zero references stay as they are; elements of the new
  training set without one get a least-squares fit of what the kept references leave,
  ``min_e sum_m (E_m - sum_{i known} e_ref[Z_i] - sum_{i new} e[Z_i])^2`` (minimum-norm, float64);
- ``refit``: all references are fitted afresh on the new training set, as a fresh run does
  (predictions then change by a constant per element at step 0).

The head's energy scale is always the checkpoint's (changing it would rescale the head's output);
the loss units are the RMS of the training energies under the references the model uses and the
RMS of the training forces.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase.data import chemical_symbols
from torch import nn

from transip.checkpoint import CheckpointError, load_checkpoint
from transip.data import MAX_Z, ElementReferences, ReferenceFitReport, numbers_and_energies
from transip.model import TransIP, TransIPConfig

from ._coerce import ConfigError
from ._config import ModelSection, TrainingConfig
from ._labels import ReferenceFit, fit_references, force_rms

log = logging.getLogger("transip.training")

#: model fields a fine-tuning run may change: they do not change the weights
RUNTIME_FIELDS = ("dropout", "attn_dropout", "bucket_growth", "bucket_slack")

#: the equivariance keys that decide the tau-network's parameters
_TAU_KEYS = ("mode", "tau", "tau_hidden", "tau_depth", "tau_residual", "tau_rank", "tau_irreps")


@dataclass(frozen=True)
class InitSource:
    """What ``train.init`` names: the checkpoint's model configuration, weights and tau.

    Attributes:
        path: the checkpoint file.
        model_config: its :class:`TransIPConfig`.
        state_dict: its model weights and buffers (references and energy scale included).
        tau: the tau-network's state dict, or ``None``.
        equivariance: its run's ``equivariance`` section (a dict), or ``None`` for a checkpoint not
            written by the trainer.
    """

    path: Path
    model_config: TransIPConfig
    state_dict: dict
    tau: dict | None
    equivariance: dict | None

    @property
    def references(self) -> torch.Tensor:
        """``(119,)`` float64 element references of the checkpoint."""
        return self.state_dict["energy.element_energies"].to(torch.float64)

    @property
    def known_elements(self) -> tuple[int, ...]:
        """Atomic numbers with a non-zero reference (a fit leaves absent elements at exactly 0)."""
        return tuple(int(z) for z in torch.nonzero(self.references).flatten())


def read_init(path: str | Path) -> InitSource:
    """Read the checkpoint of ``train.init``.

    Raises:
        ConfigError: no such file, or not a readable TransIP checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"train.init: checkpoint not found: {path}")
    try:
        ckpt = load_checkpoint(path, map_location="cpu")
        config = TransIPConfig.from_dict(ckpt["config"])
    except (CheckpointError, ValueError) as e:
        raise ConfigError(f"train.init: {e}") from None
    extra = ckpt.get("extra", {})
    run = extra.get("training_config")
    return InitSource(
        path=path,
        model_config=config,
        state_dict=ckpt["state_dict"],
        tau=extra.get("tau"),
        equivariance=None if run is None else run.get("equivariance"),
    )


def resolve_init(config: TrainingConfig) -> TrainingConfig:
    """``config`` with its ``model`` section taken from the ``train.init`` checkpoint (unchanged without).

    Model fields set away from the defaults must agree with the checkpoint, except the
    :data:`RUNTIME_FIELDS`, which are kept. (A field set to its default value cannot be told from
    an unset one, so it is taken from the checkpoint.)

    Raises:
        ConfigError: the checkpoint cannot be read, or a model field conflicts with it (named with
            both values).
    """
    if not config.train.init:
        return config
    source = read_init(config.train.init)
    ckpt, mine, default = source.model_config, config.model.config, ModelSection().config
    changed = {
        f.name for f in dataclasses.fields(TransIPConfig) if getattr(mine, f.name) != getattr(default, f.name)
    }
    conflicts = [
        f"model.{name}={getattr(mine, name)!r} (the checkpoint has {getattr(ckpt, name)!r})"
        for name in sorted(changed - set(RUNTIME_FIELDS))
        if getattr(mine, name) != getattr(ckpt, name)
    ]
    if conflicts:
        raise ConfigError(
            f"train.init={config.train.init}: the model comes from the checkpoint, but "
            f"{'; '.join(conflicts)}; drop these model overrides "
            f"(only {', '.join(RUNTIME_FIELDS)} may differ)"
        )
    model = ckpt.replace(**{name: getattr(mine, name) for name in changed & set(RUNTIME_FIELDS)})
    section = ModelSection(config.model.preset, tuple(sorted(model.to_dict().items())))
    return dataclasses.replace(config, model=section)


def _names(elements) -> str:
    return ", ".join(chemical_symbols[z] for z in elements) or "none"


def kept_references(train, known: torch.Tensor) -> ReferenceFit:
    """The checkpoint's references ``known`` (``(119,)``, non-zero = known) plus a fit of new elements.

    Only molecules with a new element constrain the new references: the least-squares problem is
    over those rows, with the known references' sum subtracted from their energies.
    """
    known = known.detach().cpu().to(torch.float64).numpy()
    is_known = known != 0
    present = np.zeros(MAX_Z + 1, dtype=bool)
    rows: list[np.ndarray] = []  # (119,) counts of the new elements of each such molecule
    targets: list[float] = []
    for numbers, energy in numbers_and_energies(train):
        if energy is None:
            continue
        present[numbers] = True
        new = numbers[~is_known[numbers]]
        if new.size:
            rows.append(np.bincount(new, minlength=MAX_Z + 1))
            targets.append(energy - float(known[numbers].sum()))
    full = known.copy()
    new_elements = np.flatnonzero(present & ~is_known)
    rank = 0
    if new_elements.size:
        counts = np.stack(rows)[:, new_elements].astype(np.float64)  # (m, k)
        solution, _, rank, _ = np.linalg.lstsq(counts, np.asarray(targets), rcond=None)
        full[new_elements] = solution
    abs_sum = sq_sum = 0.0
    n = 0
    for numbers, energy in numbers_and_energies(train):
        if energy is None:
            continue
        residual = energy - float(full[numbers].sum())
        abs_sum, sq_sum, n = abs_sum + abs(residual), sq_sum + residual * residual, n + 1
    if n == 0:
        raise ConfigError("train.init: no training molecule has an energy, so the loss units are undefined")
    elements = tuple(int(z) for z in np.flatnonzero(present | is_known))
    report = ReferenceFitReport(
        abs_sum / n, math.sqrt(sq_sum / n), n, elements, int(is_known.sum()) + int(rank)
    )
    log.info(
        "references kept from the checkpoint for %s; fitted for new elements: %s",
        _names(np.flatnonzero(is_known & present)),
        _names(new_elements),
    )
    return ReferenceFit(ElementReferences(full), report, max(report.rmse, 1e-3), force_rms(train))


def init_references(config: TrainingConfig, source: InitSource, train) -> ReferenceFit:
    """The references and loss units of a fine-tuning run (``train.init_references``)."""
    if config.train.init_references == "refit":
        return fit_references(train)
    return kept_references(train, source.references)


def init_model(config: TrainingConfig, source: InitSource, fit: ReferenceFit) -> TransIP:
    """The checkpoint's model (the run's runtime fields), with ``fit``'s references."""
    model = TransIP(config.model.config)
    model.load_state_dict(source.state_dict)
    model.set_element_references(fit.references)
    return model


def init_tau(config: TrainingConfig, source: InitSource, tau: nn.Module | None) -> None:
    """Load the checkpoint's tau into ``tau`` when the run builds the same kind (else it stays fresh)."""
    if tau is None or source.tau is None or source.equivariance is None:
        return
    eq = dataclasses.asdict(config.equivariance)
    if all(source.equivariance.get(k) == eq[k] for k in _TAU_KEYS):
        tau.load_state_dict(source.tau)
    else:
        log.info("train.init: the checkpoint's tau-network is of another kind; tau starts afresh")


def freeze(model: nn.Module, prefixes: tuple[str, ...]) -> list[str]:
    """Stop training the parameters whose names start with one of ``prefixes`` (``blocks.0`` covers
    ``blocks.0.attn.qkv.weight``, not ``blocks.10``); returns the frozen names.

    Raises:
        ConfigError: a prefix that names no parameter (the model's top-level names are listed).
    """
    names = [name for name, _ in model.named_parameters()]
    frozen = []
    for prefix in prefixes:
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            top = sorted({n.split(".")[0] for n in names})
            raise ConfigError(
                f"train.freeze: {prefix!r} names no parameter; top-level parts: {', '.join(top)}"
            )
        frozen += hits
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    return sorted(set(frozen))
