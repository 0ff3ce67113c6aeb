"""``transip md``: molecular dynamics (NVE or Langevin) with a checkpoint through the ASE calculator."""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
import sys
import threading
import time

from ._common import (
    DTYPES,
    UsageError,
    add_data_options,
    add_overwrite_option,
    add_symmetry_option,
    check_output,
    open_checkpoint,
    read,
)


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
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the velocities, the thermostat and --symmetry's rotations",
    )
    add_symmetry_option(p, seed=False)
    p.add_argument("--device", default="cpu", help="default: cpu")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float64",
        help="model precision (default: float64, for energy conservation)",
    )
    add_overwrite_option(p)
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
    import numpy as np
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    from transip.calculator import TransIPCalculator
    from transip.data import molecule_to_atoms

    if args.steps < 0 or args.interval < 1 or args.dt <= 0:
        raise UsageError("need --steps >= 0, --interval >= 1 and --dt > 0")
    out = check_output(args.output, args, "trajectory")
    trained = open_checkpoint(args)
    structures = read(args.structure, args, trained)
    if structures.sizes[0] < 2:
        raise UsageError(
            f"{args.structure}[{args.index}]: a single atom; MD needs at least 2 "
            "(a lone atom has no forces and no temperature)"
        )
    atoms = molecule_to_atoms(structures[0])
    atoms.calc = TransIPCalculator(
        trained.model, device=trained.device, dtype=trained.dtype, symmetry=args.symmetry, seed=args.seed
    )
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
    out.parent.mkdir(parents=True, exist_ok=True)
    energies, temperatures = [], []
    progress = Progress(args.steps)
    interrupted = False
    with out.open("w") as trajectory, progress, _sigterm_as_interrupt():

        def record() -> None:
            e_pot, e_kin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
            energies.append(e_pot + e_kin)
            temperatures.append(atoms.get_temperature())
            atoms.info["md_step"] = dyn.nsteps
            atoms.info["time_fs"] = dyn.nsteps * args.dt
            trajectory.write(_frame(atoms))  # whole frames only: a Ctrl-C or kill never cuts one
            trajectory.flush()

        dyn.attach(record, interval=args.interval)
        dyn.attach(lambda: progress.show(dyn.nsteps, temperatures), interval=1)
        try:
            dyn.run(args.steps)
        except KeyboardInterrupt:
            interrupted = True
    e = np.asarray(energies)
    n = len(atoms)
    done = f"{dyn.nsteps} of {args.steps} steps" if interrupted else f"{args.steps} steps"
    print(
        f"{args.ensemble.upper()} MD of {atoms.get_chemical_formula()} ({n} atoms): {done} of "
        f"{args.dt} fs, {len(e)} frames -> {out}"
    )
    if len(e):
        change = np.abs(e - e[0]).max() / n * 1000
        what = "max drift" if args.ensemble == "nve" else "max change (thermostatted, not conserved)"
        print(f"total energy: start {e[0]:.6f} eV, end {e[-1]:.6f} eV, {what} {change:.3f} meV/atom")
        print(f"temperature: mean {np.mean(temperatures):.1f} K")
    if interrupted:
        print(f"transip md: interrupted at step {dyn.nsteps}; {out} holds the frames so far", file=sys.stderr)
        return 130
    return 0


def _frame(atoms) -> str:
    """One extended-XYZ frame as text."""
    from ase.io import write

    buffer = io.StringIO()
    write(buffer, atoms, format="extxyz")
    return buffer.getvalue()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C (the trajectory is closed after its last whole frame)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Progress:
    """MD progress on stderr: a tqdm bar with ETA on a terminal, else a line every tenth of the run."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self.bar = None
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True)
        self.every = max(1, total // 10)
        self.start = time.perf_counter()

    def show(self, step: int, temperatures: list[float]) -> None:
        if self.bar is not None:
            self.bar.n = step
            if temperatures:
                self.bar.set_postfix_str(f"T={temperatures[-1]:.0f} K", refresh=False)
            self.bar.refresh()
        elif step > 0 and (step % self.every == 0 or step == self.total):
            elapsed = time.perf_counter() - self.start
            eta = elapsed / step * (self.total - step)
            line = f"md: step {step}/{self.total}, {elapsed:.0f} s, ETA {eta:.0f} s"
            print(line, file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
