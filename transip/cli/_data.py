"""``transip data``: inspect a dataset, fit element references, convert to ``.aselmdb``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ._common import UsageError, add_data_options, add_overwrite_option, check_output, read, write_json

#: The data file of a converted directory (fairchem reads every ``*.aselmdb`` of a directory).
CONVERTED_FILE = "data.aselmdb"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "data", help="inspect, fit references, convert", description="Dataset utilities.", allow_abbrev=False
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    inspect = actions.add_parser(
        "inspect", help="counts, elements, charges/spins, label statistics", allow_abbrev=False
    )
    inspect.add_argument("path", help="structure file (any ASE format, .db, .aselmdb, bundled:<name>)")
    add_data_options(inspect)
    inspect.set_defaults(run=run_inspect)

    refs = actions.add_parser(
        "fit-references", help="least-squares element reference energies", allow_abbrev=False
    )
    refs.add_argument("path", help="labelled structure file")
    refs.add_argument("-o", "--output", help="write the references as JSON")
    add_overwrite_option(refs)
    add_data_options(refs)
    refs.set_defaults(run=run_fit_references)

    convert = actions.add_parser(
        "convert", help="write any readable dataset as .aselmdb (OMol25 layout)", allow_abbrev=False
    )
    convert.add_argument("input", help="structure file")
    convert.add_argument(
        "output",
        help=f"a directory (gets {CONVERTED_FILE} and metadata.npz, the atom counts) or one .aselmdb file",
    )
    add_overwrite_option(convert)
    add_data_options(convert)
    convert.set_defaults(run=run_convert)


def run_inspect(args: argparse.Namespace) -> int:
    from transip.data import dataset_summary

    dataset = read(args.path, args)
    print(f"{args.path}")
    print(dataset_summary(dataset).format())
    return 0


def run_fit_references(args: argparse.Namespace) -> int:
    from ase.data import chemical_symbols

    from transip.data import ElementReferences

    if args.output:
        check_output(args.output, args, "references")
    refs, report = ElementReferences.fit(read(args.path, args))
    energies = refs.energies
    print(
        f"fitted on {report.n} molecules (rank {report.rank} of {len(report.elements)} elements): "
        f"residual MAE {report.mae:.4f} eV, RMSE {report.rmse:.4f} eV"
    )
    for z in report.elements:
        print(f"  {chemical_symbols[z]:>2} (Z={z:3d})  {float(energies[z]):14.6f} eV")
    if args.output:
        write_json(
            args.output, {**refs.to_dict(), "fit": {"mae": report.mae, "rmse": report.rmse, "n": report.n}}
        )
        print(f"written: {args.output}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from transip.data import write_aselmdb

    out = Path(args.output)
    if out.suffix == ".aselmdb":
        check_output(out, args, "converted data")
        dataset = read(args.input, args)
        write_aselmdb(out, dataset, overwrite=args.overwrite)
        print(f"converted {len(dataset)} structures -> {out}")
        return 0
    if not out.is_dir() and (out.exists() or out.suffix):  # a new directory's name has no suffix
        raise UsageError(f"{out}: the output must be a directory or a *.aselmdb file")
    data = out / CONVERTED_FILE
    check_output(data, args, "converted data")
    others = sorted(p.name for p in out.glob("*.aselmdb") if p.name != CONVERTED_FILE) if out.is_dir() else []
    if others:
        raise UsageError(
            f"{out} already holds other .aselmdb files ({', '.join(others)}): they would be read too"
        )
    dataset = read(args.input, args)
    out.mkdir(parents=True, exist_ok=True)
    # A stale metadata.npz must not outlive the file it describes, even if writing fails halfway.
    (out / "metadata.npz").unlink(missing_ok=True)
    natoms = write_aselmdb(data, dataset, overwrite=args.overwrite)
    save_natoms(out / "metadata.npz", natoms)
    print(f"converted {len(dataset)} structures -> {data} (atom counts in {out / 'metadata.npz'})")
    return 0


def save_natoms(path: Path, natoms) -> None:
    """Write ``metadata.npz`` with the ``natoms`` array atomically (temporary file, then rename)."""
    import numpy as np

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")  # savez appends .npz otherwise
    try:
        np.savez(tmp, natoms=np.asarray(natoms, dtype=np.int64))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
