"""``transip export``: a checkpoint as a self-contained ``.pt2`` file (energy and forces, torch only)."""

from __future__ import annotations

import argparse

from ._common import add_overwrite_option, check_output, open_checkpoint


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a self-contained .pt2 file computing energy and forces (torch.export)",
        description="Export the energy-and-forces pass of CHECKPOINT for molecules of --atoms atoms "
        "(any elements, charge and spin) as a torch.export file; load it with "
        "torch.export.load(FILE).module() and call it as (positions, numbers, charge, spin) -> "
        "(energy, forces). See docs/transip/export.md.",
        allow_abbrev=False,
    )
    p.add_argument("checkpoint", help="a .pt file written by `transip train`")
    p.add_argument("-o", "--output", required=True, help="the .pt2 file to write")
    p.add_argument("--atoms", type=int, required=True, help="number of atoms N of the molecules it takes")
    add_overwrite_option(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda, ...: where the program runs (default: cpu)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="default: float64")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from transip.export import export_model, save_exported

    output = check_output(args.output, args, "exported model")
    trained = open_checkpoint(args)
    program = export_model(trained.model, args.atoms)
    path = save_exported(program, output, checkpoint=str(args.checkpoint))
    print(f"exported {args.checkpoint} for {args.atoms} atoms ({args.dtype}, {trained.device}) -> {path}")
    return 0
