"""Accuracy per CPU second: TransIP, TransAug, no symmetry treatment and MACE at equal CPU budgets.

Every run trains on one thread until it has spent ``--budget`` CPU seconds in training steps
(``train.budget_seconds``; validation is not counted), keeps the checkpoint that is best on the
validation split, and is then judged on the test sets, as they are and turned by a fixed random
rotation per structure (MD test frames share the training frames' orientation; a model that has
not learned the symmetry only shows it on the turned copies). MACE runs in the benchmark
environment of ``examples/bench_env.sh`` through ``examples/accuracy_mace.py``.

    python examples/accuracy.py run --datasets ethanol --sizes 450 --models transip,mace --seeds 0,1,2
    python examples/accuracy.py run --variants default,force_rms --budget 300 --jobs 2
    python examples/accuracy.py report                 # tables and curves from the records

Datasets (``examples/paper_experiment.py``'s splits): ``ethanol`` (rMD17; 50 validation frames
split off the training file, the rMD17 test split), ``acac`` (acetylacetone, 300 K training frames;
300 K and 600 K test sets), ``g2_xtb`` (GFN2-xTB, new molecules). A run's training set is a seeded
random subset of ``--sizes`` structures of the pool, the same for every model of that seed (paired
seeds). Hyper-parameters are chosen on the validation split only (``report --on val``).

One JSON record per run goes to ``docs/transip/accuracy/records/`` the moment it finishes, and a
rerun skips runs whose record exists; run directories stay under ``runs/accuracy/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transip.cli._common import write_json  # atomic: a temporary file, then a rename

ROOT = Path(__file__).resolve().parents[1]
# ACCURACY_RECORDS / ACCURACY_WORK move the records and run directories (e.g. for a smoke run)
RECORDS = Path(os.environ.get("ACCURACY_RECORDS", ROOT / "docs" / "transip" / "accuracy" / "records"))
WORK = Path(os.environ.get("ACCURACY_WORK", ROOT / "runs" / "accuracy"))
MACE_PYTHON = Path(os.environ.get("ACCURACY_MACE_PYTHON", ROOT / ".venv-bench" / "bin" / "python"))
ROTATION_SEED = 20240917  # the fixed per-structure rotations of the turned test copies
#: fields of paper_experiment's Plan for the data split (a smoke test caps the sets with max_test
#: and pool_size; the benchmark uses every structure)
PLAN: dict = {}

F_HEAD, F_LOSS = "--loss.head_unit=force_rms", "--loss.force_unit=force_rms"
NB8, NB16 = "--model.neighbour_channels=8", "--model.neighbour_channels=16"
B128, ANG16 = "--data.max_atoms_per_batch=128", "--model.angular_channels=16"
#: The base every variant starts from: the ``transip train`` defaults before the accuracy work
#: (no neighbour or angular features, batches of 256 atoms), so a variant keeps its meaning when
#: the library's defaults change.
BASE = ["--model.neighbour_channels=0", "--model.angular_channels=0", "--data.max_atoms_per_batch=256"]
#: the library's defaults since the accuracy work, spelled out on top of BASE ("nb16+b128+ang16")
DEFAULTS = [NB16, B128, ANG16]
#: TransIP variants: name -> ``--section.key=value`` overrides on top of :data:`BASE` (the ablations
#: of docs/transip/accuracy.md). ``mode`` is set per model. "defaults" is the library's defaults.
VARIANTS: dict[str, list[str]] = {
    "base": [],
    # units: the head's output unit and the force error's divisor (energy RMS by default)
    "force_rms": [F_HEAD, F_LOSS],
    "head_frms": [F_HEAD],
    # architecture
    "nb8": [NB8],
    "head_frms+nb8": [F_HEAD, NB8],
    "force_rms+nb8": [F_HEAD, F_LOSS, NB8],
    # optimisation
    "nb8+ema": [NB8, "--optim.ema_decay=0.999"],
    "nb8+lr1e-3": [NB8, "--optim.lr=1e-3"],
    "nb8+lr1e-2": [NB8, "--optim.lr=1e-2"],
    "nb8+fw50": [NB8, "--loss.force_weight=50"],
    "nb8+sq": [NB8, "--loss.force=squared"],
    "nb8+d128l4": [NB8, "--model.d_model=128", "--model.n_layers=4", "--model.n_heads=4"],
    "nb8+b128": [NB8, "--data.max_atoms_per_batch=128"],
    "nb16": ["--model.neighbour_channels=16"],
    "nb8+rbf64": [NB8, "--model.num_rbf=64"],
    # the latent objective beyond the paper (docs/transip/training.md); TransIP mode only
    "nb8+rep": [NB8, "--equivariance.tau=representation"],
    "nb8+lowrank": [NB8, "--equivariance.tau=hyperlinear", "--equivariance.tau_rank=8"],
    "nb8+aug": [NB8, "--equivariance.augment_task=true"],
    "nb8+cons": [NB8, "--equivariance.consistency_weight=5"],
    # the latent objective's options on the new defaults
    "nb16+b128+ang16+aug": [NB16, B128, ANG16, "--equivariance.augment_task=true"],
    "nb16+b128+ang16+cons": [NB16, B128, ANG16, "--equivariance.consistency_weight=5"],
    "nb8+ang16": [NB8, "--model.angular_channels=16"],
    "nb8+ang8": [NB8, "--model.angular_channels=8"],
    "nb16+b128": [NB16, B128],
    "nb16+b128+ang16": DEFAULTS,
    "nb16+b64": [NB16, "--data.max_atoms_per_batch=64"],
    # generalisation on top of the new defaults (train error is a fifth of the validation error)
    "def+wd0.1": [*DEFAULTS, "--optim.weight_decay=0.1"],
    "def+drop0.1": [*DEFAULTS, "--model.dropout=0.1"],
    "def+rbf16": [*DEFAULTS, "--model.num_rbf=16"],
    "def+fw50": [*DEFAULTS, "--loss.force_weight=50"],
    "def+d64": [*DEFAULTS, "--model.d_model=64"],
    "def": DEFAULTS,  # the same runs as "nb16+b128+ang16", made again beside the variants above
    "def+rbf16+fw50": [*DEFAULTS, "--model.num_rbf=16", "--loss.force_weight=50"],
    "def+lf0.25": [*DEFAULTS, "--equivariance.latent_fraction=0.25"],
}
#: MACE variants: name -> accuracy_mace.py options
MACE_VARIANTS: dict[str, list[str]] = {
    "64x0e": ["--hidden", "64x0e", "--dtype", "float32"],
    "64x0e-f64": ["--hidden", "64x0e", "--dtype", "float64"],  # mace_run_train's default precision
    "128x0e+128x1o": ["--hidden", "128x0e + 128x1o", "--dtype", "float32"],
}
MODES = ("transip", "transaug", "none")


def job_id(dataset: str, size: int, model: str, variant: str, budget: float, seed: int) -> str:
    return f"{dataset}-n{size}-{model}-{variant}-b{budget:g}-s{seed}"


# ----------------------------------------------------------------------------- data


def prepare(dataset: str, size: int, seed: int) -> dict:
    """Files of one (dataset, size, seed): the training subset, validation, tests as-is and turned."""
    if str(ROOT / "examples") not in sys.path:
        sys.path.insert(0, str(ROOT / "examples"))
    import paper_experiment as pe

    from transip.data import read_dataset

    root = WORK / "data"
    base = pe.prepare_data(dataset, pe.Plan(**PLAN), root)
    train = root / f"{dataset}_train_n{size}_s{seed}.extxyz"
    if not train.is_file():
        pool = read_dataset(base["pool"])
        if size > len(pool):
            raise SystemExit(f"{dataset}: {size} training structures asked, the pool has {len(pool)}")
        idx = np.sort(np.random.default_rng(seed).permutation(len(pool))[:size])
        pe._write_atomic([pool[int(i)] for i in idx], train)
    tests = {}
    for i, (name, path) in enumerate(base["tests"].items()):
        turned = root / f"{path.stem}_rotated.extxyz"
        if not turned.is_file():
            pe._write_atomic(list(pe.rotated_copy(read_dataset(path), ROTATION_SEED + 100 * i)), turned)
        tests[name] = path
        tests[f"{name}_rotated"] = turned
    return {"train": train, "val": base["val"], "tests": tests}


# ----------------------------------------------------------------------------- one run


def _errors(report) -> dict:
    """MAE and RMSE of total energies (meV), energy per atom (meV/atom) and force components (meV/Å)."""
    p = report.predictions
    de = (p.energy - p.energy_true) * 1000.0
    out = {
        "n_molecules": int(de.size),
        "energy_mae": float(np.abs(de).mean()),
        "energy_rmse": float(np.sqrt(np.mean(de**2))),
        "energy_per_atom_mae": float(np.abs(de / p.num_atoms).mean()),
    }
    if p.forces is not None and p.forces_true is not None:
        df = (p.forces - p.forces_true) * 1000.0
        out |= {"force_mae": float(np.abs(df).mean()), "force_rmse": float(np.sqrt(np.mean(df**2)))}
    return out


def run_transip(spec: dict) -> dict:
    """Train and test one TransIP run in this process (called through ``one``)."""
    import torch

    from transip.data import read_dataset
    from transip.evaluation import evaluate
    from transip.training import load_config, load_trained, train

    torch.set_num_threads(1)
    run_dir = Path(spec["run_dir"])
    overrides = [
        f"--data.train={spec['train']}",
        f"--data.val={spec['val']}",
        f"--equivariance.mode={spec['model']}",
        "--train.steps=10000000",  # the CPU budget ends the run; the schedule follows the budget
        f"--train.budget_seconds={spec['budget']}",
        f"--train.seed={spec['seed']}",
        "--train.threads=1",
        f"--train.val_every={spec['val_every']}",
        "--train.checkpoint_every=1000000",
        "--train.log_every=100",
        "--eval.equivariance=false",
        "--eval.group_by=none",
        "--logging.progress=false",
        "--logging.tensorboard=false",
        "--logging.plots=false",
        f"--logging.run_dir={run_dir}",
        *([] if spec["variant"] == "defaults" else [*BASE, *VARIANTS[spec["variant"]]]),
        *spec.get("extra", []),
    ]
    config = load_config(None, overrides)
    resume = (run_dir / "last.pt").is_file()
    t0 = time.perf_counter()
    result = train(config, run_dir=run_dir, resume=resume, quiet=True)
    wall = time.perf_counter() - t0
    model, _, cfg = load_trained(run_dir / "best.pt")
    tests = {
        name: _errors(evaluate(model, read_dataset(path), group_by="none", keep_predictions=True))
        for name, path in spec["tests"].items()
    }
    val = _errors(evaluate(model, read_dataset(spec["val"]), group_by="none", keep_predictions=True))
    curve = [
        {
            "cpu_seconds": float(r["cpu_time"]),
            "step": int(r["step"]),
            "val_energy_mae": float(r["energy_mae"]),
            "val_force_mae": float(r["force_mae"]),
        }
        for r in _csv(run_dir / "val.csv")
    ]
    return {
        "settings": {
            "overrides": overrides,
            "model": cfg.model.overrides,
            "threads": 1,
            "allocator": os.environ.get("LD_PRELOAD") or "glibc default",
            "torch": torch.__version__,
        },
        "steps": result.step,
        "best_step": result.final.best_step if result.final else None,
        "cpu_seconds_used": curve[-1]["cpu_seconds"] if curve else None,
        "wall_seconds": wall,
        "curve": curve,
        "val": val,
        "test": tests,
    }


def _csv(path: Path) -> list[dict]:
    import csv

    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_job(job: dict, budget: float, log) -> None:
    """One run in its own process (one thread each, so two can share the machine's two cores)."""
    jid = job_id(job["dataset"], job["size"], job["model"], job["variant"], budget, job["seed"])
    record_path = RECORDS / f"{jid}.json"
    if record_path.is_file():
        return
    data = prepare(job["dataset"], job["size"], job["seed"])
    run_dir = WORK / "runs" / jid
    run_dir.mkdir(parents=True, exist_ok=True)
    # the training subset is evaluated like a test set and filed apart: the generalisation gap
    tests = {k: str(v) for k, v in data["tests"].items()} | {"train": str(data["train"])}
    t0 = time.time()
    if job["model"] == "mace":
        out = run_dir / "mace.json"
        cmd = [
            str(MACE_PYTHON),
            str(ROOT / "examples" / "accuracy_mace.py"),
            "--train",
            str(data["train"]),
            "--val",
            str(data["val"]),
            "--budget-seconds",
            str(budget),
            "--seed",
            str(job["seed"]),
            "--out",
            str(out),
            "--threads",
            "1",
            "--eval-every-seconds",
            str(max(budget / 20, 5)),
            *MACE_VARIANTS[job["variant"]],
        ]
        for name, path in tests.items():
            cmd += ["--test", f"{name}={path}"]
    else:
        out = run_dir / "record.json"
        spec = {
            "train": str(data["train"]),
            "val": str(data["val"]),
            "tests": tests,
            "model": job["model"],
            "variant": job["variant"],
            "budget": budget,
            "seed": job["seed"],
            "run_dir": str(run_dir),
            "val_every": job.get("val_every", 200),
            "out": str(out),
        }
        cmd = [sys.executable, __file__, "one", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with (run_dir / "log.txt").open("a") as logf:
        rc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    if rc != 0:
        log(f"FAILED {jid} (exit {rc}); see {run_dir / 'log.txt'}")
        return
    record = json.loads(out.read_text())
    record["train"] = record["test"].pop("train")
    record |= {
        "id": jid,
        **job,
        "budget_seconds": budget,
        "machine": os.uname().nodename,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "elapsed_seconds": time.time() - t0,
    }
    write_json(record_path, record)
    t = record["test"]
    first = next(iter(t))
    log(
        f"{jid}: val force MAE {record['val'].get('force_mae', float('nan')):.1f}, "
        f"{first} {t[first].get('force_mae', float('nan')):.1f} meV/Å"
    )


def cmd_run(args) -> None:
    jobs = []
    for dataset, size, seed, model in itertools.product(args.datasets, args.sizes, args.seeds, args.models):
        variants = args.mace_variants if model == "mace" else args.variants
        for variant in variants:
            jobs.append({"dataset": dataset, "size": size, "model": model, "variant": variant, "seed": seed})
    todo = [j for j in jobs if not (RECORDS / f"{job_id(**j, budget=args.budget)}.json").is_file()]
    print(f"{len(jobs)} runs, {len(jobs) - len(todo)} recorded, {len(todo)} to go (budget {args.budget:g} s)")
    # the data files are written once, before runs start in parallel
    for key in sorted({(j["dataset"], j["size"], j["seed"]) for j in todo}):
        prepare(*key)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda j: run_job(j, args.budget, lambda m: print(m, flush=True)), todo))


# ----------------------------------------------------------------------------- report


def load_records(budget: float | None = None) -> list[dict]:
    records = [json.loads(p.read_text()) for p in sorted(RECORDS.glob("*.json"))]
    records = [r for r in records if "id" in r]  # a file without an id marks a run to skip, not a result
    return [r for r in records if budget is None or r["budget_seconds"] == budget]


def _cell(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "—"
    mean, std = float(np.mean(values)), float(np.std(values))
    return f"{fmt.format(mean)} ± {fmt.format(std)}" if len(values) > 1 else fmt.format(mean)


def _label(r: dict) -> str:
    return f"{r['model']} ({r['variant']})"


def accuracy_tables(records: list[dict], on: str) -> str:
    """Per (dataset, size, budget), one row per model/variant: mean ± std over seeds, the seeds counted."""
    lines = []
    groups = sorted({(r["dataset"], r["size"], r["budget_seconds"]) for r in records})
    for dataset, size, budget in groups:
        rs = [r for r in records if (r["dataset"], r["size"], r["budget_seconds"]) == (dataset, size, budget)]
        sets = ["val"] if on == "val" else sorted({k for r in rs for k in r["test"]})
        for name in sets:
            lines += [
                f"\n**{dataset}, {size} training structures, {budget:g} CPU s, {name}** "
                "(energy meV, forces meV/Å; mean ± std over seeds; steps and CPU ms per step of the "
                "training runs; train F MAE: on the run's own training subset, where recorded)\n",
                "| model | seeds | E MAE | E RMSE | F MAE | F RMSE | steps | ms/step | train F MAE |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for label in sorted({_label(r) for r in rs}):
                mine = [r for r in rs if _label(r) == label]
                ms = [r["val"] if name == "val" else r["test"].get(name, {}) for r in mine]
                cells = [
                    _cell([m[k] for m in ms if k in m])
                    for k in ("energy_mae", "energy_rmse", "force_mae", "force_rmse")
                ]
                cells.append(_cell([r["steps"] for r in mine if r.get("steps")], "{:.0f}"))
                timed = [r for r in mine if r.get("steps")]
                cells.append(_cell([1000 * r["cpu_seconds_used"] / r["steps"] for r in timed]))
                fitted = [r["train"] for r in mine if "force_mae" in r.get("train", {})]
                cells.append(_cell([m["force_mae"] for m in fitted]))
                lines.append(f"| {label} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_ratios(records: list[dict], a: str, b: str, on: str, key: str = "force_mae") -> str:
    """Geometric mean over paired seeds of ``key(a) / key(b)`` (labels as in the tables), per group."""
    lines = [
        f"\n**{key}: {a} / {b}** (geometric mean over paired seeds, min–max)\n",
        "| dataset | size | budget | set | pairs | ratio | min–max |",
        "|---|---|---|---|---|---|---|",
    ]
    by = {}
    for r in records:
        by.setdefault((r["dataset"], r["size"], r["budget_seconds"], r["seed"]), {})[_label(r)] = r
    rows = {}
    for (dataset, size, budget, _), runs in sorted(by.items()):
        if a not in runs or b not in runs:
            continue
        sets = ["val"] if on == "val" else list(runs[a]["test"])
        for name in sets:
            ma = runs[a]["val"] if name == "val" else runs[a]["test"][name]
            mb = runs[b]["val"] if name == "val" else runs[b]["test"][name]
            rows.setdefault((dataset, size, budget, name), []).append(ma[key] / mb[key])
    for (dataset, size, budget, name), ratios in rows.items():
        g = float(np.exp(np.mean(np.log(ratios))))
        lines.append(
            f"| {dataset} | {size} | {budget:g} | {name} | {len(ratios)} | {g:.2f} | "
            f"{min(ratios):.2f}–{max(ratios):.2f} |"
        )
    return "\n".join(lines)


def plot_curves(records: list[dict], path: Path) -> Path | None:
    """Validation force MAE against training CPU seconds, one panel per (dataset, size)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    groups = sorted({(r["dataset"], r["size"]) for r in records})
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, (dataset, size) in zip(axes[0], groups, strict=True):
        rs = [r for r in records if (r["dataset"], r["size"]) == (dataset, size)]
        for i, label in enumerate(sorted({_label(r) for r in rs})):
            for j, r in enumerate(r for r in rs if _label(r) == label):
                c = r["curve"]
                ax.plot(
                    [p["cpu_seconds"] for p in c],
                    [p["val_force_mae"] for p in c],
                    color=f"C{i}",
                    alpha=0.8,
                    label=label if j == 0 else None,
                )
        ax.set(
            xlabel="training CPU seconds (one thread)",
            ylabel="validation force MAE (meV/Å)",
            title=f"{dataset}, {size} training structures",
            yscale="log",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cmd_report(args) -> None:
    records = load_records(args.budget)
    if args.datasets:
        records = [r for r in records if r["dataset"] in args.datasets]
    parts = [accuracy_tables(records, args.on)]
    parts += [paired_ratios(records, a, b, args.on) for a, b in args.ratio]
    text = "\n".join(parts)
    print(f"{len(records)} records\n{text}")
    if args.plot:
        print("plot:", plot_curves(records, Path(args.plot)))
    if args.out:
        command = "python examples/accuracy.py " + shlex.join(args.argv)
        header = f"<!-- generated by: {command} -->\n\n{len(records)} runs; regenerate with `{command}`.\n"
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(header + text + "\n")
        os.replace(tmp, out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and test every run of the grid that has no record yet")
    run.add_argument("--datasets", type=lambda s: s.split(","), default=["ethanol"])
    run.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[450])
    run.add_argument("--models", type=lambda s: s.split(","), default=[*MODES, "mace"])
    run.add_argument("--variants", type=lambda s: s.split(","), default=["defaults"])
    run.add_argument("--mace-variants", type=lambda s: s.split(","), default=["64x0e"])
    run.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    run.add_argument("--budget", type=float, default=1200.0, help="training CPU seconds per run")
    run.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    one = sub.add_parser("one", help="internal: one TransIP run from a JSON spec")
    one.add_argument("spec")
    rep = sub.add_parser("report", help="tables (and a plot) from the records")
    rep.add_argument("--budget", type=float, default=None)
    rep.add_argument("--datasets", type=lambda s: s.split(","), default=None)
    rep.add_argument(
        "--on",
        choices=("val", "test"),
        default="val",
        help="val: the validation split (for choosing); test: the test sets (for judging)",
    )
    rep.add_argument(
        "--ratio",
        nargs=2,
        action="append",
        default=[],
        metavar=("A", "B"),
        help="paired ratio of force MAE, labels as in the tables, e.g. 'transip (default)'",
    )
    rep.add_argument("--plot", default="", help="write learning curves to this PNG")
    rep.add_argument("--out", default="", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the command a report names
    if args.command == "one":
        spec = json.loads(args.spec)
        write_json(spec["out"], run_transip(spec))
    elif args.command == "run":
        for v in args.variants:
            if v not in VARIANTS and v != "defaults":
                parser.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
        cmd_run(args)
    else:
        cmd_report(args)


if __name__ == "__main__":
    main()
