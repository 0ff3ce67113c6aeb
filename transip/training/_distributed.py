"""Multi-process training with ``torch.distributed``: torchrun launch, process group, DDP, reductions.

``torchrun`` starts one process per device and tells each where it stands through ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR``/``MASTER_PORT`` for the rendezvous).
:func:`torchrun_env` reads them, :func:`distributed_process_group` sets up (and always tears
down) the process group: gloo on CPU, NCCL on CUDA with ``cuda:LOCAL_RANK`` as the device.
Inside it, :func:`~transip.training.train` finds the group and runs data-parallel.

How the ranks stay one run:

- **Weights.** Every rank seeds the same generator before building the model, so the initial
  weights agree; ``DistributedDataParallel`` broadcasts rank 0's parameters at construction
  anyway, and :meth:`Replicas.check_in_sync` compares every parameter with rank 0's after
  training (a mismatch raises).
- **Gradients.** The objective (model *and* tau-network, one module) is wrapped in DDP, which
  averages gradients over ranks during ``backward``. Conservative forces are
  ``autograd.grad(E, x, create_graph=True)`` *inside* the forward pass, restricted to the
  positions: it runs no parameter's gradient accumulator, so DDP's hooks (which fire when a
  parameter's ``.grad`` is accumulated) fire only in the loss's ``backward``, once per parameter,
  with the contributions of both the energy and the force paths already summed. The test
  ``tests/transip/training/test_distributed.py`` checks that a 2-rank run equals, to float64
  rounding, one process that sees both ranks' molecules in each step.
- **Randomness.** Data order comes from the sampler (the same permutation, dealt round-robin to
  ranks); dropout and the rotations of TransIP/TransAug come from per-rank streams
  (:func:`rank_seed`; rank 0 keeps the single-process seeds). Every rank's streams are saved in
  ``last.pt`` so a resumed run continues exactly.
- **Decisions.** Validation sums are all-reduced, so every rank computes the same metrics and
  the same "best" step; a stop request (signal or ``stop_at``) on any rank stops all of them
  after the same step. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import signal
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from transip.evaluation import NamedSums

from ._config import ConfigError
from ._state import StopRequest

#: environment variables torchrun sets for each worker
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
#: how long ranks wait for each other in the CPU-side collectives (see :class:`Replicas`)
CONTROL_TIMEOUT = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class DistributedEnv:
    """Where this process stands in a torchrun launch.

    Attributes:
        rank: global rank, ``0 <= rank < world_size``.
        world_size: number of processes in the run.
        local_rank: rank on this machine (selects the GPU).
    """

    rank: int
    world_size: int
    local_rank: int


def torchrun_env(environ: Mapping[str, str] | None = None) -> DistributedEnv | None:
    """The launch position torchrun put in the environment, or ``None`` outside torchrun.

    Raises:
        ValueError: some but not all of ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` are set, one is
            not an integer, or they are inconsistent.

    Example:
        >>> torchrun_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
        DistributedEnv(rank=1, world_size=2, local_rank=1)
        >>> torchrun_env({}) is None
        True
    """
    environ = os.environ if environ is None else environ
    present = [k for k in TORCHRUN_VARIABLES if k in environ]
    if not present:
        return None
    values = {}
    for key in TORCHRUN_VARIABLES:
        raw = environ.get(key)
        if raw is None:
            raise ValueError(
                f"incomplete torchrun environment: {', '.join(present)} set but {key} is not "
                f"(launch with torchrun, or unset {', '.join(present)})"
            )
        try:
            values[key] = int(raw)
        except ValueError:
            raise ValueError(f"environment variable {key}={raw!r} is not an integer") from None
    env = DistributedEnv(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if env.world_size < 1 or not 0 <= env.rank < env.world_size or env.local_rank < 0:
        raise ValueError(
            f"inconsistent torchrun environment: RANK={env.rank}, WORLD_SIZE={env.world_size}, "
            f"LOCAL_RANK={env.local_rank}"
        )
    return env


def process_device(device: str, env: DistributedEnv) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for ``train.device=cuda``, else the CPU.

    Raises:
        ConfigError: ``train.device`` names one GPU (``cuda:1``): under torchrun the local rank
            chooses it (restrict the GPUs with ``CUDA_VISIBLE_DEVICES`` instead), or this machine
            has fewer GPUs than processes.
    """
    d = torch.device(device)
    if d.type != "cuda":
        return torch.device("cpu")
    if d.index is not None:
        raise ConfigError(
            f"train.device={device}: under torchrun each process uses cuda:LOCAL_RANK; "
            "set train.device=cuda (and CUDA_VISIBLE_DEVICES to choose the GPUs)"
        )
    count = torch.cuda.device_count()
    if env.local_rank >= count:
        raise ConfigError(
            f"train.device=cuda: local rank {env.local_rank} needs GPU {env.local_rank}, "
            f"but {count} are visible (use --nproc_per_node={count} or fewer)"
        )
    return torch.device("cuda", env.local_rank)


@contextlib.contextmanager
def distributed_process_group(env: DistributedEnv, device: str = "cpu") -> Iterator[torch.device]:
    """Initialise the default process group for ``env``; destroyed on exit, also on errors and signals.

    The backend is NCCL when ``device`` is CUDA (the process then works on ``cuda:LOCAL_RANK``)
    and gloo otherwise. The rendezvous uses ``MASTER_ADDR``/``MASTER_PORT`` (set by torchrun).

    Args:
        env: this process's position (:func:`torchrun_env`).
        device: ``train.device`` of the run.

    Yields:
        The device this process trains on.
    """
    where = process_device(device, env)
    if dist.is_initialized():
        raise RuntimeError("a torch.distributed process group is already initialised in this process")
    if where.type == "cuda":
        torch.cuda.set_device(where)
        dist.init_process_group("nccl", rank=env.rank, world_size=env.world_size, device_id=where)
    else:
        dist.init_process_group("gloo", rank=env.rank, world_size=env.world_size)
    try:
        yield where
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The seed of ``rank``'s random streams: ``seed`` itself on rank 0, an unrelated one elsewhere.

    Example:
        >>> rank_seed(7, 0), rank_seed(7, 1) != rank_seed(7, 2)
        (7, True)
    """
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) % 2**63, int(rank)]).generate_state(1, np.uint64)[0] >> 2)


class Replicas:
    """This process's place among the training processes and the collectives the loop needs.

    With ``world_size == 1`` every method is the identity (no process group is needed), so the
    loop reads the same for one process and for many.

    Args:
        rank, world_size: this process's position; ``world_size > 1`` needs an initialised process
            group of that size in which this process has that rank.
    """

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.rank, self.world_size = int(rank), int(world_size)
        self._control = None
        if world_size > 1:
            if not dist.is_initialized():
                raise RuntimeError(
                    f"world_size={world_size} needs an initialised process group: launch with torchrun "
                    "(`transip train` sets it up) or use transip.training.distributed_process_group"
                )
            if (dist.get_rank(), dist.get_world_size()) != (rank, world_size):
                raise RuntimeError(
                    f"rank={rank}, world_size={world_size} disagree with the process group "
                    f"(rank {dist.get_rank()} of {dist.get_world_size()})"
                )
            # Stop flags and small objects travel on the CPU, in a gloo group of their own: with
            # NCCL they would need a device tensor and a host synchronisation every step. Its long
            # timeout covers the one long wait of a run: the other ranks wait while rank 0 fits
            # the element references (a full pass over the training set).
            self._control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)

    @classmethod
    def current(cls, rank: int | None = None, world_size: int | None = None) -> Replicas:
        """From explicit values, else from the initialised process group, else a single process."""
        if world_size is None:
            world_size = dist.get_world_size() if dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_initialized() and world_size > 1 else 0
        return cls(rank, world_size)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes files, logs and the progress bar."""
        return self.rank == 0

    def wrap(self, objective: nn.Module, device: torch.device) -> nn.Module:
        """The module the training step calls: ``objective`` itself, or its DDP wrapper.

        Parameters and buffers (element references, energy scale, constants) are broadcast from
        rank 0 once, when DDP is built; nothing in the model updates buffers while training, so
        they are not broadcast again at every forward pass.
        """
        if not self.distributed:
            return objective
        direct = getattr(getattr(objective, "model", None), "force_head", None) is not None
        options = dict(
            device_ids=[device.index] if device.type == "cuda" else None,
            # a direct force head gets no gradient from batches without forces
            find_unused_parameters=direct,
        )
        if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters:
            options["forward_sync_buffers"] = False  # torch >= 2.13: still synced at construction
        else:
            with torch.no_grad():
                for b in objective.buffers():
                    dist.broadcast(b, src=0)
            options["broadcast_buffers"] = False
        # DDP warns when a gradient's strides differ from its bucket's, even where they differ only
        # along a size-1 dimension (the (1, D) output weight of the energy head) and the memory
        # layout is the same; the warning says nothing about correctness
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        return nn.parallel.DistributedDataParallel(objective, **options)

    def reduce(self, *sums: NamedSums) -> tuple[NamedSums, ...]:
        """Every rank's :class:`~transip.evaluation.NamedSums` added up, on every rank.

        One all-reduce carries them all (concatenated, on the first one's device); entries that
        combine by maximum take one more, of just those entries. With one process the inputs
        are returned as they are.
        """
        if not self.distributed:
            return sums
        device = sums[0].values.device
        flat = torch.cat([s.values.to(device) for s in sums])
        summed = flat.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        offsets = np.cumsum([0] + [len(s.names) for s in sums]).tolist()
        top = [offsets[k] + s.names.index(m) for k, s in enumerate(sums) for m in s.maxima]
        if top:
            largest = flat[top].clone()
            dist.all_reduce(largest, op=dist.ReduceOp.MAX)
            summed[top] = largest
        return tuple(
            NamedSums(s.names, maxima=s.maxima, values=summed[a:b].clone())
            for s, a, b in zip(sums, offsets[:-1], offsets[1:], strict=True)
        )

    def any(self, flag: bool) -> bool:
        """``True`` on every rank if ``flag`` is true on any rank."""
        if not self.distributed:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._control)
        return bool(t.item())

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self._control)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank (picklable objects)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self._control)
        return out

    def barrier(self) -> None:
        """Wait until every rank is here (e.g. until rank 0's files are complete)."""
        if self.distributed:
            dist.barrier(group=self._control)

    @torch.no_grad()
    def check_in_sync(self, module: nn.Module) -> None:
        """Compare every parameter and buffer with rank 0's, exactly; raise if any differs.

        Costs one broadcast of the weights; the loop calls it after resuming and at the end.

        Raises:
            RuntimeError: naming the first tensor that differs and the ranks holding another value.
        """
        if not self.distributed:
            return
        names = list(module.state_dict())
        tensors = list(module.state_dict().values())
        differs = torch.zeros(len(tensors), dtype=torch.int32)
        for i, t in enumerate(tensors):
            theirs = t.clone()
            dist.broadcast(theirs, src=0)
            differs[i] = 0 if torch.equal(theirs, t) else 1
        flags = torch.stack([torch.as_tensor(f) for f in self.gather(differs)])  # (world, tensors)
        if flags.any():
            first = int(flags.any(0).nonzero()[0])
            ranks = flags[:, first].nonzero().flatten().tolist()
            raise RuntimeError(
                f"replicas out of sync: {names[first]!r} on rank(s) {ranks} differs from rank 0 "
                f"({int(flags.any(0).sum())} of {len(names)} tensors differ)"
            )


class ReplicaStopRequest(StopRequest):
    """:class:`StopRequest` for multi-process runs: a repeated SIGINT within ``grace`` s is the same request.

    A worker can receive one interruption twice: torchrun forwards the signal it got to every
    worker, and a worker may also get it directly (a cluster scheduler signals every process of a
    job step; a terminal's Ctrl-C reaches every process sharing its process group). Only a SIGINT
    later than ``grace`` seconds after the first aborts without a checkpoint.
    """

    def __init__(self, grace: float = 5.0) -> None:
        super().__init__()
        self.grace = grace
        self._first: float | None = None

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self._first is not None and signum == signal.SIGINT and now - self._first < self.grace:
            return
        if self._first is None:
            self._first = now
        super()._handle(signum, frame)
