"""Learned latent equivariance on a toy point-cloud task, against no symmetry handling and augmentation.

Task: a cloud of ``N`` points ``x_i`` in 3D, each with a scalar charge ``q_i``; predict the dipole-like
vector ``y = sum_i q_i (x_i - mean_j x_j)``, which rotates with the cloud (``y(R.x) = R y(x)``).
The training clouds are drawn in one canonical orientation (an anisotropic Gaussian aligned with the
axes); the test clouds are the same kind of cloud, rotated uniformly at random.

The encoder is a plain Transformer over the points (no equivariance built in) whose mean-pooled output
``z`` (B, D) is read out by a linear head to ``y``. It is trained three ways:

- ``none``: on the canonical training clouds only;
- ``augment``: on training clouds rotated by a fresh random rotation every step (TransAug);
- ``latent``: the same rotated clouds and task loss as ``augment``, plus ``lambda_equiv`` (default 5,
  the paper's value) times the normalised latent-equivariance loss of
  :class:`latentequiv.losses.LatentEquivariance` with an :class:`latentequiv.tau.MLPTau`, which asks
  that ``tau(R, f(x)) == f(R.x)``. The task head reads ``z_transformed``, the embedding of the rotated
  cloud, so ``augment`` and ``latent`` see exactly the same supervised data; the only difference is the
  latent term.

Reported per mode, on the rotated test set: the task MSE (per vector component), the relative
equivariance error of the predictions (rotate, predict, compare with the rotated prediction:
``latentequiv.probes.equivariance_error``), and the relative latent-equivariance error
``||tau(R, f(x)) - f(R.x)|| / ||f(R.x)||`` (``latentequiv.probes.latent_equivariance_error``) for a
tau fitted afterwards to the frozen encoder (same budget for every mode), plus, for ``latent``, for
its own jointly trained tau.

Run::

    python examples/latent_equivariance_pointcloud.py --steps 600 --seed 0 [--plot fig.png]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch import nn

from latentequiv import SO3
from latentequiv.losses import LatentEquivariance
from latentequiv.probes import equivariance_error, latent_equivariance_error, vector_action
from latentequiv.tau import MLPTau

N_POINTS = 12
WIDTH = 64
AXIS_SCALES = (2.0, 1.0, 0.5)  # std of the canonical cloud along x, y, z
MODES = ("none", "augment", "latent")


def make_clouds(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` canonical clouds: points (first 3 columns) and charges (last column), ``(n, N, 4)``."""
    points = torch.randn(n, N_POINTS, 3, generator=generator) * torch.tensor(AXIS_SCALES)
    charges = torch.randn(n, N_POINTS, 1, generator=generator)
    return torch.cat([points, charges], dim=-1)


def rotate(g: torch.Tensor, clouds: torch.Tensor) -> torch.Tensor:
    """The input action: rotate the points, keep the charges. ``g`` (B, 3, 3), clouds (B, N, 4)."""
    return torch.cat([SO3.act(g, clouds[..., :3]), clouds[..., 3:]], dim=-1)


def dipole(clouds: torch.Tensor) -> torch.Tensor:
    """The target ``sum_i q_i (x_i - mean x)``, ``(B, 3)``."""
    points, charges = clouds[..., :3], clouds[..., 3:]
    return (charges * (points - points.mean(dim=1, keepdim=True))).sum(dim=1)


class PointEncoder(nn.Module):
    """A plain Transformer over points: ``(B, N, 4) -> (B, D)``, centred but not rotation-aware."""

    def __init__(self, width: int = WIDTH, depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(4, width), nn.GELU(), nn.Linear(width, width))
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        points, charges = clouds[..., :3], clouds[..., 3:]
        tokens = self.embed(torch.cat([points - points.mean(dim=1, keepdim=True), charges], dim=-1))
        return self.norm(self.blocks(tokens)).mean(dim=1)  # (B, D)


class VectorModel(nn.Module):
    """Encoder plus a linear readout of the pooled embedding to a 3-vector."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = PointEncoder()
        self.head = nn.Linear(WIDTH, 3)

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(clouds))


@dataclass(frozen=True)
class Result:
    mode: str
    test_mse: float
    canonical_mse: float
    equivariance_rel: float
    latent_rel_posthoc: float
    latent_rel_own: float | None
    seconds: float
    curve: list[float]


def train(mode: str, train_set: torch.Tensor, steps: int, seed: int, lambda_equiv: float, batch: int = 64):
    """Train one mode; returns the model, the tau trained with it (``latent`` only) and the loss curve."""
    torch.manual_seed(seed)
    model = VectorModel()
    tau = MLPTau(WIDTH, hidden=2 * WIDTH) if mode == "latent" else None
    latent = (
        LatentEquivariance(model.encoder, tau, SO3(), input_action=rotate, normalize=True)
        if tau is not None
        else None
    )
    params = list(model.parameters()) + (list(tau.parameters()) if tau is not None else [])
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed + 1)
    curve = []
    for _ in range(steps):
        x = train_set[torch.randint(len(train_set), (batch,), generator=gen)]
        if mode == "none":
            loss = (model(x) - dipole(x)).pow(2).mean()
        elif mode == "augment":
            g = SO3().sample(batch, generator=gen)
            x_rot = rotate(g, x)
            loss = (model(x_rot) - dipole(x_rot)).pow(2).mean()
        else:
            out = latent(x, generator=gen)  # rotates x by out.g, encodes both views
            task = (model.head(out.z_transformed) - dipole(rotate(out.g, x))).pow(2).mean()
            loss = task + lambda_equiv * out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        curve.append(float(loss.detach()))
    return model, tau, curve


def fit_tau_posthoc(encoder: nn.Module, train_set: torch.Tensor, seed: int, steps: int = 400) -> MLPTau:
    """Fit a fresh MLPTau to a frozen encoder on a bank of (z, R, f(R.x)) training pairs."""
    gen = torch.Generator().manual_seed(seed + 2)
    x = train_set.repeat(2, 1, 1)
    g = SO3().sample(len(x), generator=gen)
    with torch.no_grad():
        z, z_rot = encoder(x), encoder(rotate(g, x))
    torch.manual_seed(seed)
    tau = MLPTau(WIDTH, hidden=2 * WIDTH)
    opt = torch.optim.Adam(tau.parameters(), lr=1e-3)
    for _ in range(steps):
        i = torch.randint(len(x), (256,), generator=gen)
        loss = (tau(g[i], z[i]) - z_rot[i]).pow(2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tau


def evaluate(mode, model, tau, curve, train_set, test_canonical, seed, seconds, posthoc_steps) -> Result:
    model.eval()
    gen = torch.Generator().manual_seed(seed + 3)
    test = rotate(SO3().sample(len(test_canonical), generator=gen), test_canonical)
    with torch.no_grad():
        test_mse = float((model(test) - dipole(test)).pow(2).mean())
        canonical_mse = float((model(test_canonical) - dipole(test_canonical)).pow(2).mean())
    probe = {"group": SO3(), "input_action": rotate, "n_samples": 4, "generator": gen}
    equiv = equivariance_error(model, test, output_action=vector_action, **probe)
    posthoc = latent_equivariance_error(
        model.encoder, fit_tau_posthoc(model.encoder, train_set, seed, posthoc_steps), test, **probe
    )
    own = latent_equivariance_error(model.encoder, tau, test, **probe).rel_mean if tau is not None else None
    return Result(mode, test_mse, canonical_mse, equiv.rel_mean, posthoc.rel_mean, own, seconds, curve)


def print_table(results: list[Result], target_var: float) -> None:
    print(f"target variance per component (rotated test set): {target_var:.3f}")
    header = (
        f"{'mode':<8} {'test MSE':>9} {'canon. MSE':>10} {'equiv err':>9} {'latent err':>10} "
        f"{'own tau':>8} {'time':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        own = f"{r.latent_rel_own:.3f}" if r.latent_rel_own is not None else "-"
        print(
            f"{r.mode:<8} {r.test_mse:>9.4f} {r.canonical_mse:>10.4f} {r.equivariance_rel:>9.3f} "
            f"{r.latent_rel_posthoc:>10.3f} {own:>8} {r.seconds:>5.1f}s"
        )


def plot(results: list[Result], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.5))
    for r in results:
        ax0.plot(torch.tensor(r.curve).unfold(0, 20, 20).mean(1), label=r.mode)
    ax0.set(
        xlabel="step / 20", ylabel="training loss (latent: task + λ latent)", yscale="log", title="training"
    )
    ax0.legend()
    names = [r.mode for r in results]
    ax1.bar(names, [r.test_mse for r in results])
    ax1.set(ylabel="MSE on rotated test clouds", yscale="log", title="test")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps per mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=512, help="number of (canonical) training clouds")
    parser.add_argument("--test-size", type=int, default=512, help="number of (rotated) test clouds")
    parser.add_argument("--posthoc-steps", type=int, default=400, help="steps to fit tau to a frozen encoder")
    parser.add_argument("--lambda-equiv", type=float, default=5.0, help="weight of the latent loss")
    parser.add_argument("--plot", metavar="PATH", help="save a figure (needs matplotlib)")
    args = parser.parse_args(argv)

    gen = torch.Generator().manual_seed(args.seed)
    train_set, test_canonical = make_clouds(args.train_size, gen), make_clouds(args.test_size, gen)
    results = []
    for mode in MODES:
        start = time.perf_counter()
        model, tau, curve = train(mode, train_set, args.steps, args.seed, args.lambda_equiv)
        seconds = time.perf_counter() - start
        results.append(
            evaluate(
                mode, model, tau, curve, train_set, test_canonical, args.seed, seconds, args.posthoc_steps
            )
        )
    target_var = float(dipole(test_canonical).pow(2).mean())  # rotation does not change |y|^2
    print_table(results, target_var)
    if args.plot:
        plot(results, args.plot)
        print(f"figure written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
