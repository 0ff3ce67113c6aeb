"""What a run writes while it trains: CSV logs, optional TensorBoard events, a progress bar.

Each writer is optional and independent; none of them touches tensors, so the loop decides when
to synchronise with the device (only at the logging interval).
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class CSVLog:
    """Append rows with a ``step`` column to a CSV file; the header is fixed by the first row.

    On resume, :meth:`truncate_after` drops rows written after the checkpoint being resumed, so the
    file of a resumed run equals that of an uninterrupted one.

    Args:
        path: the CSV file (created with its parent folder).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as f:
                self.fields = next(csv.reader(f), None)

    def write(self, row: Mapping[str, Any]) -> None:
        """Append a row; keys missing from the header are ignored, missing values left empty."""
        new = self.fields is None
        if new:
            self.fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: "" if v is None else v for k, v in row.items()})

    def rows(self) -> list[dict[str, str]]:
        """Every row written so far, as strings."""
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def truncate_after(self, step: int) -> None:
        """Drop rows whose ``step`` is larger than ``step``."""
        if self.fields is None:
            return
        keep = [r for r in self.rows() if int(r["step"]) <= step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(keep)


def tensorboard_writer(log_dir: str | Path, enabled: bool = True):
    """A ``SummaryWriter`` when ``enabled`` and the ``tensorboard`` package is importable, else ``None``."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        return None
    return SummaryWriter(log_dir=str(log_dir))


def progress_bar(total: int, initial: int, enabled: bool):
    """A tqdm bar on stderr, disabled unless ``enabled`` and stderr is a terminal."""
    from tqdm.auto import tqdm

    active = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not active, dynamic_ncols=True, unit="step")


log = logging.getLogger("transip.training")

#: progress lines per run when stderr is not a terminal (logs of batch jobs, pipes)
PROGRESS_LINES = 20


class RunLogger:
    """CSV logs of training and validation, TensorBoard mirror when available, and the progress bar.

    On a terminal progress is a tqdm bar; otherwise (a batch job's log, a pipe) it is a log line
    at the first logging step past every twentieth of the run and at the last step, so a log shows
    the run advancing.

    Args:
        run_dir: where ``train.csv`` and ``val.csv`` (and ``tensorboard/``) go.
        total_steps: the step budget (for the bar).
        start_step: the step a resumed run starts from.
        progress: show a progress bar (only on a terminal).
        tensorboard: mirror scalars to TensorBoard if the package is installed.
        enabled: ``False`` on non-zero ranks: nothing is written.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        total_steps: int,
        start_step: int = 0,
        progress: bool = True,
        tensorboard: bool = True,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        run_dir = Path(run_dir)
        self.train = CSVLog(run_dir / "train.csv") if enabled else None
        self.val = CSVLog(run_dir / "val.csv") if enabled else None
        if enabled:
            self.train.truncate_after(start_step)
            self.val.truncate_after(start_step)
        self.tb = tensorboard_writer(run_dir / "tensorboard", tensorboard and enabled)
        self.bar = progress_bar(total_steps, start_step, progress and enabled)
        self.total_steps = total_steps
        self.lines = progress and enabled and self.bar.disable
        self.every = max(1, total_steps // PROGRESS_LINES)
        self.next_line = start_step + 1

    def log_train(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        self.train.write({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                if v is not None:
                    self.tb.add_scalar(f"train/{k}", v, step)
        shown = {k: f"{v:.4g}" for k, v in values.items() if k.startswith("loss") and v is not None}
        self.bar.set_postfix(shown, refresh=False)
        if self.lines and (step >= self.next_line or step == self.total_steps):
            self.next_line = step + self.every
            self._progress_line(step, values)

    def _progress_line(self, step: int, values: Mapping[str, float]) -> None:
        seconds = values.get("time")
        timing = ""
        if seconds is not None:
            eta = seconds / step * (self.total_steps - step)
            timing = f", {seconds:.0f} s, ETA {eta:.0f} s"
        log.info(
            "step %d/%d (%d%%): loss %.4g%s",
            step,
            self.total_steps,
            100 * step // self.total_steps,
            values["loss"],
            timing,
        )

    def log_val(self, step: int, values: Mapping[str, float | None]) -> None:
        if not self.enabled:
            return
        self.val.write({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                if v is not None:
                    self.tb.add_scalar(f"val/{k}", v, step)

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
        if self.tb is not None:
            self.tb.close()
