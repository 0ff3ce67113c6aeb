"""The latent-equivariance term's two forward layouts, timed side by side in one process.

Run (one thread; a few minutes for the default grid on a 2-core CPU)::

    OMP_NUM_THREADS=1 python examples/latent_pass.py --sizes 9 21 60 200 --batches 32x9 --repeats 9

Three training steps of TransIP (random weights, ``MLPTau`` as built by ``transip train``) are
timed on the same structures as ``examples/benchmark.py`` (9 = an ethanol frame, 60 = C60, other
sizes random H/O clusters, ``BxN`` batches):

- ``train``: energy + conservative force loss, no latent term (the reference);
- ``separate``: plus the latent term, the rotated copy embedded by a second pass (``model.embed``);
- ``joint``: plus the latent term, originals and rotated copies in one pass of ``2B`` molecules.

Each step is :func:`transip.training.train_step` (forward, backward, gradient clipping, fused
AdamW) on a :class:`transip.training.TransIPObjective`; the three objectives share one model, one
tau-network and one optimiser. The variants alternate within every repetition, after one warm-up
call each; the table gives medians of wall time, ``time(separate) / time(joint)`` (> 1: the joint
pass is faster) for the medians of wall and process CPU time and for the fastest repetitions
(interference from other jobs only ever adds time), and the latent term's cost over ``train``.
Before timing, each system checks that both layouts give the same loss terms in eval mode (no
dropout).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time

import torch

from latentequiv.groups import SO3
from latentequiv.losses import latent_equivariance_loss
from latentequiv.tau import MLPTau
from transip.data import Batch
from transip.model import TransIP, TransIPConfig
from transip.training import EnergyTerm, ForceTerm, LatentTerm, TransIPObjective, train_step

VARIANTS = ("train", "separate", "joint")


def _benchmark_module():
    """``examples/benchmark.py`` (its structures and machine description), imported by path."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmark.py")
    spec = importlib.util.spec_from_file_location("transip_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def objectives(preset: str, **overrides) -> tuple[dict[str, TransIPObjective], torch.optim.Optimizer]:
    """The three variants around one model and one tau-network, and one fused AdamW for both."""
    model = TransIP(TransIPConfig.preset(preset, **overrides))
    d = model.config.d_model
    tau = MLPTau(d, group_dim=3, hidden=2 * d, depth=2, residual=True)
    task = [EnergyTerm(5.0), ForceTerm(15.0)]
    out = {"train": TransIPObjective(model, task)}
    for layout in ("separate", "joint"):
        latent = LatentTerm(5.0, latent_equivariance_loss)
        out[layout] = TransIPObjective(model, [*task, latent], tau=tau, latent_pass=layout)
    params = [*model.parameters(), *tau.parameters()]
    return out, torch.optim.AdamW(params, lr=1e-5, fused=True)


def labelled(mols) -> Batch:
    batch = Batch.from_molecules(mols)
    batch.energy = torch.zeros(batch.num_molecules, dtype=torch.float64)
    batch.forces = torch.zeros_like(batch.positions)
    return batch


def max_term_difference(objs: dict[str, TransIPObjective], batch: Batch, rotations: torch.Tensor) -> float:
    """Largest relative difference of the loss terms of the two layouts (eval mode: no dropout)."""
    model = objs["joint"].model
    model.eval()
    a, b = (objs[k](batch, rotations).detach() for k in ("separate", "joint"))
    model.train()
    pairs = [(a.total, b.total), *((a[k], b[k]) for k in ("energy", "force", "equivariance"))]
    return max(float((x - y).abs() / y.abs().clamp_min(1e-12)) for x, y in pairs)


def measure(objs, optimizer, batch, rotations, repeats: int, warmup: int = 1) -> dict[str, dict[str, list]]:
    """Wall and process CPU seconds of one training step per variant, alternating variants."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    times = {k: {"wall": [], "cpu": []} for k in objs}
    for rep in range(warmup + repeats):
        for name, obj in objs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            train_step(obj, optimizer, scheduler, batch, rotations if name != "train" else None)
            if rep >= warmup:
                times[name]["wall"].append(time.perf_counter() - start)
                times[name]["cpu"].append(time.process_time() - start_cpu)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="S")
    parser.add_argument("--config", default="{}", help="JSON TransIPConfig overrides of the preset")
    parser.add_argument("--sizes", type=int, nargs="*", default=[9, 21, 60, 200])
    parser.add_argument("--batches", nargs="*", default=["32x9"], help="batches of small molecules, BxN")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", help="write all measurements and the machine description here")
    args = parser.parse_args(argv)
    bench = _benchmark_module()
    info = bench.machine()
    print(json.dumps(info))
    torch.manual_seed(0)
    objs, optimizer = objectives(args.preset, **json.loads(args.config))
    print(
        "| system | atoms | train | separate | joint | separate/joint: wall | CPU | fastest "
        "| latent term: separate | joint |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for name in [str(s) for s in args.sizes] + list(args.batches):
        batch = labelled(bench.system(name))
        rotations = SO3().sample(batch.num_molecules, generator=torch.Generator().manual_seed(0))
        diff = max_term_difference(objs, batch, rotations)
        times = measure(objs, optimizer, batch, rotations, args.repeats)
        wall = {k: statistics.median(v["wall"]) for k, v in times.items()}
        cpu = {k: statistics.median(v["cpu"]) for k, v in times.items()}
        entry = {
            "system": name, "atoms": int(batch.positions.shape[0]), "max_rel_term_diff": diff,
            "median_s": wall, "cpu_median_s": cpu, "times": times,
            "separate/joint": wall["separate"] / wall["joint"],
            "separate/joint cpu": cpu["separate"] / cpu["joint"],
            "separate/joint min": min(times["separate"]["wall"]) / min(times["joint"]["wall"]),
        }  # fmt: skip
        results.append(entry)
        ms = {k: f"{1e3 * v:.0f} ms" for k, v in wall.items()}
        print(
            f"| {name} | {entry['atoms']} | {ms['train']} | {ms['separate']} | {ms['joint']} "
            f"| {entry['separate/joint']:.2f} | {entry['separate/joint cpu']:.2f} "
            f"| {entry['separate/joint min']:.2f} "
            f"| +{1e3 * (wall['separate'] - wall['train']):.0f} ms "
            f"| +{1e3 * (wall['joint'] - wall['train']):.0f} ms |",
            flush=True,
        )
    if args.json:
        bench.write_results(args.json, info, results)


if __name__ == "__main__":
    main()
