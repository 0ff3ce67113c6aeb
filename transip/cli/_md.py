"""``transip md``: molecular dynamics (NVE or Langevin) with a checkpoint through the ASE calculator."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from transip.data import molecule_to_atoms

from ._common import DTYPES, UsageError, add_data_options, open_checkpoint, read


def add_parser(sub) -> None:
    p = sub.add_parser(
        "md",
        help="run molecular dynamics with a checkpoint (NVE or Langevin)",
        description="Molecular dynamics of one structure (the first frame of STRUCTURE unless --index "
        "says otherwise) with TransIPCalculator; writes a trajectory as extended XYZ.",
        allow_abbrev=False,
    )
    p.add_argument("structure", help="structure file (any ASE format, .db, .aselmdb, bundled:<name>)")
    p.add_argument("checkpoint", help="a .pt file written by `transip train`")
    p.add_argument("-o", "--output", required=True, help="trajectory to write (extxyz)")
    p.add_argument("--ensemble", choices=["nve", "langevin"], default="nve", help="default: nve")
    p.add_argument("--steps", type=int, default=1000, help="MD steps (default: 1000)")
    p.add_argument("--dt", type=float, default=0.5, help="time step in fs (default: 0.5)")
    p.add_argument(
        "--temperature",
        type=float,
        default=300.0,
        help="K; initial Maxwell-Boltzmann velocities and the Langevin bath (default: 300)",
    )
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default: 0.01)")
    p.add_argument("--interval", type=int, default=10, help="write every INTERVAL steps (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the velocities and the thermostat")
    p.add_argument("--device", default="cpu", help="default: cpu")
    p.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="float64",
        help="model precision (default: float64, for energy conservation)",
    )
    add_data_options(p)
    p.set_defaults(run=run, index="0")


def _thermalize(atoms, temperature: float, rng) -> None:
    """Maxwell-Boltzmann momenta (``thermalize_momenta`` in new ASE, its predecessor in older ones)."""
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.28
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)


def run(args: argparse.Namespace) -> int:
    from ase import units
    from ase.constraints import FixCom
    from ase.io import write
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    from transip.calculator import TransIPCalculator

    if args.steps < 0 or args.interval < 1 or args.dt <= 0:
        raise UsageError("need --steps >= 0, --interval >= 1 and --dt > 0")
    trained = open_checkpoint(args)
    atoms = molecule_to_atoms(read(args.structure, args)[0])
    atoms.calc = TransIPCalculator(trained.model, device=trained.device, dtype=trained.dtype)
    rng = np.random.default_rng(args.seed)
    _thermalize(atoms, args.temperature, rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    if args.ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=args.dt * units.fs)
    else:
        atoms.set_constraint(FixCom())  # the thermostat's noise must not move the centre of mass
        dyn = Langevin(
            atoms,
            timestep=args.dt * units.fs,
            temperature_K=args.temperature,
            friction=args.friction / units.fs,
            fixcm=False,
            rng=rng,
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    energies, temperatures = [], []

    def record() -> None:
        e_pot, e_kin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        energies.append(e_pot + e_kin)
        temperatures.append(atoms.get_temperature())
        atoms.info["md_step"] = dyn.nsteps
        atoms.info["time_fs"] = dyn.nsteps * args.dt
        write(tmp, atoms, format="extxyz", append=True)

    try:
        dyn.attach(record, interval=args.interval)
        dyn.run(args.steps)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    e = np.asarray(energies)
    n = len(atoms)
    print(
        f"{args.ensemble.upper()} MD of {atoms.get_chemical_formula()} ({n} atoms): {args.steps} steps of "
        f"{args.dt} fs, {len(e)} frames -> {out}"
    )
    change = np.abs(e - e[0]).max() / n * 1000
    what = "max drift" if args.ensemble == "nve" else "max change (thermostatted, not conserved)"
    print(f"total energy: start {e[0]:.6f} eV, end {e[-1]:.6f} eV, {what} {change:.3f} meV/atom")
    print(f"temperature: mean {np.mean(temperatures):.1f} K")
    return 0
