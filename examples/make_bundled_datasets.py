"""Rebuild the small datasets shipped in ``transip/datasets/`` from the full development data.

    python examples/make_bundled_datasets.py [--data /work/shared/data] [--out transip/datasets]

Frames are copied verbatim (the text of each extended-XYZ frame, no re-serialisation), so the
bundled numbers are bit-identical to the source files. The selection is deterministic:

- ``g2_xtb``: from ``g2_xtb_md.extxyz``, every MD run (molecule x charge/spin state x temperature)
  keeps its frames 0, 2, 4, ... (every other frame), so every molecule and every charge/spin state
  stays represented;
- ``ethanol_train`` / ``ethanol_test``: every other frame (0, 2, 4, ...) of the rMD17 splits, 500 each;
- ``acac_train_300K``: all 500 frames; ``acac_test_300K`` / ``acac_test_600K``: every other frame,
  325 each.

Outputs are gzip files written with ``mtime=0`` so reruns give identical bytes.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

# bundled name -> (source file, which frames to keep)
PLAN = {
    "g2_xtb": ("g2_xtb_md.extxyz", "every_other_per_run"),
    "ethanol_train": ("ethanol_train.extxyz", "every_other"),
    "ethanol_test": ("ethanol_test_MD.extxyz", "every_other"),
    "acac_train_300K": ("acac_train_300K.extxyz", "all"),
    "acac_test_300K": ("acac_test_MD_300K.extxyz", "every_other"),
    "acac_test_600K": ("acac_test_MD_600K.extxyz", "every_other"),
}


def split_frames(text: str) -> list[str]:
    """Split an extended-XYZ file into the text of its frames (atom count line included)."""
    lines = text.splitlines(keepends=True)
    frames, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i])
        frames.append("".join(lines[i : i + n + 2]))
        i += n + 2
    return frames


def _run_key(frame: str) -> tuple[str, ...]:
    """The MD run a g2 frame belongs to: its source, charge, spin and temperature fields."""
    comment = frame.splitlines()[1].split()
    wanted = ("source=", "charge=", "spin=", "temperature=")
    return tuple(tok for tok in comment if tok.startswith(wanted))


def select(frames: list[str], rule: str) -> list[str]:
    if rule == "all":
        return frames
    if rule == "every_other":
        return frames[::2]
    if rule == "every_other_per_run":
        seen: dict[tuple[str, ...], int] = {}
        kept = []
        for frame in frames:
            key = _run_key(frame)
            k = seen.get(key, 0)
            seen[key] = k + 1
            if k % 2 == 0:
                kept.append(frame)
        return kept
    raise ValueError(rule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "transip" / "datasets")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (source, rule) in PLAN.items():
        frames = split_frames((args.data / source).read_text())
        kept = select(frames, rule)
        target = args.out / f"{name}.extxyz.gz"
        with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
            gz.write("".join(kept).encode())
        print(f"{target}: {len(kept)} of {len(frames)} frames, {target.stat().st_size} bytes")


if __name__ == "__main__":
    main()
