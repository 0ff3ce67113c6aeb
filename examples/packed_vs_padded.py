"""Packed (size-bucketed) attention versus the naive pad-to-largest baseline on a mixed batch.

Run: ``python examples/packed_vs_padded.py [--preset S] [--molecules 16] [--device cpu]``.

Both layouts compute the same function (the script prints the largest energy difference); they
differ in how much padding attention processes. "padded" is ``AttentionLayout.from_ptr(ptr,
growth=inf)``: every molecule padded to the largest one with a key mask. "packed" is the model's
default bucketing (``bucket_growth=1.25``, ``bucket_slack=16``). Each measurement runs in a fresh
subprocess so that peak memory (CPU: peak resident set ``VmHWM``, reset before the call, minus the
resident set before it; CUDA: ``max_memory_allocated``) belongs to that one call alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from transip.data import Batch, Molecule
from transip.model import TransIP, TransIPConfig

LAYOUTS = {"packed": {}, "padded": {"bucket_growth": math.inf}}


def mixed_batch(n_molecules: int, seed: int, low: int = 10, high: int = 200) -> Batch:
    """Random H/C/N/O clusters at roughly molecular density, sizes uniform in ``[low, high]``."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(low, high + 1, n_molecules)
    sizes[:2] = low, high  # the range's ends are always present
    mols = [
        Molecule(rng.normal(size=(n, 3)) * 1.2 * n ** (1 / 3), rng.choice([1, 6, 7, 8], size=n))
        for n in sizes
    ]
    return Batch.from_molecules(mols)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])


def measure(args) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = TransIPConfig.preset(args.preset, dropout=0.0, **LAYOUTS[args.layout])
    model = TransIP(config).to(device)
    batch = mixed_batch(args.molecules, args.seed).to(device)
    training = args.mode == "training"
    model.train(training)

    def step():
        out = model(batch, training=training)
        if training:
            (out.energy.square().mean() + out.forces.square().mean()).backward()
            model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    if device.type == "cuda":
        step()  # CUDA: warm up kernels first; the allocator's peak is reset below
        torch.cuda.reset_peak_memory_stats()
    # ru_maxrss would carry the parent's peak across fork/exec: reset VmHWM, read VmHWM - VmRSS
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rss0 = _status_kb("VmRSS")
    out = step()
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (_status_kb("VmHWM") - rss0) / 1024
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    layout = model.plan(batch)
    return {
        "energy": out.energy.detach().cpu().tolist(),
        "time_ms": 1e3 * statistics.median(times),
        "peak_mb": peak_mb,
        "buckets": len(layout.buckets),
        "pairs": layout.attention_elements,
        "slots": sum(b.index.numel() for b in layout.buckets),
        "atoms": batch.positions.shape[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="S")
    p.add_argument("--molecules", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mode", choices=["inference", "training", "all"], default="all")
    p.add_argument("--layout", choices=sorted(LAYOUTS), help=argparse.SUPPRESS)  # worker mode
    args = p.parse_args()
    if args.layout:
        print(json.dumps(measure(args)))
        return

    batch = mixed_batch(args.molecules, args.seed)
    sizes = batch.num_atoms.tolist()
    print(f"batch: {len(sizes)} molecules, {sum(sizes)} atoms, sizes {min(sizes)}..{max(sizes)}")
    print(f"model: TransIP-{args.preset}, device {args.device}, {args.threads} thread(s)")
    print(f"{'mode':<10} {'layout':<7} {'buckets':>7} {'slots':>6} {'pairs':>10} {'ms':>9} {'peak MB':>8}")
    for mode in ["inference", "training"] if args.mode == "all" else [args.mode]:
        results = {}
        for layout in LAYOUTS:
            cmd = [sys.executable, __file__, "--layout", layout, "--mode", mode]
            for key in ("preset", "molecules", "seed", "device", "threads", "repeats"):
                cmd += [f"--{key}", str(getattr(args, key))]
            r = results[layout] = json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)
            print(
                f"{mode:<10} {layout:<7} {r['buckets']:>7} {r['slots']:>6} {r['pairs']:>10,} "
                f"{r['time_ms']:>9.1f} {r['peak_mb']:>8.1f}"
            )
        diff = np.abs(np.subtract(results["packed"]["energy"], results["padded"]["energy"])).max()
        print(f"{mode:<10} max |E_packed - E_padded| = {diff:.2e} eV")


if __name__ == "__main__":
    main()
