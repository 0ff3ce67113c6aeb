"""``transip predict``: predicted energies and forces for any structure file, as extended XYZ."""

from __future__ import annotations

import argparse

from ._common import (
    add_data_options,
    add_device_options,
    add_overwrite_option,
    add_symmetry_option,
    check_output,
    open_checkpoint,
    read,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="write predicted energies and forces as extended XYZ",
        description="Predict every structure of INPUT and write OUTPUT (extxyz): the prediction as "
        "energy/forces, the input's labels (if any) as ref_energy/ref_forces, and with --symmetry "
        "average:K or frames the rotation spread as energy_spread/force_spread.",
        allow_abbrev=False,
    )
    p.add_argument("checkpoint", help="a .pt file written by `transip train`")
    p.add_argument("input", help="structures (extxyz or any ASE format, .db, .aselmdb, bundled:<name>)")
    p.add_argument("-o", "--output", required=True, help="the extxyz file to write")
    p.add_argument("--no-forces", action="store_true", help="energies only")
    add_symmetry_option(p)
    add_overwrite_option(p)
    add_data_options(p)
    add_device_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from transip.evaluation import write_predictions

    check_output(args.output, args, "predictions")
    trained = open_checkpoint(args)
    dataset = read(args.input, args, trained)
    path = write_predictions(
        trained.model,
        dataset,
        args.output,
        compute_forces=not args.no_forces,
        max_atoms=args.max_atoms,
        device=trained.device,
        dtype=trained.dtype,
        symmetry=args.symmetry,
        seed=args.seed,
    )
    print(f"predicted {len(dataset)} structures -> {path}")
    return 0
