"""``transip probe``: how far a trained checkpoint is from rotational symmetry, measured on data."""

from __future__ import annotations

import argparse

from ._common import (
    UsageError,
    add_data_options,
    add_device_options,
    add_overwrite_option,
    check_output,
    open_checkpoint,
    read,
    write_json,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "probe",
        help="equivariance report of a checkpoint on data",
        description="Energy invariance |E(Rx)-E(x)|, force equivariance |F(Rx)-R F(x)| and the latent "
        "error |tau(R,z)-z_R| with the checkpoint's trained tau (identity if it has none), over random "
        "rotations, in float64 by default.",
        allow_abbrev=False,
    )
    p.add_argument("checkpoint", help="a .pt file written by `transip train`")
    p.add_argument("data", help="structures (labels not needed)")
    p.add_argument("--n-rotations", type=int, default=4, help="rotations per molecule (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rotations")
    p.add_argument(
        "--target",
        choices=["node", "graph"],
        default=None,
        help="embedding for the latent error (default: the one the tau was trained on)",
    )
    p.add_argument("--no-forces", action="store_true", help="skip the forces (faster)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    add_overwrite_option(p)
    add_data_options(p)
    add_device_options(p, default_dtype="float64")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from transip.evaluation import equivariance_report, format_equivariance

    if args.n_rotations < 1:
        raise UsageError(f"--n-rotations must be at least 1 (got {args.n_rotations})")
    if args.json:
        check_output(args.json, args, "JSON report")
    trained = open_checkpoint(args)
    config = trained.config
    target = args.target or (config.equivariance.target if config is not None else "node")
    dataset = read(args.data, args, trained)
    report = equivariance_report(
        trained.model,
        dataset,
        tau=trained.tau,
        target=target,
        n_rotations=args.n_rotations,
        seed=args.seed,
        dtype=trained.dtype,
        device=trained.device,
        max_atoms=args.max_atoms,
        compute_forces=not args.no_forces,
    )
    print(format_equivariance(report))
    if args.json:
        write_json(args.json, report.as_dict())
        print(f"written: {args.json}")
    return 0
