"""Batch samplers: molecules grouped by an atom budget or by a fixed count, deterministic and DDP-safe.

Both samplers yield lists of dataset indices (use them as ``DataLoader(batch_sampler=...)``).

Determinism: the order of an epoch depends only on ``(seed, epoch)``; call ``set_epoch(e)`` before
each epoch, as with ``DistributedSampler``.

Distributed runs: the epoch's permutation is dealt round-robin to ``num_replicas`` ranks, so ranks
hold disjoint molecules; each rank then forms its batches. Ranks must run the same number of
steps or DDP hangs, so ranks with fewer batches repeat their own first batches (cyclically) until
every rank has as many as the busiest one; with ``drop_last=True`` every rank is cut to the
smallest count instead (and :class:`FixedCountSampler` also drops short batches). Repeats only
ever reuse a rank's own molecules, so the ranks stay disjoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def _permutation(n: int, *, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def pack_by_atoms(order: Sequence[int], sizes: np.ndarray, max_atoms: int) -> list[list[int]]:
    """Fill batches in the given order until the next molecule would exceed ``max_atoms``.

    A molecule larger than ``max_atoms`` on its own gets a batch of its own (it is never dropped;
    reject such molecules at read time with ``max_atoms`` if the model cannot take them).

    Example:
        >>> pack_by_atoms([0, 1, 2, 3], np.array([3, 4, 9, 2]), max_atoms=8)
        [[0, 1], [2], [3]]
    """
    batches: list[list[int]] = []
    current: list[int] = []
    filled = 0
    for i in order:
        n = int(sizes[i])
        if current and filled + n > max_atoms:
            batches.append(current)
            current, filled = [], 0
        current.append(int(i))
        filled += n
    if current:
        batches.append(current)
    return batches


def _balance(per_rank: list[list[list[int]]], *, drop_last: bool) -> list[list[list[int]]]:
    """Give every rank the same number of batches (see the module docstring)."""
    counts = [len(b) for b in per_rank]
    if drop_last:
        target = min(counts)
        return [b[:target] for b in per_rank]
    target = max(counts)
    return [b + [b[k % len(b)] for k in range(target - len(b))] if b else b for b in per_rank]


class _EpochSampler:
    """Shared plumbing: epoch, rank checks, caching of the current epoch's plan."""

    def __init__(self, n: int, *, shuffle: bool, seed: int, drop_last: bool, num_replicas: int, rank: int):
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        if n < num_replicas and not drop_last:
            raise ValueError(f"{n} molecules cannot be shared by {num_replicas} ranks")
        self.n = n
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._plan: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of epoch ``epoch`` (same on every rank)."""
        self.epoch = int(epoch)

    def _rank_batches(self, indices: np.ndarray) -> list[list[int]]:
        raise NotImplementedError

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch."""
        if self._plan is None or self._plan[0] != self.epoch:
            order = _permutation(self.n, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
            per_rank = [self._rank_batches(order[r :: self.num_replicas]) for r in range(self.num_replicas)]
            self._plan = (self.epoch, _balance(per_rank, drop_last=self.drop_last)[self.rank])
        return self._plan[1]

    def __iter__(self) -> Iterator[list[int]]:
        yield from (list(b) for b in self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class AtomBudgetSampler(_EpochSampler):
    """Batches holding at most ``max_atoms`` atoms in total (fairchem's ``max_atoms`` convention).

    Batches are filled greedily in permutation order (:func:`pack_by_atoms`); a molecule bigger
    than the budget forms a batch alone. The number of batches depends on the permutation, so
    ``len(sampler)`` is that of the current epoch.

    Args:
        sizes: ``(n,)`` atoms per molecule (``dataset.sizes``).
        max_atoms: atom budget per batch.
        shuffle: permute molecules each epoch (else dataset order).
        seed: base seed; the permutation is a function of ``(seed, epoch)``.
        drop_last: equalise ranks by truncation instead of repetition.
        num_replicas: number of distributed ranks.
        rank: this rank.

    Example:
        >>> s = AtomBudgetSampler(np.array([5, 5, 3, 9]), max_atoms=10, shuffle=False)
        >>> list(s), len(s)
        ([[0, 1], [2], [3]], 3)
    """

    def __init__(
        self,
        sizes: Sequence[int] | np.ndarray,
        max_atoms: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if max_atoms < 1:
            raise ValueError(f"max_atoms must be positive, got {max_atoms}")
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.max_atoms = int(max_atoms)
        super().__init__(
            len(self.sizes),
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            num_replicas=num_replicas,
            rank=rank,
        )

    def _rank_batches(self, indices: np.ndarray) -> list[list[int]]:
        return pack_by_atoms(indices, self.sizes, self.max_atoms)


class FixedCountSampler(_EpochSampler):
    """Batches of ``batch_size`` molecules (the last one may be shorter unless ``drop_last``).

    Args:
        n: number of molecules in the dataset.
        batch_size: molecules per batch.
        shuffle, seed, drop_last, num_replicas, rank: as for :class:`AtomBudgetSampler`.

    Example:
        >>> list(FixedCountSampler(5, 2, shuffle=False))
        [[0, 1], [2, 3], [4]]
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = int(batch_size)
        super().__init__(
            int(n), shuffle=shuffle, seed=seed, drop_last=drop_last, num_replicas=num_replicas, rank=rank
        )

    def _rank_batches(self, indices: np.ndarray) -> list[list[int]]:
        idx = indices.tolist()
        batches = [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches
