"""MD stability check: does a checkpoint keep every molecule of a dataset intact in 1 ps of NVE?

One start per distinct molecule (``source`` name, charge and spin; a file without ``source`` labels
is one molecule, its first frame), ``--per-source N`` frames each. Every start gets Maxwell-Boltzmann
velocities at ``--temperature`` (seeded; total momentum and angular momentum removed; rescaled to the
equipartition kinetic energy ``(3N - 6) k_B T / 2``), then NVE velocity Verlet with
:class:`transip.calculator.TransIPCalculator` (float64, one thread). Every ``--interval`` steps the
covalent bond graph is compared with the start's (ASE covalent radii ``r``; ``docs/transip/stability.md``):

- bonds of the start: pairs with ``d_ij < bond_factor (r_i + r_j)`` (default 1.25);
- broken: a start bond with ``d_ij > break_factor (r_i + r_j)`` (default 1.5);
- new bond: a pair not bonded at the start with ``d_ij < form_factor (r_i + r_j)`` (default 1.0);
- nan: a non-finite energy or position;
- drift (reported, never a failure): ``max_t |E_tot(t) - E_tot(0)| / N`` above ``--drift`` meV/atom.

The same rule is applied to the dataset's own frames of each molecule: column "ref" is "split" if
the start is already in pieces, "reacts" if the reference frames change its bond graph (GFN2-xTB
anions that lose an H or a Cl; acetylacetone's proton transfer), else "ok". Exit code 0 if no "ok"
molecule broke and none went NaN (``--strict``: no molecule broke), 1 otherwise, 2 on bad input, so
it can gate a release.

Usage::

    python examples/md_stability.py runs/<run>/best.pt --json md_stability.json   # bundled:g2_xtb, 1 ps
    python examples/md_stability.py best.pt --data bundled:acac_train_300K --per-source 5 --time 100
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
from ase.data import covalent_radii

VERDICTS = ("intact", "drift", "broken", "nan")


@dataclasses.dataclass(frozen=True)
class Limits:
    """Thresholds, as multiples of the covalent radii sum ``r_i + r_j`` (drift in meV/atom)."""

    bond_factor: float = 1.25
    break_factor: float = 1.5
    form_factor: float = 1.0
    drift_mev_per_atom: float = 1.0


# --- the bond graph: pure numpy ------------------------------------------------------------------


def distance_ratios(positions: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """``d_ij / (r_i + r_j)`` for every pair; ``inf`` on the diagonal. Shape: (N, 3), (N,) -> (N, N)."""
    positions = np.asarray(positions, dtype=np.float64)
    radii = covalent_radii[np.asarray(numbers)]
    d = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)  # (N, N)
    ratio = d / (radii[:, None] + radii[None, :])
    np.fill_diagonal(ratio, np.inf)
    return ratio


def bond_graph(positions: np.ndarray, numbers: np.ndarray, limits: Limits = Limits()) -> np.ndarray:
    """Bonds ``(i, j)``, ``i < j``, with ``d_ij < bond_factor (r_i + r_j)``. Shape: (M, 2)."""
    i, j = np.nonzero(np.triu(distance_ratios(positions, numbers) < limits.bond_factor, k=1))
    return np.stack([i, j], axis=1)


def bond_changes(
    positions: np.ndarray, numbers: np.ndarray, bonds: np.ndarray, limits: Limits = Limits()
) -> dict:
    """Compare a frame with the start's bonds (from :func:`bond_graph`).

    Returns:
        ``max_ratio``: the largest ``d / (r_i + r_j)`` over the start bonds; ``broken``: start bonds
        beyond ``break_factor``; ``formed``: other pairs within ``form_factor`` (pairs as lists).
    """
    ratio = distance_ratios(positions, numbers)
    bonded = np.zeros(ratio.shape, dtype=bool)
    bonded[bonds[:, 0], bonds[:, 1]] = bonded[bonds[:, 1], bonds[:, 0]] = True
    along = ratio[bonds[:, 0], bonds[:, 1]]  # (M,)
    i, j = np.nonzero(np.triu((ratio < limits.form_factor) & ~bonded, k=1))
    return {
        "max_ratio": float(along.max()) if len(along) else 0.0,
        "broken": bonds[along > limits.break_factor].tolist(),
        "formed": np.stack([i, j], axis=1).tolist(),
    }


def graph_changes(frames: list[np.ndarray], numbers: np.ndarray, limits: Limits = Limits()) -> bool:
    """Whether any of ``frames`` (positions) breaks or forms a bond relative to the first one."""
    bonds = bond_graph(frames[0], numbers, limits)
    return any((c := bond_changes(p, numbers, bonds, limits))["broken"] or c["formed"] for p in frames[1:])


def count_fragments(bonds: np.ndarray, n_atoms: int) -> int:
    """Connected components of the bond graph (1: one molecule)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n_atoms, n_atoms))
    return int(connected_components(graph, directed=False)[0])


def select_starts(keys: list, per_source: int) -> list[int]:
    """Indices of the first ``per_source`` frames of each distinct key, in order of appearance."""
    seen: dict = {}
    chosen = []
    for k, key in enumerate(keys):
        if seen.setdefault(key, 0) < per_source:
            seen[key] += 1
            chosen.append(k)
    return chosen


# --- one NVE run ---------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised by the observer to end a run early (broken or NaN: the verdict is known)."""


def thermalize(atoms, temperature: float, seed) -> None:
    """Maxwell-Boltzmann momenta, no net momentum or rotation, kinetic energy ``(3N - 6) k_B T / 2``."""
    from ase import units
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.28
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    ZeroRotation(atoms)
    # a 3-atom draw's own kinetic energy varies a lot: give every start the equipartition value
    kinetic, target = atoms.get_kinetic_energy(), 0.5 * max(3 * len(atoms) - 6, 1) * units.kB * temperature
    if kinetic > 0:
        atoms.set_momenta(atoms.get_momenta() * math.sqrt(target / kinetic))


def run_nve(atoms, *, dt: float, steps: int, interval: int, limits: Limits) -> dict:
    """NVE from ``atoms`` (calculator and momenta set); the bond and energy part of a record."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    bonds = bond_graph(atoms.positions, atoms.numbers, limits)
    dyn = VelocityVerlet(atoms, timestep=dt * units.fs)
    rec = {"n_bonds": len(bonds), "max_bond_ratio": 0.0, "broken_bonds": [], "new_bonds": [], "nan": False}
    energies = []

    def observe() -> None:
        e = atoms.get_potential_energy() + atoms.get_kinetic_energy()
        if not (math.isfinite(e) and np.isfinite(atoms.positions).all()):
            rec["nan"] = True
            raise _Stop
        energies.append(e)
        check = bond_changes(atoms.positions, atoms.numbers, bonds, limits)
        rec["max_bond_ratio"] = max(rec["max_bond_ratio"], check["max_ratio"])
        if check["broken"] or check["formed"]:
            rec["broken_bonds"], rec["new_bonds"] = check["broken"], check["formed"]
            raise _Stop

    dyn.attach(observe, interval=interval)  # ASE calls it at step 0 too
    start = time.perf_counter()
    try:
        dyn.run(steps)
    except _Stop:
        pass
    rec.update(steps_run=dyn.nsteps, time_fs=dyn.nsteps * dt, seconds=time.perf_counter() - start)
    e = np.asarray(energies)
    rec["max_drift_mev_per_atom"] = float(np.abs(e - e[0]).max() / len(atoms) * 1000) if len(e) else math.nan
    if rec["nan"]:
        rec["verdict"] = "nan"
    elif rec["broken_bonds"] or rec["new_bonds"]:
        rec["verdict"] = "broken"
    else:
        rec["verdict"] = "drift" if rec["max_drift_mev_per_atom"] > limits.drift_mev_per_atom else "intact"
    return rec


# --- command line --------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    d = Limits()
    p.add_argument("checkpoint", help="a .pt file written by `transip train`")
    p.add_argument(
        "--data", default="bundled:g2_xtb", help="bundled:<name> or a file (default: bundled:g2_xtb)"
    )
    p.add_argument("--per-source", type=int, default=1, help="starting frames per molecule (default: 1)")
    p.add_argument("--max-molecules", type=int, default=0, help="only the first M starts (default 0: all)")
    p.add_argument(
        "--shard",
        default="0/1",
        help="K/N: run only starts K, K+N, K+2N, ... (N processes side by side; same results per start)",
    )
    p.add_argument("--temperature", type=float, default=300.0, help="K (default: 300)")
    p.add_argument("--dt", type=float, default=0.5, help="time step in fs (default: 0.5)")
    p.add_argument("--time", type=float, default=1000.0, help="simulated time in fs (default: 1000)")
    p.add_argument("--interval", type=int, default=10, help="check every INTERVAL steps (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="start k draws its velocities with seed (SEED, k)")
    p.add_argument("--bond-factor", type=float, default=d.bond_factor, help=f"default: {d.bond_factor}")
    p.add_argument("--break-factor", type=float, default=d.break_factor, help=f"default: {d.break_factor}")
    p.add_argument("--form-factor", type=float, default=d.form_factor, help=f"default: {d.form_factor}")
    p.add_argument("--drift", type=float, default=d.drift_mev_per_atom, help="meV/atom (default: 1.0)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="gate on every molecule, also those split or reacting in the reference",
    )
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64", help="default: float64")
    p.add_argument("--json", default=None, help="write the report here (atomically)")
    args = p.parse_args(argv)
    if min(args.per_source, args.interval) < 1 or args.dt <= 0 or args.time < 0 or args.max_molecules < 0:
        p.error("need --per-source >= 1, --interval >= 1, --dt > 0, --time >= 0, --max-molecules >= 0")
    k, _, n = args.shard.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        p.error(f"--shard expects K/N with 0 <= K < N, got {args.shard!r}")
    if not 0 < args.form_factor < args.bond_factor < args.break_factor:
        p.error("need 0 < --form-factor < --bond-factor < --break-factor")
    return args


def read_data(spec: str):
    """``bundled:<name>`` or a path, as ``transip`` reads its ``data`` specs."""
    from transip.data import bundled_dataset, read_dataset

    path = bundled_dataset(spec.removeprefix("bundled:")) if spec.startswith("bundled:") else Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"data not found: {path}")
    return read_dataset(path)


def format_table(records: list[dict]) -> str:
    lines = [
        f"{'molecule':<24} {'charge':>6} {'spin':>4} {'atoms':>5} {'max d/Rcov':>10} {'new':>4} "
        f"{'max|dE| meV/at':>14}  {'ref':<6}  verdict"
    ]
    for r in records:
        name = r["source"] + ("*" if r["unfitted_elements"] else "")
        lines.append(
            f"{name[:24]:<24} {r['charge']:>6} {r['spin']:>4} {r['n_atoms']:>5} {r['max_bond_ratio']:>10.3f} "
            f"{len(r['new_bonds']):>4} {r['max_drift_mev_per_atom']:>14.3f}  "
            f"{_reference(r):<6}  {r['verdict']}"
        )
    if any(r["unfitted_elements"] for r in records):
        lines.append("* has an element the model has no reference energy for (absent from its training data)")
    return "\n".join(lines)


def _reference(r: dict) -> str:
    return "split" if r["start_fragments"] > 1 else "reacts" if r["reference_reacts"] else "ok"


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    args = parse_args(argv)
    from transip.calculator import TransIPCalculator
    from transip.data import molecule_to_atoms

    try:
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
        calc = TransIPCalculator(args.checkpoint, dtype=getattr(torch, args.dtype))
        molecules = list(read_data(args.data))
    except (OSError, KeyError, ValueError, RuntimeError) as e:  # DataError is a ValueError
        print(f"md_stability: error: {e}", file=sys.stderr)
        return 2
    limits = Limits(args.bond_factor, args.break_factor, args.form_factor, args.drift)
    keys = [(m.source, m.charge, m.spin) for m in molecules]
    starts = select_starts(keys, args.per_source)[: args.max_molecules or None]
    shard, shards = (int(v) for v in args.shard.split("/"))
    # start k keeps its velocity seed (SEED, k) whatever the sharding
    mine = [(k, index) for k, index in enumerate(starts) if k % shards == shard]
    steps = round(args.time / args.dt)
    refs = calc.model.element_energies.detach().cpu().numpy()
    records = []
    for k, index in _progress(mine):
        mol = molecules[index]
        atoms = molecule_to_atoms(mol)
        same = [molecules[i].positions for i in range(index, len(keys)) if keys[i] == keys[index]]
        rec = {
            "index": index,
            "source": mol.source,
            "formula": atoms.get_chemical_formula(),
            "charge": mol.charge,
            "spin": mol.spin,
            "n_atoms": len(atoms),
            "unfitted_elements": sorted({int(z) for z in mol.numbers if refs.any() and refs[z] == 0}),
            "reference_frames": len(same),
            "start_fragments": count_fragments(bond_graph(mol.positions, mol.numbers, limits), len(atoms)),
            "reference_reacts": graph_changes(same, mol.numbers, limits),
        }
        rec["reference_stable"] = rec["start_fragments"] == 1 and not rec["reference_reacts"]
        atoms.calc = calc
        thermalize(atoms, args.temperature, (args.seed, k))
        rec.update(run_nve(atoms, dt=args.dt, steps=steps, interval=args.interval, limits=limits))
        records.append(rec)
    counts = {v: sum(r["verdict"] == v for r in records) for v in VERDICTS}
    failed = [
        r["index"]
        for r in records
        if r["verdict"] == "nan" or (r["verdict"] == "broken" and (args.strict or r["reference_stable"]))
    ]
    md_steps, seconds = sum(r["steps_run"] for r in records), sum(r["seconds"] for r in records)
    settings = ("temperature", "dt", "time", "interval", "seed", "per_source", "strict", "dtype", "shard")
    report = {
        "checkpoint": str(args.checkpoint),
        "data": args.data,
        "settings": {key: getattr(args, key) for key in settings} | {"steps": steps, "torch_threads": 1},
        "thresholds": dataclasses.asdict(limits),
        "summary": {
            "molecules": len(records),
            **counts,
            "md_steps": md_steps,
            "seconds": seconds,
            "seconds_per_step": seconds / md_steps if md_steps else None,
        },
        "failed": failed,
        "passed": not failed,
        "molecules": records,
    }
    print(format_table(records))
    print(
        ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + f" of {len(records)} molecules "
        f"({sum(not r['reference_stable'] for r in records)} not stable in the reference); "
        f"{md_steps} MD steps in {seconds:.1f} s; {'PASS' if not failed else f'FAIL ({len(failed)})'}"
    )
    if args.json:
        from transip.cli._common import write_json  # atomic: a temporary file, then a rename

        write_json(args.json, report)
    return 0 if not failed else 1


def _progress(items):
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="molecules", unit="mol", file=sys.stderr, disable=None)


if __name__ == "__main__":
    sys.exit(main())
