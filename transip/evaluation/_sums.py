"""Named float64 sums and counts in one tensor: add by name, reduce over processes at once, read by name.

Metrics that combine across batches, subsets and processes are kept as sums and counts and divided
only at the end. Holding one run's sums in a single tensor lets every process all-reduce them in
one call; naming the entries keeps the reader from counting slots.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class NamedSums:
    """Float64 sums by name, in one ``(K,)`` tensor on a device.

    Args:
        names: the entries, in order.
        maxima: entries combined by ``max`` rather than summed (of non-negative values: they
            start at 0).
        device: where the tensor lives (reads back to the host only in :meth:`to_dict`).
        values: initial ``(K,)`` values (default zeros).

    Example:
        >>> s = NamedSums(["err", "n"])
        >>> s.add(err=torch.tensor(3.0), n=2)
        >>> (s + s).ratio("err", "n")
        1.5
    """

    def __init__(
        self,
        names: Iterable[str],
        *,
        maxima: Iterable[str] = (),
        device: torch.device | str | None = None,
        values: torch.Tensor | None = None,
    ) -> None:
        self.names = tuple(names)
        self.maxima = tuple(maxima)
        self._index = {n: i for i, n in enumerate(self.names)}
        unknown = [m for m in self.maxima if m not in self._index]
        if len(self._index) != len(self.names) or unknown:
            raise ValueError(f"names must be distinct and include the maxima {unknown}")
        if values is None:
            values = torch.zeros(len(self.names), dtype=torch.float64, device=device)
        elif values.shape != (len(self.names),):
            raise ValueError(f"values of shape {tuple(values.shape)} for {len(self.names)} names")
        self.values = values

    def _like(self, values: torch.Tensor) -> NamedSums:
        return NamedSums(self.names, maxima=self.maxima, values=values)

    def add(self, **values: torch.Tensor | float) -> None:
        """Add each value to its entry (a maximum entry keeps the larger); never reads the device."""
        dev = self.values.device
        new = [
            v.detach().to(device=dev, dtype=torch.float64)
            if isinstance(v, torch.Tensor)
            else torch.full((), float(v), dtype=torch.float64, device=dev)
            for v in values.values()
        ]
        if tuple(values) == self.names and not self.maxima:  # every entry: one addition
            self.values += torch.stack(new)
            return
        for key, v in zip(values, new, strict=True):
            i = self._index[key]
            if key in self.maxima:
                self.values[i] = torch.maximum(self.values[i], v)
            else:
                self.values[i] += v

    def __add__(self, other: NamedSums) -> NamedSums:
        if other.names != self.names:
            raise ValueError("cannot combine sums of different names")
        out = self.values + other.values
        for m in self.maxima:
            i = self._index[m]
            out[i] = torch.maximum(self.values[i], other.values[i])
        return self._like(out)

    def zero_(self) -> NamedSums:
        self.values.zero_()
        return self

    def to_dict(self) -> dict[str, float]:
        """Every entry as a Python float (one host read)."""
        return dict(zip(self.names, self.values.cpu().tolist(), strict=True))

    def ratio(self, num: str, den: str, scale: float = 1.0) -> float | None:
        """``num / den * scale``, or ``None`` when the count ``den`` is not positive."""
        d = self.to_dict()
        return d[num] / d[den] * scale if d[den] > 0 else None

    def __repr__(self) -> str:
        return f"NamedSums({self.to_dict()})"
