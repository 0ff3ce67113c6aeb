"""Parameter counts of the TransIP presets next to the paper's Table 3.

Run: ``python examples/parameter_counts.py``. Models are built on the meta device, so even L
(~300M parameters) takes no memory.
"""

from __future__ import annotations

import torch

from transip.model import TransIP, TransIPConfig

PAPER = {"tiny": None, "S": 14e6, "M": 85e6, "L": 302e6}


def count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def main() -> None:
    header = f"{'preset':<6} {'d':>5} {'layers':>6} {'heads':>5} {'K':>3} {'tokens':>9} {'blocks':>12}"
    print(header + f" {'head':>8} {'total':>12} {'paper':>6} {'diff':>6}")
    for name, paper in PAPER.items():
        config = TransIPConfig.preset(name)
        with torch.device("meta"):
            model = TransIP(config)
        tokens = count(model.tokens) + count(model.rbf_embed) + count(model.global_bias)
        blocks = count(model.blocks)
        head = count(model.head) + count(model.norm) + count(model.force_head)
        total = count(model)
        assert total == tokens + blocks + head
        ref = f"{paper / 1e6:.0f}M" if paper else "-"
        diff = f"{100 * (total - paper) / paper:+.1f}%" if paper else "-"
        print(
            f"{name:<6} {config.d_model:>5} {config.n_layers:>6} {config.n_heads:>5} {config.num_rbf:>3} "
            f"{tokens:>9,} {blocks:>12,} {head:>8,} {total:>12,} {ref:>6} {diff:>6}"
        )


if __name__ == "__main__":
    main()
