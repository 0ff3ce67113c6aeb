"""The latent recipe on a point-cloud classifier trained in one orientation and tested rotated.

Task: four kinds of point cloud (Gaussian, clusters at the corners of a cube, ellipsoid shell,
two blobs), all with the
same per-axis variances (scales 2, 1.2, 0.6 times a random factor), so the class is in the shape of
the distribution, not in its covariance. Training clouds are drawn in that one canonical orientation;
test clouds are drawn the same way and rotated uniformly at random (the target is invariant).
Validation clouds are drawn the same way from a generator of their own (never the test clouds) and
rotated by rotations of their own; settings are chosen on them only (``--select``).

The encoder is a plain Transformer over points (no symmetry built in), mean-pooled to ``z`` (B, D),
read out by a linear head. Methods, all with the same optimiser, steps and batch:

- ``plain``: cross-entropy on the canonical clouds;
- ``aug``: cross-entropy on clouds rotated by a fresh random rotation every step;
- ``latent``: the README's old five lines: ``out = LatentEquivariance(encoder, MLPTau(D), SO3())(x)``,
  loss ``CE(head(out.z), y) + w out.loss``: the head reads the *unrotated* view;
- ``latent+aug``: the recipe: the same, but the head reads ``out.z_transformed``, the embedding of the
  rotated copy the latent term already computes. Both latent methods use ``normalize=True`` and the
  weight ``w = --weight`` (default 0.5, chosen by ``--select``), so they differ only in the view the
  head reads;
- ``wrapper``: ``FrameAveraging(encoder)`` (principal-axis frames, 4 encoder calls per cloud), trained
  with cross-entropy on the canonical clouds; exactly invariant;
- ``latent+aug, FA at test``: the ``latent+aug`` model wrapped in ``FrameAveraging`` at inference only
  (no retraining; it composes with the latent objective).

Each (method, seed) run writes its record to ``<out>/records/<method>-s<seed>.json`` as soon as it
ends, and a rerun skips the records that exist; the table of mean +- std over seeds is written to
``<out>/results.md``. One thread; CPU seconds from ``time.process_time``.

``--select`` chooses the steps and the latent weight on the validation clouds only: it trains
``latent+aug`` for every (weight, steps) of ``--grid-weights`` x ``--grid-steps`` and ``aug`` for every
steps, records validation accuracy only (the test clouds are not even drawn) in
``<out>/selection/records/`` and writes the table to ``<out>/selection/results.md``.

    python examples/latent_recipe_pointcloud.py --select --seeds 0 1 2 --out docs/latentequiv/recipe
    python examples/latent_recipe_pointcloud.py --seeds 0 1 2 --out docs/latentequiv/recipe
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from latentequiv import SO3, FrameAveraging, LatentEquivariance, MLPTau
from latentequiv.probes import invariance_error

N_POINTS = 32
WIDTH = 32
CLASSES = ("gaussian", "cube corners", "shell", "two blobs")
AXIS_SCALES = (2.0, 1.2, 0.6)
METHODS = ("plain", "aug", "latent", "latent+aug", "wrapper")
# Chosen by --select on the validation clouds (docs/latentequiv/recipe/selection/results.md).
LAMBDA = 0.5
STEPS = 1600
VALIDATION_SEED = 10_000  # validation clouds of seed s come from Generator(VALIDATION_SEED + s)


def make_clouds(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` canonical clouds ``(n, N, 3)`` of unit-variance shapes stretched along x, y, z, and labels."""
    labels = torch.randint(len(CLASSES), (n,), generator=generator)
    noise = torch.randn(n, N_POINTS, 3, generator=generator)
    gaussian = noise
    shell = noise / noise.norm(dim=-1, keepdim=True) * math.sqrt(3)
    corner = torch.randint(2, (n, N_POINTS, 3), generator=generator) * 2.0 - 1
    corners = (corner + 0.2 * torch.randn(n, N_POINTS, 3, generator=generator)) / math.sqrt(1.04)
    side = torch.randint(2, (n, N_POINTS, 1), generator=generator) * 2.0 - 1
    blobs = torch.cat([side, torch.zeros(n, N_POINTS, 2)], dim=-1) + 0.3 * noise
    blobs = blobs / torch.tensor([math.sqrt(1.09), 0.3, 0.3])
    shapes = torch.stack([gaussian, corners, shell, blobs])  # (4, n, N, 3), unit variance per axis
    points = shapes[labels, torch.arange(n)]
    factor = 0.8 + 0.45 * torch.rand(n, 1, 1, generator=generator)
    return points * torch.tensor(AXIS_SCALES) * factor, labels


class PointEncoder(nn.Module):
    """A plain Transformer over points: ``(B, N, 3) -> (B, D)``, centred but not rotation-aware."""

    def __init__(self, width: int = WIDTH, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(3, width), nn.GELU(), nn.Linear(width, width))
        self.block = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(points - points.mean(dim=1, keepdim=True))
        return self.norm(self.block(tokens)).mean(dim=1)  # (B, D)


class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(WIDTH, len(CLASSES))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(points))


def train(
    method: str, x: torch.Tensor, y: torch.Tensor, *, steps: int, seed: int, weight: float, batch: int = 64
):
    torch.manual_seed(seed)
    encoder = PointEncoder()
    if method == "wrapper":
        encoder = FrameAveraging(encoder)
    model = Classifier(encoder)
    latent = (
        LatentEquivariance(model.encoder, MLPTau(WIDTH), SO3(), normalize=True)
        if method.startswith("latent")
        else None
    )
    params = list(model.parameters()) + (list(latent.tau.parameters()) if latent is not None else [])
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        i = torch.randint(len(x), (batch,), generator=gen)
        xb, yb = x[i], y[i]
        if method in ("plain", "wrapper"):
            loss = F.cross_entropy(model(xb), yb)
        elif method == "aug":
            loss = F.cross_entropy(model(SO3.act(SO3().sample(batch, generator=gen), xb)), yb)
        else:
            out = latent(xb, generator=gen)  # samples R, encodes x and R.x, compares
            z = out.z if method == "latent" else out.z_transformed
            loss = F.cross_entropy(model.head(z), yb) + weight * out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def splits(seed: int, train_size: int, test_size: int, val_size: int, *, test: bool = True) -> dict:
    """``{"train": (x, y), "val": (x, y)[, "test": (x, y)]}`` of seed ``seed``, canonical orientation.

    Training and test clouds come from ``Generator(seed)`` (train first), the validation clouds from
    a generator of their own, ``Generator(VALIDATION_SEED + seed)``, so they are never test clouds.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {"train": make_clouds(train_size, gen)}
    if test:
        out["test"] = make_clouds(test_size, gen)
    out["val"] = make_clouds(val_size, torch.Generator().manual_seed(VALIDATION_SEED + seed))
    return out


def evaluate(model: nn.Module, test: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
    """Accuracy on ``test`` rotated by rotations drawn from ``Generator(seed)``, and in place."""
    gen = torch.Generator().manual_seed(seed)
    rotated = SO3.act(SO3().sample(len(test), generator=gen), test)
    with torch.no_grad():
        start = time.process_time()
        acc_rot = (model(rotated).argmax(-1) == labels).float().mean().item()
        ms = 1e3 * (time.process_time() - start) / len(test) * 1000
        acc_canon = (model(test).argmax(-1) == labels).float().mean().item()
    inv = invariance_error(model, rotated[:256], group=SO3(), n_samples=4, generator=gen)
    return {
        "acc_rotated": acc_rot,
        "acc_canonical": acc_canon,
        "invariance_rel": inv.rel_mean,
        "inference_ms_per_1000": ms,
    }


def _validation(model: nn.Module, val: tuple[torch.Tensor, torch.Tensor], seed: int) -> dict:
    metrics = evaluate(model, *val, VALIDATION_SEED + seed + 3)
    return {"val_acc_rotated": metrics["acc_rotated"], "val_acc_canonical": metrics["acc_canonical"]}


def run(method: str, seed: int, args) -> list[dict]:
    data = splits(seed, args.train_size, args.test_size, args.val_size)
    start = time.process_time()
    model = train(method, *data["train"], steps=args.steps, seed=seed, weight=args.weight)
    seconds = time.process_time() - start
    common = {"seed": seed, "steps": args.steps, "weight": args.weight, "train_cpu_s": seconds}
    records = [
        {"method": method, **common, **evaluate(model, *data["test"], seed + 3)}
        | _validation(model, data["val"], seed)
    ]
    if method == "latent+aug":
        wrapped = Classifier(FrameAveraging(model.encoder))
        wrapped.head = model.head
        records.append(
            {"method": "latent+aug, FA at test", **common}
            | evaluate(wrapped.eval(), *data["test"], seed + 3)
            | _validation(wrapped, data["val"], seed)
        )
    return records


def select_run(method: str, seed: int, weight: float, steps: int, args) -> list[dict]:
    """One run of the selection grid, scored on the validation clouds only (no test clouds drawn)."""
    data = splits(seed, args.train_size, 0, args.val_size, test=False)
    start = time.process_time()
    model = train(method, *data["train"], steps=steps, seed=seed, weight=weight)
    seconds = time.process_time() - start
    common = {"method": method, "seed": seed, "steps": steps, "weight": weight, "train_cpu_s": seconds}
    return [common | _validation(model, data["val"], seed)]


def selection_grid(args) -> list[tuple[str, float, int]]:
    """``(method, weight, steps)`` of the selection: latent+aug on weights x steps, aug on steps."""
    grid = [("latent+aug", w, n) for n in args.grid_steps for w in args.grid_weights]
    return grid + [("aug", 0.0, n) for n in args.grid_steps]


def selection_table(records: list[dict]) -> str:
    """Validation accuracy (mean +- std over seeds) of every (method, weight, steps) of the grid."""
    keys = list(dict.fromkeys((r["method"], r["weight"], r["steps"]) for r in records))
    lines = [
        "| method | latent weight | steps | seeds | val. rotated acc. | val. canonical acc. | train CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, weight, steps in keys:
        rs = [r for r in records if (r["method"], r["weight"], r["steps"]) == (method, weight, steps)]
        cells = [
            _cell([r["val_acc_rotated"] for r in rs], ".3f"),
            _cell([r["val_acc_canonical"] for r in rs], ".3f"),
            _cell([r["train_cpu_s"] for r in rs], ".1f"),
        ]
        w = f"{weight:g}" if method.startswith("latent") else "-"
        lines.append(f"| {method} | {w} | {steps} | {len(rs)} | " + " | ".join(cells) + " |")
    weight, steps = chosen(records)
    lines += [
        "",
        f"Chosen (highest mean validation rotated accuracy of latent+aug): weight {weight:g}, {steps} steps.",
    ]
    return "\n".join(lines)


def chosen(records: list[dict]) -> tuple[float, int]:
    """The ``(weight, steps)`` of ``latent+aug`` with the highest mean validation rotated accuracy."""
    scores: dict[tuple[float, int], list[float]] = {}
    for r in records:
        if r["method"] == "latent+aug":
            scores.setdefault((r["weight"], r["steps"]), []).append(r["val_acc_rotated"])
    return max(scores, key=lambda key: statistics.fmean(scores[key]))


def _cell(values: list[float], fmt: str) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:{fmt}} ± {std:{fmt}}"


def table(records: list[dict]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in records))
    lines = [
        "| method | seeds | rotated acc. | canonical acc. | invariance err. | train CPU s "
        "| infer. ms / 1000 | val. rotated acc. |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        rs = [r for r in records if r["method"] == m]
        cells = [
            _cell([r["acc_rotated"] for r in rs], ".3f"),
            _cell([r["acc_canonical"] for r in rs], ".3f"),
            _cell([r["invariance_rel"] for r in rs], ".2g"),
            _cell([r["train_cpu_s"] for r in rs], ".1f"),
            _cell([r["inference_ms_per_1000"] for r in rs], ".0f"),
            _cell([r["val_acc_rotated"] for r in rs], ".3f"),
        ]
        lines.append(f"| {m} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--weight", type=float, default=LAMBDA, help="weight of the latent loss")
    parser.add_argument("--train-size", type=int, default=1024)
    parser.add_argument("--test-size", type=int, default=1024)
    parser.add_argument("--val-size", type=int, default=1024)
    parser.add_argument("--select", action="store_true", help="run the selection grid (validation only)")
    parser.add_argument("--grid-weights", type=float, nargs="+", default=[0.5, 1.0, 5.0])
    parser.add_argument("--grid-steps", type=int, nargs="+", default=[800, 1600])
    parser.add_argument("--out", type=Path, default=Path("runs/latent_recipe"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = args.out / "selection" if args.select else args.out
    records_dir = out / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    if args.select:
        jobs = [
            (f"{m}-w{w:g}-n{n}-s{seed}", lambda m=m, w=w, n=n, seed=seed: select_run(m, seed, w, n, args))
            for seed in args.seeds
            for m, w, n in selection_grid(args)
        ]
    else:
        jobs = [
            (f"{m}-s{seed}", lambda m=m, seed=seed: run(m, seed, args))
            for seed in args.seeds
            for m in args.methods
        ]
    records: list[dict] = []
    for name, job in jobs:
        path = records_dir / f"{name}.json"
        if path.exists():
            records += json.loads(path.read_text())
            continue
        new = job()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(new, indent=1))
        tmp.replace(path)
        records += new
        shown = ", ".join(f"{k} {v:.4g}" for k, v in new[0].items() if k not in ("method", "seed"))
        print(f"{name}: {shown}", flush=True)
    text = (selection_table if args.select else table)(records)
    (out / "results.md").write_text(text + "\n")
    print(text)
    return records


if __name__ == "__main__":
    main()
