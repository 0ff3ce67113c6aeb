"""Plain-text tables of metrics for the command line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._equivariance import EquivarianceMetrics
from ._metrics import Metrics

_COLUMNS = (
    ("molecules", "n_molecules", "{:d}"),
    ("atoms", "n_atoms", "{:d}"),
    ("E MAE meV", "energy_mae", "{:.2f}"),
    ("E/atom MAE meV", "energy_per_atom_mae", "{:.3f}"),
    ("F MAE meV/Å", "force_mae", "{:.2f}"),
    ("F cos", "force_cosine", "{:.4f}"),
)
_RMSE_COLUMNS = (
    ("E RMSE meV", "energy_rmse", "{:.2f}"),
    ("E/atom RMSE meV", "energy_per_atom_rmse", "{:.3f}"),
    ("F RMSE meV/Å", "force_rmse", "{:.2f}"),
)


def _render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def format_table(rows: Mapping[str, Metrics], *, rmse: bool = False) -> str:
    """A fixed-width table with one line per named set of metrics (``-`` where a value is missing).

    ``rmse`` adds the root-mean-square errors after the MAE and cosine columns.

    Example:
        >>> m = Metrics(2, 18, 12.5, 1.39, 80.0, 0.99)
        >>> print(format_table({"test": m}))
        set   molecules  atoms  E MAE meV  E/atom MAE meV  F MAE meV/Å   F cos
        ----  ---------  -----  ---------  --------------  -----------  ------
        test          2     18      12.50           1.390        80.00  0.9900
    """
    columns = (*_COLUMNS, *_RMSE_COLUMNS) if rmse else _COLUMNS
    body = []
    for name, m in rows.items():
        cells = [name]
        for _, key, fmt in columns:
            v = getattr(m, key)
            cells.append("-" if v is None else fmt.format(v))
        body.append(cells)
    return _render(["set", *(c[0] for c in columns)], body)


def format_equivariance(report: EquivarianceMetrics) -> str:
    """The symmetry errors of :func:`transip.evaluation.equivariance_report`, one per line."""

    def fmt(v: float | None, unit: str = "") -> str:
        return "-" if v is None else f"{v:.4g}{unit}"

    lines = [
        f"equivariance on {report.n_molecules} molecules, {report.n_rotations} rotation(s) each, "
        f"{report.dtype}",
        f"  energy |E(Rx) - E(x)|            mean {fmt(report.energy_abs_mean, ' meV')}  "
        f"max {fmt(report.energy_abs_max, ' meV')}",
        f"  forces |F(Rx) - R F(x)|          mean {fmt(report.force_abs_mean, ' meV/Å')}  "
        f"relative {fmt(report.force_rel_mean)}",
        f"  latent |tau(R,z) - z_R| ({report.latent_target}, {report.latent_tau})  "
        f"mean {fmt(report.latent_abs_mean)}  relative {fmt(report.latent_rel_mean)}",
    ]
    return "\n".join(lines)
