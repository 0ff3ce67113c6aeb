"""CPU time of each tau-network, forward and backward, at several embedding widths.

One thread, ``time.process_time``; the taus are interleaved call by call so that a busy machine
slows them alike; median of ``--repeats`` calls after 3 warm-up calls. The cost of one call is
``tau(g, z)`` on ``z`` of shape ``(B, N, D)`` (``N`` tokens per sample; ``--tokens 0`` for pooled
``(B, D)`` embeddings) plus the backward pass of its sum. Results go to docs/latentequiv/tau-and-losses.md.

    python examples/tau_cost.py --dims 64 256 1024
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from latentequiv.groups import SO3
from latentequiv.representations import Irreps
from latentequiv.tau import HyperLinearTau, MLPTau, RepresentationTau


def taus(dim: int) -> dict[str, torch.nn.Module]:
    return {
        "MLPTau": MLPTau(dim),
        "HyperLinearTau rank 8": HyperLinearTau(dim, rank=8),
        "HyperLinearTau full": HyperLinearTau(dim, rank=None),
        "RepresentationTau": RepresentationTau(Irreps.filling(dim)),
    }


def step(tau: torch.nn.Module, g: torch.Tensor, z: torch.Tensor) -> float:
    tau.zero_grad(set_to_none=True)
    start = time.process_time()
    tau(g, z).sum().backward()
    return time.process_time() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"B={args.batch}, N={args.tokens}, float32, one thread; median ms per forward+backward")
    print(f"{'D':>5}  " + "  ".join(f"{name:>22}" for name in taus(8)))
    for dim in args.dims:
        modules = taus(dim)
        g = SO3().sample(args.batch, generator=torch.Generator().manual_seed(1))
        shape = (args.batch, args.tokens, dim) if args.tokens else (args.batch, dim)
        z = torch.randn(shape, requires_grad=True)
        times: dict[str, list[float]] = {name: [] for name in modules}
        for i in range(args.repeats + 3):
            for name, tau in modules.items():
                seconds = step(tau, g, z)
                if i >= 3:
                    times[name].append(seconds)
        base = statistics.median(times["MLPTau"])
        medians = [statistics.median(t) for t in times.values()]
        cells = [f"{1e3 * m:9.2f} ({m / base:5.2f}x)" for m in medians]
        print(f"{dim:>5}  " + "  ".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
