"""``transip train``: train from a YAML config plus ``--section.key=value`` overrides."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from importlib import resources
from pathlib import Path

from ._common import UsageError

_EPILOG = """\
overrides:
  Any configuration key can be set as --section.key=value, e.g.
    transip train --train.steps=2000 --equivariance.mode=transaug --model.preset=S
  Sections: data, model, loss, equivariance, optim, train, eval, logging
  (see `transip train --print-config` and docs/transip/training.md).

examples:
  transip train                                   # tiny model on the bundled GFN2-xTB set
  transip train my.yaml --train.device=cuda       # a config file, on the GPU
  transip train --resume runs/20250101-120000-transip   # continue a stopped run
  torchrun --nproc_per_node=4 --no-python transip train --train.device=cuda   # 4 GPUs (DDP)

Under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set) training is data-parallel: gloo on CPU,
NCCL on CUDA; data.max_atoms_per_batch is per process. See docs/transip/cluster.md.
"""

#: subsets listed one per line in the final table (more go to metrics.json only)
_MAX_SUBSET_ROWS = 12


def default_config_path() -> Path:
    """The packaged default configuration (``transip/configs/default.yaml``)."""
    return Path(str(resources.files("transip").joinpath("configs", "default.yaml")))


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (YAML config + --section.key=value overrides)",
        description="Train TransIP. With no arguments: a small model on the bundled GFN2-xTB set.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("config", nargs="?", help="YAML config (default: the packaged default.yaml)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    p.add_argument(
        "--overwrite", action="store_true", help="start afresh in a RUN_DIR that holds a run (deletes it)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or info messages")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(run=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    import torch.distributed as dist
    import yaml

    from transip.training import (
        check_config,
        config_to_dict,
        distributed_process_group,
        load_config,
        resolve_init,
        torchrun_env,
        train,
    )

    run_dir = None
    if args.resume and args.overwrite:
        raise UsageError("--resume continues a run and --overwrite replaces it: pass one of them")
    if args.resume:
        run_dir = Path(args.resume)
        if run_dir.name == "last.pt":
            run_dir = run_dir.parent
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"cannot resume: no config.yaml in {run_dir}")
        config = load_config(args.config or saved, args.overrides)
    else:
        config = load_config(args.config or default_config_path(), args.overrides)
    try:
        env = torchrun_env()
    except ValueError as e:
        raise UsageError(str(e)) from None
    config = resolve_init(config)  # a fine-tuning run's model section is its checkpoint's
    if args.print_config:
        if env is None or env.rank == 0:  # once, not once per process
            sys.stdout.write(yaml.safe_dump(config_to_dict(config), sort_keys=False))
        return 0
    check_config(config)  # every configuration error surfaces here, before any data is read
    group = contextlib.nullcontext()
    if env is not None and env.world_size > 1:
        if env.rank != 0:  # one voice: the other ranks report only problems
            logging.getLogger().setLevel(logging.WARNING)
        if not dist.is_initialized():  # a program calling main() may have set the group up already
            group = distributed_process_group(env, config.train.device)
    with group:
        quiet = args.quiet or (env is not None and env.rank != 0)
        resume = bool(args.resume)
        result = train(config, run_dir=run_dir, resume=resume, overwrite=args.overwrite, quiet=quiet)
    if result.interrupted:  # the trainer has said how to resume
        return 130
    if result.final is not None:  # rank 0 of a multi-process run, or a single process
        print(summary(result))
    return 0


def summary(result) -> str:
    """The table printed at the end of a run."""
    from transip.evaluation import format_equivariance, format_table

    final = result.final
    rows = {"val": final.val.overall}
    if final.test is not None:
        rows["test"] = final.test.overall
    lines = [
        f"run: {result.run_dir}  ({result.step} steps, best checkpoint at step {final.best_step})",
        "",
        format_table(rows),
    ]
    subsets = (final.test or final.val).subsets
    if 1 < len(subsets) <= _MAX_SUBSET_ROWS:
        lines += ["", format_table({f"  {k}": v for k, v in subsets.items()})]
    if final.equivariance is not None:
        lines += ["", format_equivariance(final.equivariance)]
    lines += ["", f"metrics: {result.run_dir / 'metrics.json'}"]
    return "\n".join(lines)
