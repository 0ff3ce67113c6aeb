"""Inference-time symmetry and the rotation spread, measured on the bundled test sets.

For each (checkpoint, dataset) pair and each ``--symmetry`` mode: CPU time per structure, the
rotate-predict-unrotate error (one Haar rotation per structure: ``|E(Rx) - E(x)|`` in meV and
``|F(Rx) - R F(x)|`` per component in meV/Å, both predictions symmetrised) and the accuracy
against the labels. Then how well the spread ranks the errors (Spearman per structure and per
atom): the rotation spread of ``average:8`` and ``frames`` against a deep ensemble of checkpoints
(the spread of their predictions). One thread, float64, ``time.process_time``. Writes JSON and
prints the tables of docs/transip/symmetry.md:

    OMP_NUM_THREADS=1 python examples/symmetry_uncertainty.py \\
        --ethanol runs/accuracy/runs/ethanol-n450-transip-nb16+b128+ang16-b300-s{0,1,2}/best.pt \\
        --g2 runs/default-source/best.pt --out docs/transip/symmetry_results.json

``--ethanol`` takes checkpoints trained on ethanol (the first is the one measured; all of them
form the ensemble), evaluated on ``ethanol_test`` and, as a molecule they never saw, on the
acetylacetone test sets. ``--g2`` takes a run trained on ``g2_xtb`` split by molecule
(``data.split_by=source``); it is evaluated on its held-out molecules (the split is recomputed
from the run's configuration).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from latentequiv.groups import SO3
from transip.data import Batch, bundled_dataset, read_dataset, split_dataset
from transip.evaluation import evaluate, spread_ranking
from transip.symmetrize import symmetric_predict
from transip.symmetry import rotate_batch, rotate_vectors
from transip.training import load_trained

MODES = ("none", "random", "average:2", "average:8", "frames")
f64 = torch.float64


def batches(dataset, max_molecules: int = 64):
    for start in range(0, len(dataset), max_molecules):
        mols = [dataset[i] for i in range(start, min(len(dataset), start + max_molecules))]
        yield Batch.from_molecules(mols, dtype=f64)


def measure_mode(model, dataset, mode: str, seed: int = 0) -> dict:
    """Cost, rotation error and accuracy of one mode on one dataset."""
    gen, rgen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    cpu, n = 0.0, 0
    de, df, ee, fe = [], [], [], []
    for b in batches(dataset):
        start = time.process_time()
        p = symmetric_predict(model, b, mode, generator=gen)
        cpu += time.process_time() - start
        n += b.num_molecules
        r = SO3().sample(b.num_molecules, generator=rgen, dtype=f64)
        q = symmetric_predict(model, rotate_batch(b, r), mode, generator=gen)
        de.append((q.energy - p.energy).abs())
        df.append((q.forces - rotate_vectors(p.forces, r[b.batch])).abs().flatten())
        ee.append((p.energy - b.energy).abs())
        fe.append((p.forces - b.forces).abs().flatten())
    cat = lambda xs: float(torch.cat(xs).mean()) * 1000  # noqa: E731
    return {
        "mode": mode,
        "cpu_ms_per_structure": cpu / n * 1000,
        "rotation_energy_mae_meV": cat(de),
        "rotation_force_mae_meV_A": cat(df),
        "energy_mae_meV": cat(ee),
        "force_mae_meV_A": cat(fe),
    }


def ensemble_ranking(models, dataset) -> dict:
    """Spread of several checkpoints' predictions against the error of their mean."""
    preds = [
        evaluate(m, dataset, dtype=f64, keep_predictions=True, group_by="none").predictions for m in models
    ]
    e = np.stack([p.energy for p in preds])  # (M, B)
    f = np.stack([p.forces for p in preds])  # (M, T, 3)
    truth = preds[0]
    atom_structure = np.repeat(np.arange(len(truth.num_atoms)), truth.num_atoms)
    ranking = spread_ranking(
        e.std(axis=0),
        np.abs(e.mean(axis=0) - truth.energy_true),
        np.sqrt(((f - f.mean(axis=0)) ** 2).sum(-1).mean(axis=0)),
        np.linalg.norm(f.mean(axis=0) - truth.forces_true, axis=-1),
        atom_structure,
    )
    return ranking.as_dict()


def rotation_ranking(model, dataset, mode: str) -> dict:
    report = evaluate(model, dataset, dtype=f64, symmetry=mode, group_by="none")
    out = report.uncertainty.as_dict()
    out["force_mae_meV_A"] = report.overall.force_mae
    return out


def load(path: str):
    model, _, config = load_trained(path)
    return model.to(f64).eval(), config


def held_out_molecules(config):
    data = read_dataset(bundled_dataset("g2_xtb"))
    vf = config.data.val_fraction
    _, val = split_dataset(data, [1.0 - vf, vf], seed=config.train.seed, by=config.data.split_by)
    return val


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--ethanol", nargs="+", default=[], help="checkpoints trained on ethanol (first: measured)"
    )
    p.add_argument("--g2", default=None, help="a run trained on g2_xtb split by molecule")
    p.add_argument("--max-structures", type=int, default=100, help="per test set for the mode table")
    p.add_argument("--out", default="docs/transip/symmetry_results.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    sets = []
    if args.ethanol:
        ethanol = [load(c)[0] for c in args.ethanol]
        for name in ("ethanol_test", "acac_test_300K", "acac_test_600K"):
            sets.append((name, args.ethanol[0], ethanol, read_dataset(bundled_dataset(name))))
    if args.g2:
        model, config = load(args.g2)
        sets.append(("g2_xtb held-out molecules", args.g2, [model], held_out_molecules(config)))

    results = {"threads": 1, "dtype": "float64", "modes": [], "uncertainty": []}
    for name, checkpoint, models, data in sets:
        sub = data if len(data) <= args.max_structures else [data[i] for i in range(args.max_structures)]
        for mode in MODES:
            row = {
                "dataset": name,
                "checkpoint": checkpoint,
                "structures": len(sub),
                **measure_mode(models[0], sub, mode),
            }
            results["modes"].append(row)
            print(json.dumps(row), flush=True)
        for method in ("average:8", "frames"):
            row = {
                "dataset": name,
                "method": f"rotation spread, {method}",
                **rotation_ranking(models[0], data, method),
            }
            results["uncertainty"].append(row)
            print(json.dumps(row), flush=True)
        if len(models) > 1:
            row = {
                "dataset": name,
                "method": f"ensemble of {len(models)} seeds",
                **ensemble_ranking(models, data),
            }
            results["uncertainty"].append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print_tables(results)


MODE_HEADER = (
    "| test set | mode | CPU ms / structure | rotation error E (meV) | rotation error F (meV/Å) "
    "| E MAE (meV) | F MAE (meV/Å) |\n|---|---|---:|---:|---:|---:|---:|"
)
SPREAD_HEADER = (
    "| test set | spread | structures | Spearman E (per structure) | Spearman F (per atom) "
    "| Spearman F (per structure) |\n|---|---|---:|---:|---:|---:|"
)


def print_tables(results: dict) -> None:
    print("\n" + MODE_HEADER)
    for r in results["modes"]:
        cells = [
            r["dataset"],
            f"`{r['mode']}`",
            f"{r['cpu_ms_per_structure']:.1f}",
            f"{r['rotation_energy_mae_meV']:.3g}",
            f"{r['rotation_force_mae_meV_A']:.3g}",
            f"{r['energy_mae_meV']:.1f}",
            f"{r['force_mae_meV_A']:.1f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print("\n" + SPREAD_HEADER)
    for r in results["uncertainty"]:
        s = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        cells = [r["dataset"], r["method"], str(r["n_structures"])]
        cells += [s(r["energy_spearman"]), s(r["force_spearman_atoms"]), s(r["force_spearman_structures"])]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
