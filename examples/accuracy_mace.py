"""MACE side of the accuracy-per-CPU-time benchmark: train MACE for a fixed CPU-time budget, then test.

Run inside the benchmark environment (``examples/bench_env.sh``), one run per invocation::

    .venv-bench/bin/python examples/accuracy_mace.py --train train.extxyz.gz --val val.extxyz \\
        --test ethanol=transip/datasets/ethanol_test.extxyz.gz --budget-seconds 1200 --seed 0 \\
        --out runs/mace_seed0.json

Data: extended XYZ (``.gz`` allowed), energies in eV and forces in eV/Å as ASE reads them; every
frame needs both. The caller chooses the train/validation split and passes files.

Model (``mace_run_train``'s defaults for ``--model MACE``): ``ScaleShiftMACE`` for the elements of
the training set, r_max 5 Å, 8 Bessel functions, polynomial cutoff p=5, max_ell 3, correlation 3,
2 interactions (first ``RealAgnosticInteractionBlock``, then ``RealAgnosticResidualInteractionBlock``),
radial MLP [64, 64, 64], MLP_irreps 16x0e, gate silu, hidden irreps ``--hidden`` (default 64x0e;
mace's documented default is ``128x0e + 128x1o``), float64 unless ``--dtype float32``. E0s are fitted
by least squares on the training set; the scale is the RMS of the training forces and the shift
the mean per-atom interaction energy (``rms_forces_scaling``; this shift is what ``--model
ScaleShiftMACE`` uses, plain ``--model MACE`` uses 0); avg_num_neighbors from the training set.

Training (mace's defaults): Adam with amsgrad, lr 0.01, betas (0.9, 0.999), weight decay 5e-7 on
mace's groups (interaction ``linear``/``skip_tp_full`` weights and the products; none on the
embedding, the other interaction weights and the readouts: ``mace.tools.get_params_options``),
batch 10 with ``drop_last``, ``WeightedEnergyForcesLoss(1, 100)``, gradient-norm clip 10,
ReduceLROnPlateau(factor 0.8, patience 50) stepped on the validation loss at each evaluation, and
EMA of the weights with decay ``--ema-decay`` (default 0.99; ``mace_run_train`` needs ``--ema`` for
it, which MACE users routinely pass; ``--ema-decay 0`` turns it off).

Budget: only ``time.process_time()`` spent in training steps counts (collation, forward, backward,
clipping, optimiser and EMA updates); training stops once it reaches ``--budget-seconds``.
Validation runs every ``--eval-every-seconds`` of that time (and at 0 and the end) and is not
counted; each gives a point of ``curve``. The weights (EMA weights when EMA is on) with the lowest
weighted validation loss (the training loss on the whole validation set, as ``mace_run_train``
checkpoints) are tested on every ``--test NAME=PATH``.

Metrics (meV), as ``transip.evaluation._metrics``: energy MAE / RMSE over molecules (total energy),
energy MAE per atom (``mean |dE| / N``), force MAE / RMSE over all Cartesian components, and the
mean per-atom force cosine. The record goes to ``--out`` atomically (tmp file, then ``os.replace``).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import sys
import time
from contextlib import nullcontext

import ase.io
import numpy as np
import torch

# e3nn 0.4.4 (pinned by mace-torch) loads its constants with torch.load, which torch >= 2.6 restricts
# to weights only; the file holds Python slices, so allow exactly that type (as examples/benchmark.py).
torch.serialization.add_safe_globals([slice])

import e3nn  # noqa: E402
import mace  # noqa: E402
from e3nn import o3  # noqa: E402
from mace import data as mace_data  # noqa: E402
from mace import modules  # noqa: E402
from mace.tools import AtomicNumberTable, torch_geometric  # noqa: E402
from mace.tools.scripts_utils import get_params_options  # noqa: E402
from torch_ema import ExponentialMovingAverage  # noqa: E402


def fail(message: str) -> None:
    print(f"accuracy_mace.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def read_configs(path: str) -> list:
    """Frames of ``path`` as mace ``Configuration``s (energy eV, forces eV/Å, no cell)."""
    if not os.path.isfile(path):
        fail(f"no such file: {path}")
    if path.endswith(".gz"):  # ASE's own .gz reader seeks through the stream: very slow
        with gzip.open(path, "rt") as f:
            frames = ase.io.read(f, ":", format="extxyz")
    else:
        frames = ase.io.read(path, ":")
    if not frames:
        fail(f"no frames in {path}")
    configs = []
    for i, atoms in enumerate(frames):
        try:
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        except Exception:  # no calculator, or one without the property
            fail(f"{path}: frame {i} lacks an energy or forces")
        configs.append(mace_data.Configuration(
            atomic_numbers=atoms.numbers.copy(), positions=atoms.positions.copy(),
            properties={"energy": float(energy), "forces": np.asarray(forces, dtype=float)},
            property_weights={"energy": 1.0, "forces": 1.0}, cell=np.zeros((3, 3)), pbc=(False,) * 3,
        ))  # fmt: skip
    return configs


def loader(configs, z_table, r_max, batch_size, shuffle, seed=0):
    """mace ``AtomicData`` (neighbour lists built once, here) in a torch_geometric loader."""
    dataset = [mace_data.AtomicData.from_config(c, z_table=z_table, cutoff=r_max) for c in configs]
    return torch_geometric.dataloader.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=shuffle and len(dataset) >= batch_size,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


def evaluate(model, data_loader, energy_weight: float, forces_weight: float) -> dict:
    """Metrics (meV) and the weighted loss of ``model`` on every molecule of ``data_loader``."""
    model.eval()
    e_pred, e_true, n_atoms, f_pred, f_true = [], [], [], [], []
    for batch in data_loader:
        out = model(batch.to_dict(), training=False, compute_force=True)
        e_pred.append(out["energy"].detach())
        f_pred.append(out["forces"].detach())
        e_true.append(batch.energy)
        f_true.append(batch.forces)
        n_atoms.append(batch.ptr[1:] - batch.ptr[:-1])
    e_pred, e_true, f_pred, f_true = (torch.cat(t).double() for t in (e_pred, e_true, f_pred, f_true))
    n = torch.cat(n_atoms).double()
    de, df = e_pred - e_true, f_pred - f_true
    cosine = (f_pred * f_true).sum(-1) / (f_pred.norm(dim=-1) * f_true.norm(dim=-1)).clamp_min(1e-12)
    model.train()
    return {
        "n_molecules": len(n), "n_atoms": int(n.sum()),
        "energy_mae": 1000 * de.abs().mean().item(),
        "energy_rmse": 1000 * de.square().mean().sqrt().item(),
        "energy_per_atom_mae": 1000 * (de.abs() / n).mean().item(),
        "force_mae": 1000 * df.abs().mean().item(),  # over Cartesian components, as the project
        "force_rmse": 1000 * df.square().mean().sqrt().item(),
        "force_cosine": cosine.mean().item(),
        # WeightedEnergyForcesLoss on the whole set (eV^2/atom^2, eV^2/Å^2)
        "loss": energy_weight * (de / n).square().mean().item() + forces_weight * df.square().mean().item(),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--test", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--budget-seconds", type=float, required=True, help="training CPU time (process_time)")
    p.add_argument("--eval-every-seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", default="64x0e", help='hidden irreps; mace default "128x0e + 128x1o"')
    p.add_argument("--num-interactions", type=int, default=2)
    p.add_argument("--r-max", type=float, default=5.0)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=5e-7)
    p.add_argument("--energy-weight", type=float, default=1.0)
    p.add_argument("--forces-weight", type=float, default=100.0)
    p.add_argument("--ema-decay", type=float, default=0.99, help="0 turns EMA off")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="mace default float64")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    wall0 = time.perf_counter()

    tests = {}
    for spec in args.test:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            fail(f"--test wants NAME=PATH, got {spec!r}")
        tests[name] = path
    for path in [args.train, args.val, *tests.values()]:
        if not os.path.isfile(path):
            fail(f"no such file: {path}")

    torch.set_num_threads(args.threads)
    torch.set_default_dtype(getattr(torch, args.dtype))  # mace's data and model follow the default
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    train, val = read_configs(args.train), read_configs(args.val)
    test = {name: read_configs(path) for name, path in tests.items()}
    z_table = AtomicNumberTable(sorted({int(z) for c in train for z in c.atomic_numbers}))
    for name, configs in [("val", val), *test.items()]:
        extra = {int(z) for c in configs for z in c.atomic_numbers} - set(z_table.zs)
        if extra:
            fail(f"{name} has elements {sorted(extra)} absent from the training set")

    # Statistics as mace_run_train: E0s by least squares, then the RMS force scale, mean shift and
    # average neighbour count over the whole training set.
    e0 = mace_data.compute_average_E0s(train, z_table)
    atomic_energies = np.array([e0[z] for z in z_table.zs])
    train_loader = loader(train, z_table, args.r_max, args.batch_size, shuffle=True, seed=args.seed)
    stats_loader = loader(train, z_table, args.r_max, args.batch_size, shuffle=False)
    mean, rms = modules.scaling_classes["rms_forces_scaling"](stats_loader, atomic_energies)
    avg_num_neighbors = modules.compute_avg_num_neighbors(stats_loader)
    # evaluation is not timed: larger batches only to save wall time (same numbers up to rounding)
    val_loader = loader(val, z_table, args.r_max, 32, shuffle=False)
    test_loaders = {name: loader(c, z_table, args.r_max, 32, shuffle=False) for name, c in test.items()}

    model = modules.ScaleShiftMACE(
        r_max=args.r_max, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=args.num_interactions, num_elements=len(z_table),
        hidden_irreps=o3.Irreps(args.hidden), MLP_irreps=o3.Irreps("16x0e"), gate=torch.nn.functional.silu,
        atomic_energies=atomic_energies, avg_num_neighbors=avg_num_neighbors, atomic_numbers=z_table.zs,
        correlation=3, radial_MLP=[64, 64, 64], atomic_inter_scale=float(np.ravel(rms)[0]),
        atomic_inter_shift=float(np.ravel(mean)[0]),
    )  # fmt: skip
    model.train()
    # mace's own parameter groups (weight decay on the interactions' linear weights and the products)
    opt_args = argparse.Namespace(lr=args.lr, weight_decay=args.weight_decay, amsgrad=True, beta=0.9,
                                  lr_params_factors="{}", freeze=None)  # fmt: skip
    optimizer = torch.optim.Adam(**get_params_options(opt_args, model))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.8, patience=50)
    ema = ExponentialMovingAverage(model.parameters(), decay=args.ema_decay) if args.ema_decay > 0 else None
    loss_fn = modules.WeightedEnergyForcesLoss(args.energy_weight, args.forces_weight)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        fail("training set is empty")

    curve, best = [], {"loss": float("inf"), "state": None}
    train_cpu, step = 0.0, 0

    def checkpoint() -> None:
        """Validate (EMA weights), add a curve point, step the scheduler, keep the best weights."""
        with ema.average_parameters() if ema is not None else nullcontext():
            m = evaluate(model, val_loader, args.energy_weight, args.forces_weight)
            if m["loss"] < best["loss"]:
                best.update(loss=m["loss"], step=step, state=copy.deepcopy(model.state_dict()))
        scheduler.step(m["loss"])
        curve.append({
            "cpu_seconds": round(train_cpu, 3), "step": step, "epoch": round(step / steps_per_epoch, 3),
            "val_energy_mae": m["energy_mae"], "val_force_mae": m["force_mae"], "val_loss": m["loss"],
            "lr": optimizer.param_groups[0]["lr"],
        })  # fmt: skip
        print(f"cpu {train_cpu:8.1f}s step {step:6d}  val E {m['energy_mae']:8.2f} meV  "
              f"F {m['force_mae']:7.2f} meV/Å", flush=True)  # fmt: skip

    checkpoint()
    next_eval = args.eval_every_seconds
    batches = iter(train_loader)
    while train_cpu < args.budget_seconds:
        t0 = time.process_time()
        batch = next(batches, None)
        if batch is None:  # new epoch, new shuffle
            batches = iter(train_loader)
            batch = next(batches)
        optimizer.zero_grad(set_to_none=True)
        out = model(batch.to_dict(), training=True, compute_force=True)
        loss = loss_fn(pred=out, ref=batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        optimizer.step()
        if ema is not None:
            ema.update()
        train_cpu += time.process_time() - t0
        step += 1
        if train_cpu >= next_eval and train_cpu < args.budget_seconds:
            checkpoint()
            next_eval = (train_cpu // args.eval_every_seconds + 1) * args.eval_every_seconds
    checkpoint()  # the end of the budget

    model.load_state_dict(best["state"])  # best validation weights (already the EMA average)
    record = {
        "model": "MACE",
        "settings": {
            "hidden_irreps": str(o3.Irreps(args.hidden)), "num_interactions": args.num_interactions,
            "r_max": args.r_max, "num_radial_basis": 8, "num_cutoff_basis": 5, "max_ell": 3,
            "correlation": 3, "interaction_first": "RealAgnosticInteractionBlock",
            "interaction": "RealAgnosticResidualInteractionBlock", "MLP_irreps": "16x0e", "gate": "silu",
            "radial_MLP": [64, 64, 64], "dtype": args.dtype, "elements": list(z_table.zs),
            "E0s": {int(z): float(e) for z, e in e0.items()}, "scaling": "rms_forces_scaling",
            "atomic_inter_scale": float(np.ravel(rms)[0]), "atomic_inter_shift": float(np.ravel(mean)[0]),
            "avg_num_neighbors": avg_num_neighbors, "n_params": sum(q.numel() for q in model.parameters()),
            "batch_size": args.batch_size, "drop_last": train_loader.drop_last,
            "optimizer": "Adam(amsgrad=True, betas=(0.9, 0.999))", "lr": args.lr,
            "weight_decay": args.weight_decay,
            "weight_decay_groups": "mace get_params_options: interactions' linear/skip_tp_full weights "
            "and products; 0 on embedding, other interaction weights, readouts",
            "energy_weight": args.energy_weight, "forces_weight": args.forces_weight,
            "loss": "WeightedEnergyForcesLoss", "clip_grad": 10.0,
            "scheduler": "ReduceLROnPlateau(factor=0.8, patience=50), stepped at each evaluation",
            "ema": ema is not None, "ema_decay": args.ema_decay,
            "best_selection": "lowest weighted validation loss" + (" (EMA weights)" if ema else ""),
            "eval_every_seconds": args.eval_every_seconds, "threads": args.threads,
            "allocator": os.environ.get("LD_PRELOAD") or "glibc default",
            "torch": torch.__version__, "mace": mace.__version__, "e3nn": e3nn.__version__,
        },
        "metric_definitions": "meV; energy over molecules (total energy), per atom = mean |dE|/N; "
        "force MAE/RMSE over all Cartesian components; force_cosine = mean per-atom cosine",
        "seed": args.seed, "budget_seconds": args.budget_seconds, "cpu_seconds_used": train_cpu,
        "steps": step, "epochs": step / steps_per_epoch, "best_step": best["step"],
        "train_size": len(train), "val_size": len(val),
        "curve": curve,
        "val": evaluate(model, val_loader, args.energy_weight, args.forces_weight),
        "test": {name: evaluate(model, dl, args.energy_weight, args.forces_weight)
                 for name, dl in test_loaders.items()},
    }  # fmt: skip
    record["wall_seconds"] = time.perf_counter() - wall0
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, f".{os.path.basename(args.out)}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, args.out)
    tests_out = record["test"]
    summary = [f"{k} E {v['energy_mae']:.2f} meV F {v['force_mae']:.2f} meV/Å" for k, v in tests_out.items()]
    print(f"wrote {args.out}: {step} steps; test {', '.join(summary)}")


if __name__ == "__main__":
    main()
