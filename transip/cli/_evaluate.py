"""``transip evaluate``: OMol25 metrics of a checkpoint on one or more datasets."""

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
    write_json,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="metrics of a checkpoint on labelled data",
        description="Energy MAE (meV), energy-per-atom MAE (meV/atom), force MAE (meV/Å), force "
        "cosine and the three RMSEs of a checkpoint on each dataset, overall and per subset.",
        allow_abbrev=False,
    )
    p.add_argument("checkpoint", help="a .pt file written by `transip train` (best.pt / last.pt)")
    p.add_argument("data", nargs="+", help="structure files (extxyz, .db, .aselmdb, bundled:<name>)")
    p.add_argument(
        "--group-by",
        choices=["source", "data_id", "none"],
        default="source",
        help="per-subset breakdown (default: source)",
    )
    p.add_argument("--no-forces", action="store_true", help="energies only (faster)")
    p.add_argument("--json", metavar="PATH", help="also write all metrics as JSON")
    add_symmetry_option(p)
    add_overwrite_option(p)
    add_data_options(p)
    add_device_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from transip.evaluation import evaluate, format_table

    if args.json:
        check_output(args.json, args, "JSON report")
    trained = open_checkpoint(args)
    rows, payload, notes = {}, {}, []
    for spec in args.data:
        dataset = read(spec, args, trained)
        report = evaluate(
            trained.model,
            dataset,
            max_atoms=args.max_atoms,
            group_by=args.group_by,
            compute_forces=not args.no_forces,
            device=trained.device,
            dtype=trained.dtype,
            symmetry=args.symmetry,
            seed=args.seed,
        )
        rows[spec] = report.overall
        if args.group_by != "none" and len(report.subsets) > 1:
            rows.update({f"  {k}": v for k, v in report.subsets.items()})
        payload[spec] = report.as_dict()
        if report.uncertainty is not None:
            notes.append(_uncertainty_line(spec, report.uncertainty))
    print(format_table(rows, rmse=True))
    for line in notes:
        print(line)
    if args.json:
        write_json(args.json, {"checkpoint": args.checkpoint, "results": payload})
        print(f"written: {args.json}")
    return 0


def _uncertainty_line(spec: str, u) -> str:
    def r(v) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    line = f"{spec}: rotation spread vs error, Spearman: energy {r(u.energy_spearman)}"
    line += f" ({u.n_structures} structures)"
    if u.force_spread_mean is not None:
        line += (
            f", forces {r(u.force_spearman_atoms)} per atom, {r(u.force_spearman_structures)} per structure"
        )
    return line
