"""The paper's experiment at CPU scale: TransIP vs TransAug vs no symmetry treatment.

Data scaling (three modes x three training-set sizes x several seeds, same model, same step
budget) on the bundled GFN2-xTB set (new molecules and new frames), rMD17 ethanol and
acetylacetone (300 K and 600 K test sets); latent equivariance error vs accuracy over all runs
(the paper's Figure 3); ablations of the latent target (per-atom vs pooled), the latent loss (MSE vs
contrastive) and ``lambda_equiv``. Every run is evaluated on its test sets as they are *and* on
copies in which every structure is turned by a fixed random rotation (the same for every run):
MD test frames share the training frames' orientation, the paper's test data do not.

    python examples/paper_experiment.py                       # the full experiment, ~50 min on 1 core
    python examples/paper_experiment.py --quick --out /tmp/pe # a smoke run (seconds)
    python examples/paper_experiment.py --orient random ...   # every structure in its own orientation

With ``--orient random`` every training, validation and test structure is first turned by its own
fixed Haar-random rotation (positions and forces), as in the paper's OMol25 data, before anything
else; those runs carry ``-orient_random`` in their id and go to ``*_random`` result files.

One JSON record per run is written to ``<out>/records/`` as soon as the run finishes (atomically);
a rerun skips runs whose record exists, so an interrupted experiment resumes where it stopped.
At the end all records are collected into one JSON file, markdown tables and a scatter plot.
Run directories (checkpoints, logs) stay under ``<out>/runs/``. See ``docs/transip/experiment.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from latentequiv.groups import SO3
from transip.data import (
    Batch,
    InMemoryDataset,
    bundled_dataset,
    molecule_to_atoms,
    read_dataset,
    split_dataset,
)
from transip.evaluation import equivariance_report, evaluate
from transip.symmetry import rotate_batch
from transip.training import TrainingConfig, load_trained, merge_config, train

MODES = ("transip", "transaug", "none")
METRICS = (  # key in Metrics.as_dict(), column title, format
    ("energy_mae", "E MAE meV", "{:.1f}"),
    ("energy_per_atom_mae", "E/atom meV", "{:.2f}"),
    ("force_mae", "F MAE meV/Å", "{:.1f}"),
    ("force_cosine", "F cos", "{:.3f}"),
)
#: ablation variants: name -> equivariance section (TransIP mode; ``node``/``mse``/5 is the default)
ABLATIONS = {
    "node-mse-5": {},
    "graph-mse-5": {"target": "graph"},
    "node-contrastive-5": {"loss": "contrastive"},
    "node-mse-0.5": {"weight": 0.5},
    "node-mse-50": {"weight": 50.0},
}
ROTATION_SEED = 20240917  # the fixed rotations of the rotated test copies
ORIENT_SEED = 20241203  # the fixed per-structure rotations of ``--orient random`` (all splits)
ORIENTS = ("as_is", "random")


@dataclass(frozen=True)
class Plan:
    """What to run: datasets, sizes, seeds, the shared model and step budget."""

    datasets: tuple[str, ...] = ("g2_xtb", "ethanol", "acac")
    sizes: tuple[int, ...] = (50, 150, 450)
    seeds: tuple[int, ...] = (0, 1, 2)
    modes: tuple[str, ...] = MODES
    steps: int = 600
    model: dict = field(
        default_factory=lambda: {"preset": "tiny", "d_model": 64, "n_layers": 2, "num_rbf": 16}
    )
    max_atoms_per_batch: int = 128
    val_checks: int = 4  # validations per run (the best one gives best.pt)
    ablation_dataset: str = "ethanol"
    ablation_size: int = 50
    ablations: tuple[str, ...] = tuple(ABLATIONS)
    max_test: int = 0  # 0: whole test sets (quick mode caps them)
    val_size: int = 50
    pool_size: int = 0  # 0: every remaining structure is in the training pool (quick mode caps it)
    lr: float = 3e-3
    orient: str = "as_is"  # "random": every structure turned by its own fixed rotation first


QUICK = Plan(
    datasets=("ethanol",),
    sizes=(8, 16),
    seeds=(0,),
    steps=3,
    model={"preset": "tiny", "d_model": 16, "n_layers": 1, "n_heads": 2, "num_rbf": 4},
    max_atoms_per_batch=64,
    val_checks=1,
    ablation_size=8,
    max_test=12,
    pool_size=16,
    val_size=8,
)


# ----------------------------------------------------------------------------- data


def _write_atomic(molecules, path: Path) -> None:
    import ase.io

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    ase.io.write(tmp, [molecule_to_atoms(m) for m in molecules], format="extxyz")
    os.replace(tmp, path)


def _take(dataset, n: int):
    """The first ``n`` structures of a fixed random order (``n = 0``: all)."""
    if n <= 0 or n >= len(dataset):
        return list(dataset)
    idx = np.sort(np.random.default_rng(0).permutation(len(dataset))[:n])
    return [dataset[int(i)] for i in idx]


def prepare_data(name: str, plan: Plan, root: Path) -> dict:
    """Write the pool/val/test files of one dataset under ``root`` (once) and return their paths.

    - ``g2_xtb``: 20% of the frames by molecule are held out ("new molecules"); of the other
      molecules, 200 frames for the "new frames" test, ``val_size`` frames for validation, the rest
      is the training pool. Split seed 0.
    - ``ethanol`` / ``acac``: ``val_size`` frames of the training file for validation, the rest is
      the pool; the separate rMD17 / 300 K and 600 K test files are the test sets.
    """
    root.mkdir(parents=True, exist_ok=True)
    files = {"pool": root / f"{name}_pool.extxyz", "val": root / f"{name}_val.extxyz"}
    if name == "g2_xtb":
        tests = {
            "new_molecules": root / "g2_xtb_test_molecules.extxyz",
            "new_frames": root / "g2_xtb_test_frames.extxyz",
        }
    elif name == "ethanol":
        tests = {"test": root / "ethanol_test.extxyz"}
    elif name == "acac":
        tests = {"test_300K": root / "acac_test_300K.extxyz", "test_600K": root / "acac_test_600K.extxyz"}
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from g2_xtb, ethanol, acac")
    paths = {**files, **{f"test:{k}": v for k, v in tests.items()}}
    if all(p.is_file() for p in paths.values()):
        return {"pool": files["pool"], "val": files["val"], "tests": tests}
    if name == "g2_xtb":
        full = read_dataset(bundled_dataset("g2_xtb"))
        seen, unseen = split_dataset(full, [0.8, 0.2], seed=0, by="source")
        n_frames = min(200, len(seen) // 4) if plan.max_test == 0 else plan.max_test
        test_frames, val, pool = split_dataset(
            seen, [n_frames, plan.val_size, len(seen) - n_frames - plan.val_size], seed=0
        )
        parts = {
            "pool": _take(pool, plan.pool_size),
            "val": list(val),
            "test:new_molecules": _take(unseen, plan.max_test),
            "test:new_frames": list(test_frames),
        }
    else:
        train_name = "ethanol_train" if name == "ethanol" else "acac_train_300K"
        full = read_dataset(bundled_dataset(train_name))
        val, pool = split_dataset(full, [plan.val_size, len(full) - plan.val_size], seed=0)
        parts = {"pool": _take(pool, plan.pool_size), "val": list(val)}
        test_names = (
            {"test": "ethanol_test"}
            if name == "ethanol"
            else {"test_300K": "acac_test_300K", "test_600K": "acac_test_600K"}
        )
        for key, bundled in test_names.items():
            parts[f"test:{key}"] = _take(read_dataset(bundled_dataset(bundled)), plan.max_test)
    for key, molecules in parts.items():
        _write_atomic(molecules, paths[key])
    return {"pool": files["pool"], "val": files["val"], "tests": tests}


def rotated_copy(dataset, seed: int) -> InMemoryDataset:
    """Every structure turned by its own Haar-random rotation (fixed by ``seed``), forces with it."""
    molecules = list(dataset)
    generator = torch.Generator().manual_seed(seed)
    rotations = SO3().sample(len(molecules), generator=generator, dtype=torch.float64)
    batch = Batch.from_molecules(molecules, dtype=torch.float64)
    return InMemoryDataset(rotate_batch(batch, rotations).to_molecules())


def prepare_oriented_data(name: str, plan: Plan, root: Path) -> dict:
    """The files of :func:`prepare_data`, each structure turned by its own fixed random rotation.

    The as-is files are written under ``root / "as_is"`` first (the same split as the main
    experiment); the turned copies go under ``root / "random"``. Every file has its own rotation
    seed, so no two structures share a rotation and the test copies' later rotations are unrelated.
    """
    plain = prepare_data(name, plan, root / "as_is")
    target = root / "random"
    target.mkdir(parents=True, exist_ok=True)
    sources = {
        "pool": plain["pool"],
        "val": plain["val"],
        **{f"test:{k}": v for k, v in plain["tests"].items()},
    }
    out = {key: target / src.name for key, src in sources.items()}
    if not all(p.is_file() for p in out.values()):
        for i, (key, src) in enumerate(sources.items()):
            _write_atomic(list(rotated_copy(read_dataset(src), ORIENT_SEED + 1000 * i)), out[key])
    return {
        "pool": out["pool"],
        "val": out["val"],
        "tests": {k: out[f"test:{k}"] for k in plain["tests"]},
    }


# ----------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Job:
    """One training run."""

    group: str  # "scaling" or "ablation"
    dataset: str
    mode: str
    size: int
    seed: int
    variant: str = "node-mse-5"
    orient: str = "as_is"

    @property
    def id(self) -> str:
        tail = f"-{self.variant}" if self.group == "ablation" else ""
        tail += f"-orient_{self.orient}" if self.orient != "as_is" else ""
        return f"{self.group}-{self.dataset}-{self.mode}-n{self.size}-s{self.seed}{tail}"


def jobs(plan: Plan) -> list[Job]:
    """Every run of the plan, scaling first; the ablations' default variant reuses a scaling run."""
    out = []
    for s in plan.seeds:  # seed-major: a stopped experiment has every setting at fewer seeds
        scaling = [
            Job("scaling", d, m, n, s, orient=plan.orient)
            for d in plan.datasets
            for n in plan.sizes
            for m in plan.modes
        ]
        have = {(j.dataset, j.mode, j.size) for j in scaling}
        out += scaling
        for variant in plan.ablations:
            if variant == "node-mse-5" and (plan.ablation_dataset, "transip", plan.ablation_size) in have:
                continue
            out.append(
                Job(
                    "ablation",
                    plan.ablation_dataset,
                    "transip",
                    plan.ablation_size,
                    s,
                    variant,
                    orient=plan.orient,
                )
            )
    return out


def run_config(job: Job, plan: Plan, data: dict, run_dir: Path) -> TrainingConfig:
    """The training configuration of one run (everything not named is the library's default)."""
    val_every = max(1, plan.steps // plan.val_checks)
    nested = {
        "data": {
            "train": str(data["pool"]),
            "val": str(data["val"]),
            "max_train": job.size,
            "max_atoms_per_batch": plan.max_atoms_per_batch,
        },
        "model": dict(plan.model),
        "equivariance": {"mode": job.mode, **ABLATIONS[job.variant]},
        "optim": {"lr": plan.lr},
        "train": {
            "steps": plan.steps,
            "seed": job.seed,
            "threads": 1,
            "val_every": val_every,
            "checkpoint_every": plan.steps,
            "log_every": max(1, min(10, plan.steps)),
        },
        "eval": {"equivariance": False, "group_by": "none"},
        "logging": {"run_dir": str(run_dir), "progress": False, "tensorboard": False, "plots": False},
    }
    return merge_config(TrainingConfig(), nested, f"paper_experiment job {job.id}")


def _metrics(report) -> dict:
    return {k: report.overall.as_dict()[k] for k, _, _ in METRICS}


def run_job(job: Job, plan: Plan, out: Path, data: dict, tests: dict) -> dict:
    """Train one run, evaluate its best checkpoint on every test set as-is and rotated, return the record."""
    run_dir = out / "runs" / job.id
    config = run_config(job, plan, data, run_dir)
    resume = (run_dir / "last.pt").is_file()
    t0 = time.perf_counter()
    result = train(config, run_dir=run_dir, resume=resume, quiet=True)
    wall = time.perf_counter() - t0
    model, tau, cfg = load_trained(run_dir / "best.pt")
    model.eval()
    record_tests = {}
    for name, (as_is, rotated) in tests.items():
        record_tests[name] = {
            "as_is": _metrics(evaluate(model, as_is, group_by="none")),
            "rotated": _metrics(evaluate(model, rotated, group_by="none")),
        }
    first = next(iter(tests.values()))[0]
    symmetry = equivariance_report(
        model, first, tau=tau, target=cfg.equivariance.target, seed=ROTATION_SEED + 1
    )
    return {
        "id": job.id,
        "group": job.group,
        "dataset": job.dataset,
        "mode": job.mode,
        "size": job.size,
        "seed": job.seed,
        "variant": job.variant,
        "orient": job.orient,
        "equivariance": {
            "target": cfg.equivariance.target,
            "loss": cfg.equivariance.loss,
            "weight": cfg.equivariance.weight,
        },
        "steps": result.step,
        "best_step": result.final.best_step if result.final else None,
        "wall_seconds": wall,
        "val": _metrics(result.final.val) if result.final else None,
        "tests": record_tests,
        "symmetry": symmetry.as_dict(),
    }


def _write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def run_all(plan: Plan, out: Path, *, log=print, report_only: bool = False) -> list[dict]:
    """Run (or resume) every job of the plan; returns the records in plan order.

    With ``report_only`` nothing is trained: the records that exist are returned.
    """
    records_dir = out / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    prepared: dict[str, tuple[dict, dict]] = {}
    records = []
    todo = jobs(plan)
    for k, job in enumerate(todo, 1):
        path = records_dir / f"{job.id}.json"
        if path.is_file():
            records.append(json.loads(path.read_text()))
            continue
        if report_only:
            continue
        if job.dataset not in prepared:
            if plan.orient == "random":
                data = prepare_oriented_data(job.dataset, plan, out / "data")
            else:
                data = prepare_data(job.dataset, plan, out / "data")
            tests = {}
            for i, (name, p) in enumerate(data["tests"].items()):
                ds = read_dataset(p)
                tests[name] = (ds, rotated_copy(ds, ROTATION_SEED + 100 * i))
            prepared[job.dataset] = (data, tests)
        data, tests = prepared[job.dataset]
        record = run_job(job, plan, out, data, tests)
        _write_json(record, path)
        records.append(record)
        first = next(iter(record["tests"].values()))
        log(
            f"[{k}/{len(todo)}] {job.id}: {record['wall_seconds']:.0f} s, "
            f"F MAE as-is {first['as_is']['force_mae']:.1f}, "
            f"rotated {first['rotated']['force_mae']:.1f} meV/Å"
        )
    return records


# ----------------------------------------------------------------------------- summary


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _cell(values: list[float], fmt: str) -> str:
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return "–"
    mean, std = _mean_std(values)
    return f"{fmt.format(mean)} ± {fmt.format(std)}" if len(values) > 1 else fmt.format(mean)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def scaling_tables(records: list[dict], plan: Plan) -> str:
    """One table per dataset and test set: rows size x mode, the four metrics as-is and rotated."""
    out = []
    scaling = [r for r in records if r["group"] == "scaling"]
    for dataset in plan.datasets:
        rows_d = [r for r in scaling if r["dataset"] == dataset]
        if not rows_d:
            continue
        for test in rows_d[0]["tests"]:
            for view in ("as_is", "rotated"):
                header = ["n train", "mode", *(t for _, t, _ in METRICS)]
                rows = []
                for n in plan.sizes:
                    for mode in plan.modes:
                        rs = [r for r in rows_d if r["size"] == n and r["mode"] == mode]
                        if rs:
                            rows.append(
                                [
                                    str(n),
                                    mode,
                                    *(
                                        _cell([r["tests"][test][view][k] for r in rs], f)
                                        for k, _, f in METRICS
                                    ),
                                ]
                            )
                title = (
                    "as they are" if view == "as_is" else "randomly rotated (fixed rotation per structure)"
                )
                out.append(f"#### {dataset}, {test}, test structures {title}\n\n" + _table(header, rows))
    return "\n\n".join(out)


def ratio_table(records: list[dict], plan: Plan, view: str = "rotated") -> str:
    """TransIP error / TransAug error, paired by seed (mean ± std over seeds); < 1: TransIP better.

    For the force cosine the ratio is of ``1 - cos`` (the error), so < 1 is better there too.
    """
    scaling = [r for r in records if r["group"] == "scaling"]
    header = ["dataset", "test", "n train", *(t for _, t, _ in METRICS)]
    rows = []
    for dataset in plan.datasets:
        rows_d = [r for r in scaling if r["dataset"] == dataset]
        if not rows_d:
            continue
        for test in rows_d[0]["tests"]:
            for n in plan.sizes:
                by_seed = {}
                for r in rows_d:
                    if r["size"] == n:
                        by_seed.setdefault(r["seed"], {})[r["mode"]] = r["tests"][test][view]
                pairs = [v for v in by_seed.values() if "transip" in v and "transaug" in v]
                if not pairs:
                    continue
                cells = []
                for k, _, _ in METRICS:

                    def err(m, k=k):
                        return 1.0 - m[k] if k == "force_cosine" else m[k]

                    cells.append(_cell([err(p["transip"]) / err(p["transaug"]) for p in pairs], "{:.2f}"))
                rows.append([dataset, test, str(n), *cells])
    return _table(header, rows)


def ablation_table(records: list[dict], plan: Plan) -> str:
    """The ablation variants on one dataset and size: first test set, as-is and rotated, plus latent error."""
    rows = []
    for variant in plan.ablations:
        eq = ABLATIONS[variant]
        rs = [
            r
            for r in records
            if r["dataset"] == plan.ablation_dataset
            and r["size"] == plan.ablation_size
            and r["mode"] == "transip"
            and r["variant"] == variant
        ]
        if not rs:
            continue
        test = next(iter(rs[0]["tests"]))
        cells = []
        for view in ("as_is", "rotated"):
            cells += [
                _cell([r["tests"][test][view][k] for r in rs], f)
                for k, _, f in METRICS
                if k != "energy_per_atom_mae"
            ]
        cells.append(_cell([r["symmetry"]["latent_rel_mean"] for r in rs], "{:.4f}"))
        cells.append(_cell([r["symmetry"]["force_abs_mean"] for r in rs], "{:.1f}"))
        desc = f"{eq.get('target', 'node')}, {eq.get('loss', 'mse')}, λ={eq.get('weight', 5.0):g}"
        rows.append([desc, *cells])
    short = [t for k, t, _ in METRICS if k != "energy_per_atom_mae"]
    header = [
        "target, loss, λ_equiv",
        *short,
        *(f"{t} (rot.)" for t in short),
        "latent rel. err",
        "rot. F err meV/Å",
    ]
    return _table(header, rows)


def symmetry_table(records: list[dict], plan: Plan) -> str:
    """Symmetry errors of the scaling runs on the first test set (float64, one rotation per structure)."""
    scaling = [r for r in records if r["group"] == "scaling"]
    header = ["dataset", "n train", "mode", "latent rel. err", "rot. E err meV", "rot. F err meV/Å"]
    rows = []
    for dataset in plan.datasets:
        for n in plan.sizes:
            for mode in plan.modes:
                rs = [r for r in scaling if r["dataset"] == dataset and r["size"] == n and r["mode"] == mode]
                if rs:
                    s = [r["symmetry"] for r in rs]
                    rows.append(
                        [
                            dataset,
                            str(n),
                            mode,
                            _cell([x["latent_rel_mean"] for x in s], "{:.4f}"),
                            _cell([x["energy_abs_mean"] for x in s], "{:.2f}"),
                            _cell([x["force_abs_mean"] for x in s], "{:.1f}"),
                        ]
                    )
    return _table(header, rows)


def _first_test(record: dict, view: str) -> dict:
    return next(iter(record["tests"].values()))[view]


def _error(metrics: dict, key: str) -> float:
    """Lower is better for every column: the force cosine enters as ``1 - cos``."""
    return 1.0 - metrics[key] if key == "force_cosine" else metrics[key]


def _spearman(x: list[float], y: list[float]) -> float:
    rx, ry = (np.argsort(np.argsort(v)).astype(np.float64) for v in (x, y))
    return float(np.corrcoef(rx, ry)[0, 1])


def correlation_table(records: list[dict], plan: Plan, view: str = "rotated") -> str:
    """Spearman rank correlation between the latent error and each error metric, per dataset.

    Over the TransIP runs (scaling and ablations; the latent error with the trained tau), and over
    all runs (the baselines' latent error is with the identity: how much their embeddings move).
    """
    header = ["dataset", "runs", "n", *(t if k != "force_cosine" else "1 − F cos" for k, t, _ in METRICS)]
    rows = []
    for dataset in plan.datasets:
        for label, keep in (("TransIP", lambda r: r["mode"] == "transip"), ("all modes", lambda r: True)):
            rs = [r for r in records if r["dataset"] == dataset and keep(r)]
            if len(rs) < 3:
                continue
            x = [r["symmetry"]["latent_rel_mean"] for r in rs]
            cells = [
                f"{_spearman(x, [_error(_first_test(r, view), k) for r in rs]):+.2f}" for k, _, _ in METRICS
            ]
            rows.append([dataset, label, str(len(rs)), *cells])
    return _table(header, rows)


def plot_latent_vs_accuracy(records: list[dict], path: Path, view: str = "rotated") -> Path | None:
    """The paper's Figure 3 for our runs: each error metric vs the latent error, one point per run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    colours = {"transip": "tab:blue", "transaug": "tab:orange", "none": "tab:grey"}
    markers = {"g2_xtb": "o", "ethanol": "s", "acac": "^"}
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    for ax, (key, title, _) in zip(axes.flat, METRICS, strict=True):
        for r in records:
            x, y = r["symmetry"]["latent_rel_mean"], _error(_first_test(r, view), key)
            face = colours[r["mode"]] if r["group"] == "scaling" else "none"
            ax.scatter(
                x, y, marker=markers.get(r["dataset"], "x"), c=face, edgecolors=colours[r["mode"]], s=24
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("latent relative equivariance error (first test set, float64)")
        ax.set_ylabel("1 − force cosine" if key == "force_cosine" else title)
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=m) for m, c in colours.items()]
    handles += [
        plt.Line2D([], [], ls="", marker=mk, color="k", mfc="none", label=d) for d, mk in markers.items()
    ]
    axes[0, 0].legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle(
        f"Latent equivariance error vs accuracy, first test set {'as is' if view == 'as_is' else 'rotated'}"
        "\n(TransIP: trained tau; TransAug/none: identity; hollow: ablation runs)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def summarise(records: list[dict], plan: Plan) -> str:
    """All markdown tables (headed by the orientation when it is not the data's own)."""
    head = (
        []
        if plan.orient == "as_is"
        else [
            "## Randomly oriented data: every training, validation and test structure turned by its "
            "own fixed rotation first (``--orient random``)"
        ]
    )
    return "\n\n".join(
        [
            *head,
            "### TransIP / TransAug error ratio, rotated test structures "
            "(paired by seed; < 1: TransIP better)\n\n" + ratio_table(records, plan, "rotated"),
            "### TransIP / TransAug error ratio, test structures as they are\n\n"
            + ratio_table(records, plan, "as_is"),
            "### Data scaling: mean ± std over seeds\n\n" + scaling_tables(records, plan),
            "### Symmetry errors on the first test set\n\n" + symmetry_table(records, plan),
            "### Rank correlation of the latent error with each error metric "
            "(first test set, rotated; Spearman)\n\n" + correlation_table(records, plan),
            *(
                [
                    f"### Ablations ({plan.ablation_dataset}, {plan.ablation_size} training structures, "
                    "TransIP)\n\n" + ablation_table(records, plan)
                ]
                if plan.ablations
                else []
            ),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out", type=Path, default=Path("/tmp/paper_runs"), help="scratch directory (runs, records, data)"
    )
    p.add_argument("--results", type=Path, help="the collected JSON (default <out>/experiment_results.json)")
    p.add_argument("--tables", type=Path, help="the markdown tables (default <out>/experiment_tables.md)")
    p.add_argument(
        "--figure", type=Path, help="the scatter plot (default <out>/experiment_latent_vs_accuracy.png)"
    )
    p.add_argument(
        "--quick", action="store_true", help="a seconds-long smoke run (tiny data, model and budget)"
    )
    p.add_argument("--datasets", nargs="+", choices=("g2_xtb", "ethanol", "acac"))
    p.add_argument("--sizes", nargs="+", type=int)
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--modes", nargs="+", choices=MODES)
    p.add_argument("--steps", type=int)
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument(
        "--orient",
        choices=ORIENTS,
        default="as_is",
        help="random: turn every training, validation and test structure by its own fixed rotation "
        "first (run ids get -orient_random; default output names get _random)",
    )
    p.add_argument("--report-only", action="store_true", help="train nothing; tabulate the existing records")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    plan = QUICK if args.quick else Plan()
    overrides = {
        "datasets": tuple(args.datasets) if args.datasets else None,
        "sizes": tuple(args.sizes) if args.sizes else None,
        "seeds": tuple(args.seeds) if args.seeds else None,
        "modes": tuple(args.modes) if args.modes else None,
        "steps": args.steps,
        "ablations": () if args.no_ablations else None,
        "orient": args.orient,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    records = run_all(plan, args.out, log=lambda s: print(s, flush=True), report_only=args.report_only)
    tables = summarise(records, plan)
    print(tables)
    meta = {
        "command": " ".join(
            ["python examples/paper_experiment.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "plan": {k: (list(v) if isinstance(v, tuple) else v) for k, v in plan.__dict__.items()},
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {os.cpu_count()} CPUs, 1 thread",
        "date": time.strftime("%Y-%m-%d"),
        "rotation_seed": ROTATION_SEED,
        "orient": plan.orient,
        "orient_seed": ORIENT_SEED if plan.orient == "random" else None,
        "total_train_seconds": sum(r["wall_seconds"] for r in records),
    }
    suffix = "" if plan.orient == "as_is" else f"_{plan.orient}"
    _write_json(
        {"meta": meta, "runs": records}, args.results or args.out / f"experiment_results{suffix}.json"
    )
    tables_path = args.tables or args.out / f"experiment_tables{suffix}.md"
    tables_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tables_path.with_name(f".{tables_path.name}.tmp-{os.getpid()}")
    tmp.write_text(tables + "\n")
    os.replace(tmp, tables_path)
    plot_latent_vs_accuracy(records, args.figure or args.out / f"experiment_latent_vs_accuracy{suffix}.png")
    print(f"{len(records)} runs; this invocation took {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
