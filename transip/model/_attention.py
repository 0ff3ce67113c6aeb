"""Block-diagonal self-attention over a packed batch: the one place attention is computed.

Tokens live packed, ``(T, ...)``, everywhere in the model; only attention needs them grouped by
molecule. :class:`AttentionLayout` is built once per batch from ``ptr``: molecules are sorted by size
and grouped into *buckets* of similar size, each bucket padded to its largest member and viewed as a
dense ``(B_b, N_b, ...)`` block with a key mask. Linear layers, norms and MLPs never see padding; the
padded work is bounded by the bucketing rule (a molecule of ``n`` atoms is padded to at most
``max(growth * n, n + slack)``). With ``growth=inf`` the layout is the naive pad-to-largest baseline.

:func:`attend` is the swap point for a faster packed kernel (varlen flash attention, nested tensors):
it takes packed ``q, k, v`` and returns packed outputs.

Double backward (training on conservative forces) needs the math SDPA backend: the flash and
memory-efficient kernels have no derivative for their backward pass.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


@dataclass(frozen=True)
class Bucket:
    """Molecules of similar size viewed as one dense block.

    Attributes:
        index: ``(B_b, N_b)`` int64 packed atom index of each slot; padding slots repeat the
            molecule's first atom so that gathers stay in bounds.
        mask: ``(B_b, N_b)`` bool, ``True`` on real atoms.
        padded: whether any slot is padding (lets :func:`attend` skip the mask).
        start: when the bucket is one contiguous run of packed atoms (no padding, members adjacent
            in the batch), its first atom: gathering is then a view, not a copy. ``None`` otherwise.
    """

    index: torch.Tensor
    mask: torch.Tensor
    padded: bool
    start: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.index.shape)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Packed ``(T, *F)`` to this bucket's ``(B_b, N_b, *F)`` block."""
        shape = self.index.shape
        if self.start is None:
            return x.index_select(0, self.index.flatten()).unflatten(0, shape)
        count = shape[0] * shape[1]
        if self.start != 0 or count != x.shape[0]:
            x = x.narrow(0, self.start, count)
        return x.unflatten(0, shape)


def _device(array: np.ndarray, device) -> torch.Tensor:
    """A fresh host array as a tensor on ``device`` (shares its memory on the CPU)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def _group_sizes(sizes: list[int], growth: float, slack: int) -> list[list[int]]:
    """Greedy bucketing of molecule indices, largest first."""
    order = sorted((n, b) for b, n in enumerate(sizes) if n > 0)
    groups: list[list[int]] = []
    while order:
        top = order[-1][0]
        smallest = min(top / growth, top - slack)
        cut = len(order)
        while cut > 0 and order[cut - 1][0] >= smallest:
            cut -= 1
        groups.append([b for _, b in order[cut:]])
        order = order[:cut]
    return groups[::-1]


@dataclass(frozen=True)
class AttentionLayout:
    """How the packed tokens of one batch are grouped for attention.

    Build with :meth:`from_ptr` once per batch; pass the same layout to every layer.

    Attributes:
        buckets: the dense blocks, smallest molecules first.
        inverse: ``(T,)`` where each packed atom sits in the concatenation of all buckets' real slots.
        num_atoms: ``T``.
        rows: ``(T,)`` row of each packed atom in the concatenation of the flattened
            ``(B_b * N_b)`` blocks, or ``None`` when every bucket is a contiguous run of atoms
            (then concatenating the blocks in the order ``runs`` is already the packed order).
        runs: bucket indices sorted by ``start`` when ``rows`` is ``None``, else ``()``.

    Example:
        >>> layout = AttentionLayout.from_ptr(torch.tensor([0, 3, 5, 45]))
        >>> [b.shape for b in layout.buckets]
        [(2, 3), (1, 40)]
        >>> x = torch.arange(45.0)
        >>> bool(torch.equal(layout.scatter(layout.gather(x)), x))
        True
    """

    buckets: tuple[Bucket, ...]
    inverse: torch.Tensor
    num_atoms: int
    rows: torch.Tensor | None = None
    runs: tuple[int, ...] = ()

    @classmethod
    def from_ptr(cls, ptr: torch.Tensor, *, growth: float = 1.25, slack: int = 16) -> AttentionLayout:
        """Bucket the molecules of a packed batch.

        Args:
            ptr: ``(B + 1,)`` atom offsets of the batch.
            growth: largest allowed ratio between a bucket's size and a member's size.
            slack: a member may also be padded by up to this many atoms regardless of ``growth``
                (small molecules are cheaper to pad than to launch separately).
                ``growth=float("inf")`` gives one bucket: pad to the largest molecule.
        """
        return cls.from_offsets(ptr.tolist(), device=ptr.device, growth=growth, slack=slack)

    @classmethod
    def from_offsets(
        cls, offsets: list[int], *, device=None, growth: float = 1.25, slack: int = 16
    ) -> AttentionLayout:
        """:meth:`from_ptr` from host integers (no device read); the tensors go to ``device``."""
        sizes = [b - a for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        # index bookkeeping in numpy on the host; only the finished index tensors go to the device
        buckets, slots, rows, row = [], [], [], 0
        for members in _group_sizes(sizes, growth, slack):
            start = np.array([offsets[b] for b in members], dtype=np.int64)  # (B_b,)
            count = np.array([sizes[b] for b in members], dtype=np.int64)  # (B_b,)
            width = int(count.max())
            arange = np.arange(width, dtype=np.int64)
            mask = arange[None, :] < count[:, None]  # (B_b, N_b)
            index = np.where(mask, start[:, None] + arange[None, :], start[:, None])
            padded = bool((count != width).any())
            adjacent = all(b + 1 == c for b, c in zip(members[:-1], members[1:], strict=True))
            run = offsets[members[0]] if adjacent and not padded else None
            buckets.append(Bucket(_device(index, device), _device(mask, device), padded, run))
            slots.append(index[mask])
            rows.append(np.flatnonzero(mask) + row)
            row += mask.size
        order = np.concatenate(slots) if slots else np.zeros(0, dtype=np.int64)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        if buckets and all(b.start is not None for b in buckets):
            runs = tuple(sorted(range(len(buckets)), key=lambda i: buckets[i].start))
            return cls(tuple(buckets), _device(inverse, device), int(offsets[-1]), None, runs)
        packed_rows = np.concatenate(rows)[inverse] if rows else np.zeros(0, dtype=np.int64)
        return cls(tuple(buckets), _device(inverse, device), int(offsets[-1]), _device(packed_rows, device))

    def gather(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Packed ``(T, *F)`` to one ``(B_b, N_b, *F)`` block per bucket (padding holds copies)."""
        return [b.gather(x) for b in self.buckets]

    def scatter(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`gather`: the real slots of ``(B_b, N_b, *F)`` blocks back to ``(T, *F)``."""
        if not blocks:
            raise ValueError("layout has no atoms")
        flat = [x.flatten(0, 1) for x in blocks]  # (B_b * N_b, *F)
        if self.rows is None:
            flat = [flat[i] for i in self.runs]
            return flat[0] if len(flat) == 1 else torch.cat(flat)
        return torch.cat(flat).index_select(0, self.rows)

    @property
    def attention_elements(self) -> int:
        """Query-key pairs computed per head, ``sum_b B_b N_b^2`` (the cost of attention)."""
        return sum(b.index.shape[0] * b.index.shape[1] ** 2 for b in self.buckets)


def _key_mask(bucket: Bucket, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    keys = bucket.mask[:, None, None, :]  # (B_b, 1, 1, N_b)
    if bias is None:
        return keys if bucket.padded else None
    bias = bias.to(dtype)
    return bias.masked_fill(~keys, -math.inf) if bucket.padded else bias


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: AttentionLayout,
    bias: list[torch.Tensor] | None = None,
    *,
    dropout_p: float = 0.0,
    double_backward: bool = False,
) -> torch.Tensor:
    """Scaled dot-product attention restricted to each molecule.

    ``out_i = sum_j softmax_j(q_i . k_j / sqrt(E) + bias_ij) v_j`` with ``j`` over the atoms of
    ``i``'s own molecule.

    Args:
        q, k, v: packed per-head queries, keys and values.
        layout: the batch's :class:`AttentionLayout`.
        bias: optional additive logits, one ``(B_b, H, N_b, N_b)`` tensor per bucket.
        dropout_p: attention-weight dropout probability (pass 0 in eval mode).
        double_backward: route through the math backend so the result can be differentiated twice.

    Shape:
        - q, k, v: ``(T, H, E)``
        - output: ``(T, H, E)``
    """
    context = sdpa_kernel(SDPBackend.MATH) if double_backward else nullcontext()
    blocks = []
    with context:
        for i, bucket in enumerate(layout.buckets):
            # (B_b, N_b, H, E) -> (B_b, H, N_b, E)
            qb, kb, vb = (bucket.gather(x).transpose(1, 2) for x in (q, k, v))
            mask = _key_mask(bucket, None if bias is None else bias[i], q.dtype)
            out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=dropout_p)
            blocks.append(out.transpose(1, 2))  # (B_b, N_b, H, E)
    return layout.scatter(blocks)
