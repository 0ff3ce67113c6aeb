"""Time and peak memory of the passes over a training set: the element-reference fit and the census.

Writes (once) a directory of ``.aselmdb`` files with ``metadata.npz`` holding ``--n`` random
molecules of 5-89 atoms (13 elements, energies near ``-1000 eV`` per unit of ``Z``, forces), then
compares the code at git revision ``--before`` with the working tree on it::

    python examples/benchmark_data_passes.py --n 20000 --before dd0b030

- ``fit``: ``ElementReferences.fit(dataset)`` as at ``--before`` (one pass that builds every
  molecule and a dense ``(M, 119)`` counts matrix) against the streaming fit (default: two passes
  through ``numbers_and_energies``, the second for the exact MAE; and ``mae=False``, one pass).
- ``census``: the elements of a dataset as ``warn_unseen_elements`` collected them at ``--before``
  (every molecule built) against ``numbers_and_energies``.

Times: all variants alternate within each repetition in one process (wall and process CPU time,
medians). Memory: each variant in a fresh subprocess; the peak of traced Python/numpy allocations
(``tracemalloc``) during the call, and the growth of the peak resident set (``VmHWM``, reset
before the call; includes the LMDB pages read, which are the same for all variants).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from transip.data import MAX_Z, Molecule, read_dataset, write_aselmdb

ELEMENTS = np.array([1, 1, 1, 6, 6, 7, 8, 9, 16, 17, 26, 29, 35])


def molecules(n: int, seed: int):
    """``n`` random molecules on a jittered 1.5 Å grid (no atoms closer than ~1.2 Å)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(5)] * 3, indexing="ij"), -1).reshape(-1, 3) * 1.5
    for i in range(n):
        k = int(rng.integers(5, 90))
        pos = grid[rng.permutation(len(grid))[:k]] + rng.normal(0, 0.05, (k, 3))
        z = rng.choice(ELEMENTS, k)
        yield Molecule(
            pos,
            z,
            energy=float(-1000.0 * z.sum() + rng.normal()),
            forces=rng.normal(size=(k, 3)),
            charge=int(rng.integers(-1, 2)),
            source=f"m{seed}-{i}",
        )


def make_dataset(directory: Path, n: int, parts: int = 4) -> Path:
    """The benchmark data (written only when ``directory`` has no ``metadata.npz`` yet)."""
    if (directory / "metadata.npz").is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    sizes = [
        write_aselmdb(directory / f"part{p}.aselmdb", molecules(n // parts, p), overwrite=True)
        for p in range(parts)
    ]
    np.savez(directory / "metadata.npz", natoms=np.concatenate(sizes))
    return directory


def before_references(rev: str):
    """``transip/data/_references.py`` as committed at ``rev``, loaded inside ``transip.data``."""
    source = subprocess.run(
        ["git", "show", f"{rev}:transip/data/_references.py"], capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader("transip.data._references_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "transip.data"
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:transip/data/_references.py", "exec"), module.__dict__)
    return module.ElementReferences


def census_before(dataset) -> list[int]:
    seen: set[int] = set()
    for mol in dataset:  # the loop of warn_unseen_elements before this change
        seen.update(np.unique(mol.numbers).tolist())
    return sorted(seen)


def census_after(dataset) -> list[int]:
    seen = np.zeros(MAX_Z + 1, dtype=bool)
    for numbers, _ in dataset.numbers_and_energies():
        seen[numbers] = True
    return np.flatnonzero(seen).tolist()


def variants(rev: str) -> dict:
    from transip.data import ElementReferences

    old = before_references(rev)
    return {
        "fit_before": lambda ds: old.fit(ds),
        "fit_after": lambda ds: ElementReferences.fit(ds),
        "fit_after_one_pass": lambda ds: ElementReferences.fit(ds, mae=False),
        "census_before": census_before,
        "census_after": census_after,
    }


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def memory_of(name: str, path: str, rev: str) -> dict:
    """Run one variant in this (fresh) process and report its peak memory."""
    import tracemalloc

    fn = variants(rev)[name]
    ds = read_dataset(path)
    ds.sizes  # noqa: B018  (from metadata.npz: not part of any variant)
    rss0 = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    tracemalloc.start()
    fn(ds)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"traced_peak_MB": peak / 2**20, "rss_peak_growth_MB": (_status("VmHWM") - rss0) / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000, help="molecules (default 20000)")
    p.add_argument("--dir", default="/tmp/transip_bench_data", help="where the data is written")
    p.add_argument("--before", required=True, help="git revision of the code to compare against")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: one variant, print its memory
    args = p.parse_args()
    path = str(make_dataset(Path(args.dir) / f"n{args.n}", args.n))
    if args.memory_of:
        print(json.dumps(memory_of(args.memory_of, path, args.before)))
        return

    fns = variants(args.before)
    ds = read_dataset(path)
    ds.sizes  # noqa: B018
    (refs_a, rep_a), (refs_b, rep_b) = fns["fit_before"](ds), fns["fit_after"](ds)
    agree = {
        "max_abs_diff_eV": float((refs_a.energies - refs_b.energies).abs().max()),
        "mae_before_after": (rep_a.mae, rep_b.mae),
        "rmse_before_after": (rep_a.rmse, rep_b.rmse),
        "census_equal": census_before(ds) == census_after(ds),
    }
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn(ds)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    result = {"n": len(ds), "before": args.before, "agreement": agree, "time": {}, "memory": {}}
    for name in fns:
        result["time"][name] = {
            "wall_s": statistics.median(wall[name]),
            "cpu_s": statistics.median(cpu[name]),
        }
    for name in fns:
        out = subprocess.run(
            [sys.executable, __file__, "--n", str(args.n), "--dir", args.dir, "--before", args.before]
            + ["--memory-of", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result["memory"][name] = json.loads(out.strip().splitlines()[-1])
    t, m = result["time"], result["memory"]
    for new, old in (
        ("fit_after", "fit_before"),
        ("fit_after_one_pass", "fit_before"),
        ("census_after", "census_before"),
    ):
        result[f"{new}/{old}"] = {
            "wall": t[new]["wall_s"] / t[old]["wall_s"],
            "cpu": t[new]["cpu_s"] / t[old]["cpu_s"],
            "traced_peak": m[new]["traced_peak_MB"] / m[old]["traced_peak_MB"],
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
