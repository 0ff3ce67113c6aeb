"""CPU time of one training step for each option of the latent objective (docs/transip/training.md).

One process, one thread, ``time.process_time``; the same batch (the first <= 256 atoms of the
bundled GFN2-xTB training split) and the same rotations for every variant; the variants are
interleaved step by step so that a busy machine slows them alike; median of 20 steps after 3
warm-up steps. Extra ``--section.key=value`` arguments apply to every variant.

    python examples/latent_options_cost.py
    python examples/latent_options_cost.py --model.neighbour_channels=8
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from latentequiv.groups import SO3
from transip.data import Batch
from transip.training import (
    build_model,
    build_objective,
    build_optimizer,
    fit_references,
    load_config,
    load_datasets,
)

VARIANTS = {
    "transip, tau: mlp": [],
    "tau: representation": ["--equivariance.tau=representation"],
    "tau: hyperlinear (rank 8)": ["--equivariance.tau=hyperlinear"],
    "tau: hyperlinear, tau_rank: 0": ["--equivariance.tau=hyperlinear", "--equivariance.tau_rank=0"],
    "augment_task: true": ["--equivariance.augment_task=true"],
    "consistency_weight: 5": ["--equivariance.consistency_weight=5"],
    "latent_fraction: 0.5": ["--equivariance.latent_fraction=0.5"],
    "latent_fraction: 0.25": ["--equivariance.latent_fraction=0.25"],
    "mode: transaug": ["--equivariance.mode=transaug"],
}


def main(extra: list[str], warmup: int = 3, steps: int = 20) -> None:
    torch.set_num_threads(1)
    base = load_config(None, extra)
    train_set, _, _ = load_datasets(base.data, seed=base.train.seed, max_atoms=1024)
    fit = fit_references(train_set)
    molecules, atoms = [], 0
    for i in range(len(train_set)):
        m = train_set[i]
        if atoms + len(m.numbers) > base.data.max_atoms_per_batch:
            break
        molecules.append(m)
        atoms += len(m.numbers)
    batch = Batch.from_molecules(molecules)
    rotations = SO3().sample(batch.num_molecules, generator=torch.Generator().manual_seed(0))
    print(f"batch: {batch.num_molecules} molecules, {atoms} atoms; {' '.join(extra) or 'default run'}")
    parts = {}
    for name, overrides in VARIANTS.items():
        config = load_config(None, [*extra, *overrides])
        torch.manual_seed(0)
        objective = build_objective(config, build_model(config, fit), fit).train()
        parts[name] = objective, build_optimizer(objective, config.optim)
    times: dict[str, list[float]] = {name: [] for name in parts}
    for step in range(warmup + steps):
        for name, (objective, optimizer) in parts.items():
            t0 = time.process_time()
            optimizer.zero_grad(set_to_none=True)
            objective(batch, rotations if objective.needs_rotations else None).total.backward()
            optimizer.step()
            if step >= warmup:
                times[name].append(time.process_time() - t0)
    ref = statistics.median(times["transip, tau: mlp"])
    for name, t in times.items():
        median = statistics.median(t)
        print(f"| {name} | {1000 * median:.1f} | {median / ref:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
