"""Side-by-side speed and memory of TransIP, MACE and eSEN, and of TransIP's attention kernels.

Run inside the benchmark environment (``examples/bench_env.sh``: mace-torch pins e3nn 0.4.4; for
eSEN, ``bash examples/bench_env.sh esen``: fairchem-core needs e3nn >= 0.5)::

    python examples/benchmark.py models --quick --json runs/bench.json
    python examples/benchmark.py models --sizes 9 21 60 200 1000 --batches 32x9 32x21 --repeats 5
    python examples/benchmark.py models --models transip-S-ref mace-128x0e mace-128x0e@8 \
        --sizes 60 200 --batches drop200 32xg2 --modes infer train   # MACE for 3 vs 8 elements
    python examples/benchmark.py attention --json runs/attention.json
    python examples/benchmark.py compare --before HEAD~3 --systems 9 200 --modes infer train

``models`` times energy+forces inference (atoms/s) and one training step (energy + force loss,
conservative except for ``esen-sm-direct``, and for TransIP also with the latent-equivariance term)
for every model on the same structures. All models run in one process and alternate (A, B, A, B,
...) within each repetition, so they see the same allocator state and machine load; medians are
reported, with the ratio ``time(other) / time(TransIP)`` (> 1: TransIP faster) three ways: wall
time (``speedup``), process CPU time (``speedup_cpu``, ``time.process_time``) and the computing
thread's user CPU time (``speedup_user``, without the kernel's page-fault work). On a shared
machine the CPU-time ratios are the ones to read: other jobs add wall time, not work. MACE is
built for the elements present in the run's structures (``--mace-elements`` overrides; earlier
versions built it for H C N O F P S Cl whatever the structures held, which costs MACE 1.3-1.8x).
Each model's settings (elements, cutoff, irreps or width, dtype, threads, allocator, torch
version) are printed and kept in the ``--json`` record, which is rewritten after every entry.
Peak memory is measured in a fresh subprocess per (model, system, mode): the increase of the peak
resident set size (``VmHWM``, reset after building the model and data) over the resident size
before the step, on CPU; ``torch.cuda.max_memory_allocated`` on GPU. On a shared machine the
fastest repetition (``min_s``) is also recorded: interference only ever adds time.

Structures (:func:`system`): ``9`` an rMD17 ethanol frame, ``60`` C60, other ``N`` a random H/O
cluster at water's atom density, ``dropN`` an ethanol droplet (intact molecules at liquid
density), ``BxN`` a batch (``32x9``: 32 ethanol frames), ``Bxg2`` B bundled ``g2_xtb`` molecules
of H, C and O (3-14 atoms each).

``attention`` compares ways to run TransIP-S's attention on a mixed batch (16 molecules of 12-186
atoms) and on one 1000-atom molecule: one bucket per molecule, padding to the largest with a key
mask, the model's size buckets, and the buckets with ``fast_attend`` (``examples/fast_attention.py``).

``compare --before REV`` measures a change to TransIP itself: the package as committed at git
revision ``REV`` (exported by ``git archive`` into a temporary directory) against the working tree,
same preset and weights, interleaved in one process, wall and CPU time; ``--compile`` runs the
working tree's blocks through ``torch.compile``. ``optimizer`` times one AdamW step on TransIP's
parameters (default loop, ``foreach``, ``fused``); every training step here uses the fused one.

Weights are random; MACE's and eSEN's neighbour lists are built before timing (not counted for them).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.util
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import transip
from transip.data import Batch, Molecule, bundled_dataset
from transip.symmetry import rotate_batch


# --------------------------------------------------------------------------- structures
def cluster(n: int, seed: int, density: float = 0.1, min_dist: float = 1.0) -> Molecule:
    """A random but physical cluster: H and O (2:1, like water) at ~water atom density (0.1 / Å^3).

    Atoms are drawn uniformly in a sphere of the right volume and rejected when closer than
    ``min_dist`` Å to an accepted atom.
    """
    rng = np.random.default_rng(seed)
    radius = (3 * n / (4 * np.pi * density)) ** (1 / 3)
    pos = np.zeros((0, 3))
    while len(pos) < n:
        p = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p) <= radius and (
            len(pos) == 0 or np.min(np.linalg.norm(pos - p, axis=1)) >= min_dist
        ):
            pos = np.vstack([pos, p])
    numbers = np.where(np.arange(n) % 3 == 0, 8, 1)
    return Molecule(positions=pos, numbers=numbers, source=f"cluster{n}")


def _from_atoms(atoms, source: str) -> Molecule:
    return Molecule(positions=atoms.get_positions(), numbers=atoms.get_atomic_numbers(), source=source)


def droplet(n: int, seed: int = 0, density: float = 0.0103, min_dist: float = 1.6) -> Molecule:
    """A liquid-like ethanol droplet: ``round(n / 9)`` rMD17 ethanol frames (bundled ``ethanol_train``),
    randomly rotated, their centres drawn in a sphere at liquid ethanol's molecule density
    (0.0103 / Å^3, i.e. 0.79 g/cm^3; 0.093 atoms / Å^3) and rejected when any atom comes closer than
    ``min_dist`` Å to an atom of an accepted molecule. Unlike :func:`cluster`, every molecule is
    intact (H, C, O bonded as in ethanol), so neighbour counts are those of an organic liquid.
    """
    import ase.io
    from scipy.spatial.transform import Rotation

    count = max(1, round(n / 9))
    frames = ase.io.read(bundled_dataset("ethanol_train"), f":{count}")
    rng = np.random.default_rng(seed)
    radius = (3 * count / (4 * np.pi * density)) ** (1 / 3)
    placed, numbers = [], []
    for frame in frames:
        local = frame.get_positions() - frame.get_positions().mean(0)
        while True:
            centre = rng.uniform(-radius, radius, 3)
            if np.linalg.norm(centre) > radius:
                continue
            pos = Rotation.random(random_state=rng).apply(local) + centre
            if not placed or np.min(np.linalg.norm(np.vstack(placed)[:, None] - pos, axis=-1)) >= min_dist:
                break
        placed.append(pos)
        numbers.append(frame.get_atomic_numbers())
    return Molecule(positions=np.vstack(placed), numbers=np.concatenate(numbers), source=f"droplet{n}")


def g2_molecules(count: int, seed: int = 0, elements=(1, 6, 8)) -> list[Molecule]:
    """``count`` bundled ``g2_xtb`` molecules made of ``elements`` only (H, C, O: 986 of the 2099),
    drawn without replacement: small organic molecules of 3-14 atoms, mixed sizes in one batch."""
    import ase.io

    frames = [a for a in ase.io.read(bundled_dataset("g2_xtb"), ":") if set(a.numbers) <= set(elements)]
    picks = np.random.default_rng(seed).choice(len(frames), count, replace=False)
    return [_from_atoms(frames[i], "g2_xtb") for i in sorted(picks)]


def system(name: str) -> list[Molecule]:
    """``"9"`` (an rMD17 ethanol frame), ``"60"`` (C60), other ``"N"`` (a cluster), ``"dropN"`` (an
    ethanol droplet of about N atoms), ``"BxN"`` (a batch), ``"Bxg2"`` (B g2_xtb molecules of H, C, O),
    ``"mixed16"`` (16 clusters of 12-186 atoms)."""
    import ase.io
    from ase.build import molecule

    if name == "mixed16":
        return [cluster(n, seed) for seed, n in enumerate(mixed_sizes())]
    if name.startswith("drop"):
        return [droplet(int(name.removeprefix("drop")))]
    count, _, size = name.rpartition("x")
    if size == "g2":
        return g2_molecules(int(count))
    count, size = int(count or 1), int(size)
    if size == 9:
        frames = ase.io.read(bundled_dataset("ethanol_train"), f":{count}")
        return [_from_atoms(a, "ethanol") for a in frames]
    if size == 60:
        return [_from_atoms(molecule("C60"), "C60")] * count
    return [cluster(size, seed) for seed in range(count)]


# --------------------------------------------------------------------------- models
def adamw(params):
    """The optimiser of every training step here: AdamW with the fused kernel.

    (On CPU the default AdamW loops over parameters: 49 ms per step for TransIP-S's 14M parameters
    against 14 ms fused, measured with ``python examples/benchmark.py optimizer``.)
    """
    return torch.optim.AdamW(params, lr=1e-5, fused=True)


def load_revision(rev: str):
    """The ``transip`` package as committed at git revision ``rev``, importable beside the current one.

    ``git archive`` exports the package into a temporary directory as ``transip_<sha>``; its own
    relative imports resolve inside that copy, so old and new models can run in one process.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = ["git", "-C", root]
    sha = subprocess.run([*git, "rev-parse", "--short", rev], capture_output=True, text=True, check=True)
    name = f"transip_{sha.stdout.strip()}"
    if name in sys.modules:
        return sys.modules[name]
    archive = subprocess.run([*git, "archive", rev, "transip"], capture_output=True, check=True).stdout
    target = tempfile.mkdtemp(prefix="transip-rev-")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    os.rename(os.path.join(target, "transip"), os.path.join(target, name))
    sys.path.insert(0, target)
    return importlib.import_module(name)


def _fast_attend():
    """The memory-lean kernel of ``examples/fast_attention.py`` (beside this script, not in the package)."""
    path = Path(__file__).resolve().with_name("fast_attention.py")
    spec = importlib.util.spec_from_file_location("fast_attention", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fast_attend


class TransIPRunner:
    """TransIP with random weights; ``attention`` picks the kernel behind every layer's ``attend``.

    ``package`` is the ``transip`` package to take the model from (another revision's copy from
    :func:`load_revision` for before/after comparisons).
    """

    def __init__(self, preset: str, attention: str = "fast", package=transip, **overrides):
        model = importlib.import_module(package.__name__ + ".model")
        self.model = model.TransIP(model.TransIPConfig.preset(preset, **overrides))
        self.block_module = importlib.import_module(package.__name__ + ".model._block")
        self.attention = {
            "ref": importlib.import_module(package.__name__ + ".model._attention").attend,
            "fast": _fast_attend(),
        }[attention]
        self.optimizer = adamw(self.model.parameters())
        self.tau = None
        self.preset, self.kernel = preset, attention

    def describe(self) -> dict:
        """The settings a reader needs to reproduce this model's timings."""
        import dataclasses

        c = self.model.config
        return {
            "model": f"TransIP-{self.preset}", "attention": self.kernel,
            "parameters": _parameters(self.model), "dtype": str(next(self.model.parameters()).dtype),
            "elements": "any (Z <= 118, one embedding)",
            "cutoff_A": f"none (all pairs attend; RBF features on 0-{c.rbf_cutoff} A)",
            "config": {k: v for k, v in dataclasses.asdict(c).items() if not isinstance(v, tuple)},
        }  # fmt: skip

    def prepare(self, mols):
        batch = Batch.from_molecules(mols)
        batch.energy = torch.zeros(batch.num_molecules, dtype=torch.float64)
        batch.forces = torch.zeros_like(batch.positions)
        return batch

    @contextlib.contextmanager
    def _kernel(self):
        module = self.block_module
        saved, module.attend = module.attend, self.attention
        try:
            yield
        finally:
            module.attend = saved

    def infer(self, batch):
        self.model.eval()
        with self._kernel():
            return self.model(batch).energy

    def train(self, batch, latent: bool = False):
        from latentequiv.groups import SO3
        from latentequiv.losses import latent_equivariance_loss
        from latentequiv.tau import MLPTau

        self.model.train()
        with self._kernel():
            out = self.model(batch, training=True)
            loss = (
                5 * (out.energy - batch.energy).square().mean()
                + 15 * (out.forces - batch.forces).square().mean()
            )
            if latent:
                if self.tau is None:
                    self.tau = MLPTau(self.model.config.d_model)
                    self.optimizer.add_param_group({"params": self.tau.parameters()})
                g = SO3().sample(batch.num_molecules)
                z_rot, _ = self.model.embed(rotate_batch(batch, g))
                loss = loss + 5 * latent_equivariance_loss(
                    self.tau, out.node_embedding, z_rot, g[batch.batch]
                )
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def neighbour_pairs(batch: Batch, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """All ordered pairs of distinct atoms of one molecule closer than ``cutoff`` Å (no periodic images).

    Args:
        batch: the packed molecules (``ptr`` gives each molecule's atom range).
        cutoff: the neighbour radius in Å.

    Returns:
        ``edge_index`` (2, E), atom indices into the batch, molecule after molecule, and the number
        of pairs of each molecule (B,).
    """
    edges = []
    for a, b in zip(batch.ptr[:-1].tolist(), batch.ptr[1:].tolist(), strict=True):
        d = torch.cdist(batch.positions[a:b], batch.positions[a:b])
        i, j = torch.nonzero((d < cutoff) & (d > 0), as_tuple=True)
        edges.append(torch.stack([i, j]) + a)
    return torch.cat(edges, 1), torch.tensor([e.shape[1] for e in edges])


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


#: The element set earlier versions of this script built every MACE for, whatever the structures
#: held (``--mace-elements 1 6 7 8 9 15 16 17`` reproduces those runs).
MACE_OLD_ELEMENTS = (1, 6, 7, 8, 9, 15, 16, 17)


class MaceRunner:
    """``mace.modules.ScaleShiftMACE``, random weights: r_max 5, 2 interactions, correlation 3, l_max 3.

    ``zs`` are the elements it is built for. MACE's element-dependent layers (the one-hot node
    attributes enter every interaction's linear and product-basis weights) cost in proportion to
    their number, so a fair timing builds it for the elements of the benchmarked structures only.
    """

    def __init__(self, hidden_irreps: str, zs, r_max: float = 5.0):
        # e3nn 0.4.4 (pinned by mace-torch) loads its own constants with torch.load, which torch >= 2.6
        # restricts to weights only; the file holds Python slices, so allow exactly that type.
        torch.serialization.add_safe_globals([slice])
        from e3nn import o3
        from mace import modules

        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        self.zs, self.r_max = list(zs), r_max
        self.model = modules.ScaleShiftMACE(
            r_max=r_max, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
            interaction_cls=block, interaction_cls_first=block, num_interactions=2,
            num_elements=len(zs), hidden_irreps=o3.Irreps(hidden_irreps), MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.zeros(len(zs)), avg_num_neighbors=20.0, atomic_numbers=self.zs,
            correlation=3, gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64],
            atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        )  # fmt: skip
        self.optimizer = adamw(self.model.parameters())
        self.hidden_irreps = hidden_irreps

    def describe(self) -> dict:
        import e3nn
        import mace

        return {
            "model": "MACE (ScaleShiftMACE)", "mace_version": getattr(mace, "__version__", "?"),
            "e3nn_version": e3nn.__version__, "parameters": _parameters(self.model),
            "dtype": str(next(self.model.parameters()).dtype), "elements": self.zs,
            "element_count": len(self.zs), "cutoff_A": self.r_max, "hidden_irreps": self.hidden_irreps,
            "interaction": "RealAgnosticResidualInteractionBlock", "num_interactions": 2,
            "max_ell": 3, "correlation": 3, "num_bessel": 8, "radial_MLP": [64, 64, 64],
            "MLP_irreps": "16x0e", "avg_num_neighbors": 20.0,
            "neighbour_list": "built before timing, not charged",
        }  # fmt: skip

    def prepare(self, mols):
        """MACE's input dictionary, with the neighbour list (within ``r_max``, no self pairs)."""
        batch = Batch.from_molecules(mols)
        table = torch.full((119,), -1, dtype=torch.long)
        table[self.zs] = torch.arange(len(self.zs))
        edge_index, _ = neighbour_pairs(batch, self.r_max)
        n_graphs = batch.num_molecules
        one_hot = torch.nn.functional.one_hot(table[batch.numbers], len(self.zs)).float()
        zeros = torch.zeros(edge_index.shape[1], 3)
        return {
            "positions": batch.positions, "node_attrs": one_hot, "edge_index": edge_index,
            "shifts": zeros, "unit_shifts": zeros, "cell": torch.zeros(3 * n_graphs, 3),
            "batch": batch.batch, "ptr": batch.ptr, "energy": torch.zeros(n_graphs),
            "forces": torch.zeros_like(batch.positions),
        }  # fmt: skip

    def infer(self, data):
        self.model.eval()
        out = self.model(dict(data), training=False, compute_force=True)
        return out["energy"].detach()

    def train(self, data, latent: bool = False):
        self.model.train()
        out = self.model(dict(data), training=True, compute_force=True)
        loss = (
            5 * (out["energy"] - data["energy"]).square().mean()
            + 15 * (out["forces"] - data["forces"]).square().mean()
        )
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


class EsenRunner:
    """eSEN-sm from fairchem-core, random weights, forces conservative (``-dE/dx``) or direct.

    The backbone is ``fairchem.core.models.uma.escn_md.eSCNMDBackbone`` (eSEN's message-passing
    network; UMA adds mixture-of-experts layers on top of it) with ``sphere_channels=128, lmax=2,
    mmax=2, num_layers=4, cutoff=6.0`` and fairchem's defaults otherwise (hidden and edge channels
    128, 512 Gaussian distance functions, ``rms_norm_sh`` norm, ``gate`` activation, ``grid``
    feed-forward, quaternion Wigner matrices), except ``use_dataset_embedding=False`` (the default
    wants a map of training data sets) and ``otf_graph=False``: the neighbour list within the cutoff
    is built in :meth:`prepare`, before timing, as for MACE.

    Heads: conservative, ``MLP_EFS_Head`` (an MLP on the l=0 channels, forces by autograd, so a
    training step takes a double backward); direct, ``MLP_Energy_Head`` plus ``Linear_Force_Head``
    (a linear map of the l=0,1 channels, its l=1 part read as forces), run under ``torch.no_grad``
    for inference.
    """

    def __init__(self, direct: bool, cutoff: float = 6.0):
        from fairchem.core.models.uma import escn_md

        self.cutoff, self.direct = cutoff, direct
        backbone = escn_md.eSCNMDBackbone(
            sphere_channels=128, lmax=2, mmax=2, num_layers=4, cutoff=cutoff, otf_graph=False,
            direct_forces=direct, regress_forces=True, use_dataset_embedding=False,
        )  # fmt: skip
        if direct:
            energy, forces = escn_md.MLP_Energy_Head(backbone), escn_md.Linear_Force_Head(backbone)
            heads = {"energy": energy, "forces": forces}
        else:
            heads = {"energy_forces": escn_md.MLP_EFS_Head(backbone, wrap_property=False)}
        self.model = torch.nn.ModuleDict({"backbone": backbone, **heads})
        self.optimizer = adamw(self.model.parameters())

    def describe(self) -> dict:
        return {
            "model": f"eSEN-sm ({'direct' if self.direct else 'conservative'} forces)",
            "parameters": _parameters(self.model), "dtype": str(next(self.model.parameters()).dtype),
            "elements": "any (one embedding table)", "cutoff_A": self.cutoff,
            "sphere_channels": 128, "lmax": 2, "mmax": 2, "num_layers": 4,
        }  # fmt: skip

    def prepare(self, mols):
        """fairchem's ``AtomicData`` batch with the neighbour list (within ``cutoff``, no self pairs)."""
        from fairchem.core.datasets.atomic_data import AtomicData

        batch = Batch.from_molecules(mols)
        edge_index, nedges = neighbour_pairs(batch, self.cutoff)
        n_graphs, n_atoms = batch.num_molecules, batch.positions.shape[0]
        zeros = torch.zeros(n_graphs, dtype=torch.long)
        return AtomicData(
            pos=batch.positions, atomic_numbers=batch.numbers.long(), cell=torch.zeros(n_graphs, 3, 3),
            pbc=torch.zeros(n_graphs, 3, dtype=torch.bool), natoms=batch.ptr.diff(), edge_index=edge_index,
            cell_offsets=torch.zeros(edge_index.shape[1], 3), nedges=nedges, charge=zeros, spin=zeros,
            fixed=torch.zeros(n_atoms, dtype=torch.long), tags=torch.zeros(n_atoms, dtype=torch.long),
            energy=torch.zeros(n_graphs), forces=torch.zeros_like(batch.positions), batch=batch.batch,
            sid=[""] * n_graphs,
        )  # fmt: skip

    def _energy_forces(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.model["backbone"](data)
        out = {}
        for name, head in self.model.items():
            if name != "backbone":
                out.update(head(data, emb))
        return out["energy"], out["forces"]

    def infer(self, data):
        self.model.eval()
        with torch.no_grad() if self.direct else contextlib.nullcontext():
            energy, _ = self._energy_forces(data)
        return energy.detach()

    def train(self, data, latent: bool = False):
        self.model.train()
        energy, forces = self._energy_forces(data)
        loss = 5 * (energy - data["energy"]).square().mean() + 15 * (forces - data["forces"]).square().mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def elements_of(mols) -> list[int]:
    """The atomic numbers present in ``mols``, sorted: what MACE is built for here."""
    return sorted({int(z) for m in mols for z in np.asarray(m.numbers)})


def build(name: str, elements=MACE_OLD_ELEMENTS):
    """``transip-S`` / ``transip-M`` (fast attention), ``transip-S-ref`` (the model's own attend),
    ``mace-128x0e``, ``mace-64x0e+64x1o`` (built for ``elements``; with the suffix ``@8``, e.g.
    ``mace-128x0e@8``, for :data:`MACE_OLD_ELEMENTS` instead), ``esen-sm-cons`` /
    ``esen-sm-direct`` (conservative / direct forces)."""
    if name.startswith("transip-"):
        preset, _, kernel = name.removeprefix("transip-").partition("-")
        return TransIPRunner(preset, kernel or "fast")
    if name.startswith("mace-"):
        irreps, _, old = name.removeprefix("mace-").partition("@")
        return MaceRunner(irreps, MACE_OLD_ELEMENTS if old == "8" else elements)
    if name in ("esen-sm-cons", "esen-sm-direct"):
        return EsenRunner(direct=name == "esen-sm-direct")
    raise ValueError(f"unknown model {name!r}")


def run_mode(runner, data, mode: str):
    if mode == "infer":
        return runner.infer(data)
    return runner.train(data, latent=mode == "train+latent")


def supports(name: str, mode: str) -> bool:
    return mode != "train+latent" or name.startswith("transip")


# --------------------------------------------------------------------------- measuring
def _proc_status_kb(field: str) -> int | None:
    with contextlib.suppress(OSError, StopIteration, ValueError):
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith(field + ":")).split()[1])
    return None


def peak_memory_child(spec: dict) -> dict:
    """Runs in a subprocess: build, then the peak memory increase of one step.

    On Linux the peak resident set (``VmHWM``) is reset after building (``/proc/self/clear_refs``):
    ``ru_maxrss`` would not do, it carries the parent's peak across fork and exec.
    """
    torch.manual_seed(0)
    runner = spec_runner(spec)
    data = runner.prepare(system(spec["system"]))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    saved: dict[int, int] = {}  # storage address -> bytes, of every tensor autograd saves in the step

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    before = _proc_status_kb("VmRSS")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run_mode(runner, data, spec["mode"])
    peak = _proc_status_kb("VmHWM")
    out = {
        "rss_before_mb": before / 1024,
        "peak_rss_mb": peak / 1024,
        "peak_rss_increase_mb": (peak - before) / 1024,
        # Deterministic, unlike RSS: what autograd saved during the step (storages counted once).
        "autograd_saved_mb": sum(saved.values()) / 2**20,
    }
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def spec_runner(spec: dict):
    if "config" in spec:
        package = load_revision(spec["revision"]) if spec.get("revision") else transip
        return TransIPRunner(spec["preset"], spec["attention"], package, **spec["config"])
    return build(spec["model"], spec.get("elements") or elements_of(system(spec["system"])))


def peak_memory(spec: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "_memory", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def interleaved(
    runners: dict,
    prepared: dict,
    mode: str,
    repeats: int,
    warmup: int = 1,
    cpu: dict | None = None,
    usage: dict | None = None,
) -> dict:
    """Seconds per call for every runner, alternating runners within each repetition.

    With ``cpu`` (a dict), the process CPU time of every call is recorded there too: on one thread
    it is the work done, and it moves far less than wall time when other jobs share the cores.
    With ``usage`` (a dict), also the calling thread's user and system CPU seconds and minor page
    faults (``getrusage(RUSAGE_THREAD)``; with ``OMP_NUM_THREADS=1`` torch computes on this thread).
    """
    import resource

    def thread_usage():
        u = resource.getrusage(resource.RUSAGE_THREAD)
        return np.array([u.ru_utime, u.ru_stime, u.ru_minflt])

    times = {name: [] for name in runners}
    for rep in range(warmup + repeats):
        for name, runner in runners.items():
            before = thread_usage() if usage is not None else None
            start, start_cpu = time.perf_counter(), time.process_time()
            run_mode(runner, prepared[name], mode)
            if rep >= warmup:
                times[name].append(time.perf_counter() - start)
                if cpu is not None:
                    cpu.setdefault(name, []).append(time.process_time() - start_cpu)
                if usage is not None:
                    usage.setdefault(name, []).append((thread_usage() - before).tolist())
    return times


def machine() -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(
            (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), cpu
        )
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu, "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", "(unset: glibc default malloc)"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "nice": os.nice(0), "load_average_at_start": os.getloadavg(),
    }  # fmt: skip


def write_results(path: str, info: dict, results, models: dict | None = None) -> None:
    """``{"machine": info, "models": models, "results": results}`` as JSON, atomically (a temporary
    file, then a rename); ``models`` (each model's settings) is left out when ``None``."""
    target = os.path.abspath(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            record = {"machine": info, "results": results}
            if models is not None:
                record = {"machine": info, "models": models, "results": results}
            json.dump(record, f, indent=1)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def summarise(times: dict, atoms: int, cpu: dict | None = None, usage: dict | None = None) -> dict:
    out = {}
    for name, t in times.items():
        med = statistics.median(t)
        out[name] = {"median_s": med, "min_s": min(t), "atoms_per_s": atoms / med, "times_s": t}
        if cpu:
            out[name].update(cpu_median_s=statistics.median(cpu[name]), cpu_s=cpu[name])
        if usage:
            user, sys_, faults = zip(*usage[name], strict=True)
            out[name].update(
                thread_user_median_s=statistics.median(user),
                thread_sys_median_s=statistics.median(sys_),
                minor_faults_median=statistics.median(faults),
            )
    return out


# --------------------------------------------------------------------------- commands
def speedups(entry: dict, reference: dict, key: str = "median_s") -> dict:
    """``time(other) / time(TransIP)`` for every TransIP x other-model pair (MACE, eSEN);
    ``reference`` holds the other models' medians of ``key`` (wall: ``median_s``, process CPU:
    ``cpu_median_s``, thread user CPU: ``thread_user_median_s``)."""
    transip = {t: r[key] for t, r in entry["results"].items() if t.startswith("transip")}
    return {f"{t}/{m}": reference[m] / transip[t] for t in transip for m in reference}


def print_entry(entry: dict) -> None:
    cells = [f"{n}: {r['median_s'] * 1e3:9.1f} ms {r['atoms_per_s']:9.0f} at/s"
             + (f" {r['memory'].get('peak_rss_increase_mb', float('nan')):7.0f} MB" if "memory" in r else "")
             for n, r in entry["results"].items()]  # fmt: skip
    ratio = "  ".join(f"{k} x{v:.2f}" for k, v in entry.get("speedup", {}).items())
    if entry.get("speedup_cpu"):
        ratio += " (CPU " + " ".join(f"x{v:.2f}" for v in entry["speedup_cpu"].values()) + ")"
    print(
        f"{entry['system']:>7} {entry['atoms']:5d} {entry['mode']:>12} | "
        + " | ".join(cells)
        + (f" || {ratio}" if ratio else "")
    )
    sys.stdout.flush()


#: The ratios of a ``models`` entry and the medians they divide: wall time, process CPU time, and
#: the computing thread's user CPU time (without the kernel's page-fault work).
RATIO_KEYS = {"speedup": "median_s", "speedup_cpu": "cpu_median_s", "speedup_user": "thread_user_median_s"}


def cmd_models(args) -> list[dict]:
    """Every model on every system, interleaved; wall, process-CPU and thread-user-CPU ratios.

    MACE is built once, for the elements present in all the run's structures (``--mace-elements``
    overrides); every model's settings are printed and kept in the ``--json`` record, which is
    rewritten after each entry, so a run cut short keeps what it measured.
    """
    names = [str(s) for s in args.sizes] + list(args.batches)
    structures = {name: system(name) for name in names}
    elements = args.mace_elements or elements_of([m for mols in structures.values() for m in mols])
    torch.manual_seed(0)
    runners = {name: build(name, elements) for name in args.models}
    common = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "allocator": os.environ.get("GLIBC_TUNABLES", "glibc default malloc")}  # fmt: skip
    settings = {name: {**runner.describe(), **common} for name, runner in runners.items()}
    for name, described in settings.items():
        print(f"{name}: {json.dumps(described)}")
    results = []
    for sysname, mols in structures.items():
        atoms = sum(len(m) for m in mols)
        prepared = {name: runner.prepare(mols) for name, runner in runners.items()}
        others_train: dict = {}
        for mode in args.modes:
            if mode != "infer" and atoms > args.max_train_atoms:
                continue
            active = {n: r for n, r in runners.items() if supports(n, mode)}
            cpu, usage = {}, {}
            times = interleaved(active, prepared, mode, args.repeats, args.warmup, cpu=cpu, usage=usage)
            entry = {"system": sysname, "atoms": atoms, "elements": elements_of(mols), "mode": mode,
                     "results": summarise(times, atoms, cpu, usage)}  # fmt: skip
            keys = RATIO_KEYS
            others = {
                key: {n: r[k] for n, r in entry["results"].items() if not n.startswith("transip")}
                for key, k in keys.items()
            }
            others_train = others if mode == "train" else others_train
            for key, k in keys.items():
                reference = others[key] or (others_train.get(key, {}) if mode == "train+latent" else {})
                entry[key] = speedups(entry, reference, k)
            largest = sysname == str(max(args.sizes)) if args.sizes else False
            if args.memory == "all" or (args.memory == "largest" and largest):
                for n in active:
                    spec = {"model": n, "system": sysname, "mode": mode, "elements": elements}
                    entry["results"][n]["memory"] = peak_memory(spec)
            results.append(entry)
            print_entry(entry)
            if args.record is not None:
                args.record({"models": settings, "entries": results})
    return results


ATTENTION_VARIANTS = {
    "per-molecule": ("ref", {"bucket_growth": 1.0, "bucket_slack": 0}),
    "padded": ("ref", {"bucket_growth": float("inf")}),
    "buckets": ("ref", {"bucket_growth": 1.25, "bucket_slack": 16}),
    "buckets+fast": ("fast", {"bucket_growth": 1.25, "bucket_slack": 16}),
    "per-molecule+fast": ("fast", {"bucket_growth": 1.0, "bucket_slack": 0}),
}


def mixed_sizes(count: int = 16, low: int = 12, high: int = 186, seed: int = 0) -> list[int]:
    sizes = np.random.default_rng(seed).integers(low, high + 1, count)
    sizes[:2] = low, high
    return sizes.tolist()


def cmd_attention(args) -> list[dict]:
    torch.manual_seed(0)
    runners = {
        name: TransIPRunner(args.preset, kernel, **cfg) for name, (kernel, cfg) in ATTENTION_VARIANTS.items()
    }
    systems = {name: system(name) for name in args.systems}
    results = []
    for sysname, mols in systems.items():
        prepared = {name: runner.prepare(mols) for name, runner in runners.items()}
        atoms = sum(len(m) for m in mols)
        for mode in args.modes:
            times = interleaved(runners, prepared, mode, args.repeats)
            entry = {"system": sysname, "atoms": atoms, "mode": mode, "results": summarise(times, atoms)}
            entry["sizes"] = [len(m) for m in mols]
            base = entry["results"]["per-molecule"]["median_s"]
            entry["speedup"] = {
                f"{n}/per-molecule": base / r["median_s"] for n, r in entry["results"].items()
            }
            if args.memory != "none":
                for name, (kernel, cfg) in ATTENTION_VARIANTS.items():
                    spec = {
                        "preset": args.preset,
                        "attention": kernel,
                        "config": cfg,
                        "mode": mode,
                        "system": sysname,
                    }
                    entry["results"][name]["memory"] = peak_memory(spec)
            results.append(entry)
            print_entry(entry)
    return results


def cmd_compare(args) -> list[dict]:
    """TransIP from git revision ``--before`` against the working tree: same preset, same weights,
    interleaved in one process; first checks that both give the same energies and forces."""
    old = load_revision(args.before)
    shared, after_only = json.loads(args.config), json.loads(args.after_config)
    torch.manual_seed(0)
    runners = {
        "before": TransIPRunner(args.preset, args.attention, old, **shared),
        "after": TransIPRunner(args.preset, args.attention, transip, **shared, **after_only),
    }
    if args.compile:
        runners["after"].model.compile_blocks(dynamic=False)
    results = []
    for sysname in args.systems:
        # training steps of the previous system moved the two copies apart (dropout, own optimisers)
        runners["after"].model.load_state_dict(runners["before"].model.state_dict())
        mols = system(sysname)
        atoms = sum(len(m) for m in mols)
        prepared = {name: runner.prepare(mols) for name, runner in runners.items()}
        outs, first_call = {}, {}
        for name, runner in runners.items():
            runner.model.eval()
            start = time.perf_counter()
            with runner._kernel():
                outs[name] = runner.model(prepared[name])
            first_call[name] = time.perf_counter() - start  # with --compile: the compilation
        print(f"{sysname}: first call " + ", ".join(f"{k} {v:.1f} s" for k, v in first_call.items()))
        d_energy = (outs["after"].energy - outs["before"].energy).abs().max().item()
        d_forces = (outs["after"].forces - outs["before"].forces).abs().max().item()
        print(f"{sysname}: max |dE| {d_energy:.2e} eV, max |dF| {d_forces:.2e} eV/A (after - before)")
        for mode in args.modes:
            cpu: dict = {}
            times = interleaved(runners, prepared, mode, args.repeats, cpu=cpu)
            entry = {"system": sysname, "atoms": atoms, "mode": mode, "results": summarise(times, atoms, cpu)}
            entry["max_abs_energy_diff"], entry["max_abs_force_diff"] = d_energy, d_forces
            entry["first_call_s"] = first_call
            r = entry["results"]
            entry["speedup"] = {
                "before/after": r["before"]["median_s"] / r["after"]["median_s"],
                "cpu time": r["before"]["cpu_median_s"] / r["after"]["cpu_median_s"],
            }
            if args.memory != "none":
                for name, config in (("before", shared), ("after", {**shared, **after_only})):
                    spec = {"preset": args.preset, "attention": args.attention, "config": config,
                            "mode": mode, "system": sysname}  # fmt: skip
                    if name == "before":
                        spec["revision"] = args.before
                    r[name]["memory"] = peak_memory(spec)
            results.append(entry)
            print_entry(entry)
    return results


def cmd_optimizer(args) -> None:
    """AdamW step time on TransIP's parameters: the default loop, ``foreach`` and ``fused``."""
    from transip.model import TransIP, TransIPConfig

    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset(args.preset))
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    variants = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    optimizers = {k: torch.optim.AdamW(model.parameters(), lr=1e-5, **kw) for k, kw in variants.items()}
    times = {k: [] for k in optimizers}
    for rep in range(1 + args.repeats):
        for k, opt in optimizers.items():
            start = time.perf_counter()
            opt.step()
            if rep:
                times[k].append(time.perf_counter() - start)
    for k, t in times.items():
        print(f"AdamW {k:>8}: {statistics.median(t) * 1e3:6.1f} ms per step (median of {len(t)})")


#: glibc malloc settings that keep large temporaries on the heap instead of fresh mmap'd pages.
TUNED_MALLOC = (
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=68719476736:glibc.malloc.hugetlb=1"
)


def steps_child(spec: dict) -> dict:
    """Runs in a subprocess: median wall / CPU time and minor page faults of ``spec["steps"]`` calls."""
    import resource

    runner = build(spec["model"], elements_of(system(spec["system"])))
    data = runner.prepare(system(spec["system"]))
    for _ in range(2):
        run_mode(runner, data, spec["mode"])
    wall, cpu, faults = [], [], []
    for _ in range(spec["steps"]):
        f0, c0, t0 = (
            resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
            time.process_time(),
            time.perf_counter(),
        )
        run_mode(runner, data, spec["mode"])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return {k: statistics.median(v) for k, v in (("wall", wall), ("cpu", cpu), ("faults", faults))}


def cmd_allocator(args) -> list[dict]:
    """glibc's default malloc against :data:`TUNED_MALLOC`, in fresh processes taken in turns."""
    results = []
    for name in args.systems:
        for mode in args.modes:
            spec = {"model": args.model, "system": name, "mode": mode, "steps": args.steps}
            runs = {"default": [], "tuned": []}
            for _ in range(args.repeats):
                for setting in runs:
                    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
                    if setting == "tuned":
                        env["GLIBC_TUNABLES"] = TUNED_MALLOC
                    cmd = [sys.executable, os.path.abspath(__file__), "_steps", json.dumps(spec)]
                    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    runs[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))
            entry = {"system": name, "mode": mode, "model": args.model}
            for setting, values in runs.items():
                for key in ("wall", "cpu", "faults"):
                    entry[f"{setting} {key}"] = statistics.median(v[key] for v in values)
            entry["speedup"] = entry["default wall"] / entry["tuned wall"]
            entry["speedup cpu"] = entry["default cpu"] / entry["tuned cpu"]
            print(
                f"{name:>6} {mode:>12} | default {entry['default wall'] * 1e3:8.1f} ms "
                f"({entry['default faults']:.0f} faults) | tuned {entry['tuned wall'] * 1e3:8.1f} ms "
                f"({entry['tuned faults']:.0f} faults) || x{entry['speedup']:.2f} wall, "
                f"x{entry['speedup cpu']:.2f} CPU",
                flush=True,
            )
            results.append(entry)
    return results


def cmd_exp(args) -> None:
    """``torch.exp`` of TransIP-S's Gaussian exponents for a 1000-atom cluster's distances, raw and
    clamped at ``exp_floor`` (underflowing arguments take CPU exp's slow path)."""
    from transip.model import TransIPConfig
    from transip.model._rbf_features import exp_floor

    c = TransIPConfig.preset("S")
    centres = torch.linspace(0.0, c.rbf_cutoff, c.num_rbf)
    gamma = 0.5 / (c.rbf_cutoff / (c.num_rbf - 1)) ** 2
    pos = torch.as_tensor(cluster(1000, 0).positions, dtype=torch.float32)
    r = torch.cdist(pos[: args.rows], pos)  # (rows, 1000): one chunk of the model's loop
    x = (r[..., None] - centres).square().mul_(-gamma)  # (rows, 1000, K)
    low = (x < exp_floor(x.dtype)).float().mean().item()
    print(f"{x.numel()} exponents, {100 * low:.0f}% below exp_floor = {exp_floor(x.dtype):.1f}")
    variants = {"raw": lambda: torch.exp(x), "clamped": lambda: torch.exp(x.clamp_min(exp_floor(x.dtype)))}
    times = {k: [] for k in variants}
    for rep in range(1 + args.repeats):
        for k, f in variants.items():
            start = time.perf_counter()
            f()
            if rep:
                times[k].append(time.perf_counter() - start)
    for k, t in times.items():
        print(f"exp {k:>8}: {statistics.median(t) * 1e3:7.1f} ms (median of {len(t)})")


def cmd_plot(args) -> None:
    """Speedup over MACE against system size, one line per (TransIP, MACE, mode) pair."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(args.results) as f:
        data = json.load(f)
    lines: dict = {}
    first = next(p.split("/")[0] for e in data["results"] for p in e.get("speedup", {}))
    for entry in data["results"]:
        for pair, value in entry.get("speedup", {}).items():
            if pair.startswith(first + "/"):  # one TransIP variant keeps the figure readable
                lines.setdefault(f"{pair} {entry['mode']}", []).append((entry["system"], value))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, points in sorted(lines.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(3.0, color="grey", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks([0.25, 0.5, 1, 2, 3, 4])
    ax.set_xlabel("system (atoms, or molecules x atoms)")
    ax.set_ylabel("time(MACE) / time(TransIP)")
    info = data["machine"]
    threads = info["torch_threads"]
    ax.set_title(f"{info['cpu']}, {threads} thread{'s' if threads != 1 else ''}, {info['date'][:10]}")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)


def cmd_table(args) -> None:
    """Markdown tables (median ms, atoms/s, peak-memory increase, speedups: wall, and where recorded
    process CPU and thread user CPU) from a ``--json`` file."""
    with open(args.results) as f:
        data = json.load(f)
    names = list(dict.fromkeys(n for e in data["results"] for n in e["results"]))
    print("| system | atoms | mode | " + " | ".join(names) + " | speedup |")
    print("|---" * (len(names) + 4) + "|")
    for e in data["results"]:
        cells = []
        for n in names:
            r = e["results"].get(n)
            mem = (r or {}).get("memory", {}).get("peak_rss_increase_mb")
            cells.append(
                ""
                if r is None
                else f"{r['median_s'] * 1e3:.0f} ms, {r['atoms_per_s']:.0f} at/s"
                + ("" if mem is None else f", +{mem:.0f} MB")
            )
        ratios = ", ".join(f"{k}: {v:.2f}" for k, v in e.get("speedup", {}).items())
        if e.get("speedup_cpu"):  # models runs since MACE is built for the elements present
            cpu, user = e["speedup_cpu"].values(), e["speedup_user"].values()
            ratios += " (CPU " + ", ".join(f"{v:.2f}" for v in cpu) + "; user "
            ratios += ", ".join(f"{v:.2f}" for v in user) + ")"
        print(f"| {e['system']} | {e['atoms']} | {e['mode']} | " + " | ".join(cells) + f" | {ratios} |")


def cmd_profile(args) -> None:
    """Consecutive steps of one model: wall time, user CPU time, minor page faults; optionally the
    ``torch.profiler`` operator table of one more step."""
    import resource

    torch.manual_seed(0)
    runner = build(args.model, elements_of(system(args.system)))
    data = runner.prepare(system(args.system))
    for step in range(args.steps):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        run_mode(runner, data, args.mode)
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        user, faults = after.ru_utime - before.ru_utime, after.ru_minflt - before.ru_minflt
        print(f"step {step}: {wall:.2f} s wall, {user:.2f} s user CPU, {faults} minor faults", flush=True)
    if args.operators:
        from torch.profiler import profile

        with profile() as prof:
            run_mode(runner, data, args.mode)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.operators))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="TransIP vs MACE / eSEN, interleaved in one process")
    models.add_argument("--sizes", type=int, nargs="*", default=[9, 21, 60, 200, 1000])
    models.add_argument(
        "--batches", nargs="*", default=["32x9", "32x21"], help="batches of small molecules, BxN"
    )
    models.add_argument(
        "--models", nargs="+", default=["transip-S", "transip-M", "mace-128x0e", "mace-64x0e+64x1o"]
    )
    models.add_argument("--modes", nargs="+", default=["infer", "train", "train+latent"])
    models.add_argument(
        "--max-train-atoms", type=int, default=1000, help="skip training steps on larger systems"
    )
    models.add_argument("--warmup", type=int, default=2, help="untimed calls per model before timing")
    models.add_argument(
        "--mace-elements", type=int, nargs="*", default=None,
        help="atomic numbers to build MACE for (default: those present in the structures)",
    )  # fmt: skip
    attention = sub.add_parser(
        "attention", help="attention kernels inside TransIP on mixed and large molecules"
    )
    attention.add_argument("--preset", default="S")
    attention.add_argument("--systems", nargs="+", default=["mixed16", "1000"])
    attention.add_argument("--modes", nargs="+", default=["infer", "train"])
    plot = sub.add_parser("plot", help="plot the speedups of a `models --json` file")
    plot.add_argument("results")
    plot.add_argument("--out", default="speedup.png")
    prof = sub.add_parser("profile", help="per-step times of one model, optionally an operator profile")
    prof.add_argument("--model", default="transip-S")
    prof.add_argument("--system", default="200")
    prof.add_argument("--mode", default="train", choices=["infer", "train", "train+latent"])
    prof.add_argument("--steps", type=int, default=4)
    prof.add_argument("--operators", type=int, default=0, help="rows of the torch.profiler table (0: none)")
    table = sub.add_parser("table", help="print a `--json` file as a markdown table")
    table.add_argument("results")
    compare = sub.add_parser("compare", help="TransIP at a git revision vs the working tree, interleaved")
    compare.add_argument("--before", default="HEAD", help="git revision of the 'before' model")
    compare.add_argument("--preset", default="S")
    compare.add_argument("--attention", choices=["ref", "fast"], default="ref")
    compare.add_argument("--systems", nargs="+", default=["9", "21", "60", "200", "1000", "32x21"])
    compare.add_argument("--modes", nargs="+", default=["infer", "train", "train+latent"])
    compare.add_argument("--config", default="{}", help="JSON TransIPConfig overrides for both")
    compare.add_argument("--after-config", default="{}", help="JSON overrides for the working tree only")
    compare.add_argument(
        "--compile", action="store_true", help="compile the working tree's blocks (TransIP.compile_blocks)"
    )
    exp = sub.add_parser("exp", help="CPU exp on underflowing Gaussian exponents, raw vs clamped")
    exp.add_argument("--rows", type=int, default=65, help="atoms (rows) of the 1000-atom cluster")
    exp.add_argument("--repeats", type=int, default=7)
    alloc = sub.add_parser("allocator", help="glibc default malloc vs TUNED_MALLOC, processes in turns")
    alloc.add_argument("--model", default="transip-S-ref")
    alloc.add_argument("--systems", nargs="+", default=["9", "200", "32x9"])
    alloc.add_argument("--modes", nargs="+", default=["infer", "train"])
    alloc.add_argument("--steps", type=int, default=5, help="timed calls per process (after 2 warm-up calls)")
    optimizer = sub.add_parser("optimizer", help="AdamW step time: default, foreach, fused")
    optimizer.add_argument("--preset", default="S")
    optimizer.add_argument("--repeats", type=int, default=7)
    alloc.add_argument("--repeats", type=int, default=3, help="processes per setting")
    alloc.add_argument("--json", help="write all measurements and the machine description here")
    for p in (models, attention, compare):
        p.add_argument("--repeats", type=int, default=5)
        p.add_argument(
            "--memory", choices=["all", "largest", "none"], default="all", help="peak-memory subprocesses"
        )
        p.add_argument("--quick", action="store_true", help="a few minutes on a 2-core CPU")
        p.add_argument("--json", help="write all measurements and the machine description here")
    if len(sys.argv) > 2 and sys.argv[1] == "_memory":
        print(json.dumps(peak_memory_child(json.loads(sys.argv[2]))))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "_steps":
        print(json.dumps(steps_child(json.loads(sys.argv[2]))))
        return
    args = parser.parse_args(argv)
    simple = {"plot": cmd_plot, "table": cmd_table, "profile": cmd_profile, "optimizer": cmd_optimizer}
    simple["exp"] = cmd_exp
    if args.command in simple:
        simple[args.command](args)
        return
    quick = getattr(args, "quick", False)
    if quick and args.command == "models":
        args.sizes, args.batches, args.repeats, args.memory = [9, 60, 200], ["32x9"], 3, "largest"
        args.models, args.modes = ["transip-S", "mace-128x0e"], ["infer", "train"]
    elif quick:
        args.repeats, args.memory = 3, "none"
    info = machine()
    print(json.dumps(info))
    if args.command == "models":
        args.record = None
        if args.json:
            args.record = lambda r: write_results(args.json, info, r["entries"], r["models"])
        cmd_models(args)  # writes its record after every entry
        return
    commands = {"attention": cmd_attention, "compare": cmd_compare}
    results = {**commands, "allocator": cmd_allocator}[args.command](args)
    if args.json:
        write_results(args.json, info, results)


if __name__ == "__main__":
    main()
