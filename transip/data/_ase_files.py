"""Readers for ASE formats: any file ``ase.io`` reads (extxyz first), and ASE databases (``.db``).

Text files (extxyz, ``.extxyz.gz``...) are parsed once, eagerly, into memory: they are the small
datasets. ASE databases are read lazily, one row per ``__getitem__``, with a connection opened
per process so that ``DataLoader`` workers (fork or spawn) never share one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._dataset import Index, InMemoryDataset, MoleculeDataset, ReadOptions, resolve_index
from ._molecule import Molecule
from ._validation import DataError

_DECOMPRESS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def _read_all_frames(path: Path) -> list:
    """:func:`_read_frames`, with an empty or unrecognisable file reported as a :class:`DataError`."""
    from ase.io.formats import UnknownFileTypeError

    if path.is_file() and path.stat().st_size == 0:
        raise DataError(str(path), "file", "the file is empty (0 bytes)")
    try:
        frames = _read_frames(path)
    except UnknownFileTypeError as e:
        raise DataError(str(path), "file", f"ASE cannot read it ({e}); give it a known extension") from None
    except StopIteration:  # ASE's extxyz reader on a file with no frame
        frames = []
    if not frames:
        raise DataError(str(path), "file", "no structure in the file")
    return frames


def _read_frames(path: Path) -> list:
    """All frames of a file as ``ase.Atoms``.

    Compressed files are decompressed into memory first: ASE's extxyz reader indexes frames and
    then seeks backwards, which on a compressed stream restarts decompression for every frame
    (quadratic; 40x slower on the bundled g2 file).
    """
    import importlib
    import io

    import ase.io
    from ase.io.formats import filetype, ioformats

    module = _DECOMPRESS.get(path.suffix)
    if module is not None:
        try:
            fmt = filetype(path.with_suffix("").name, read=False)
        except Exception:  # unknown extension under the compression suffix: let ASE sniff
            fmt = None
        if fmt is not None:
            binary = ioformats[fmt].isbinary
            with importlib.import_module(module).open(path, "rb" if binary else "rt") as fh:
                buffer = io.BytesIO(fh.read()) if binary else io.StringIO(fh.read())
            frames = ase.io.read(buffer, index=":", format=fmt)
            return frames if isinstance(frames, list) else [frames]
    frames = ase.io.read(str(path), index=":")
    return frames if isinstance(frames, list) else [frames]


def read_ase_file(
    path: str | Path, options: ReadOptions | None = None, index: Index = None
) -> InMemoryDataset:
    """Read the frames of an ASE-readable file.

    Args:
        path: the file; the format is guessed by ASE from the name (``.gz``/``.bz2`` transparently).
        options: keys and checks (see :class:`ReadOptions`).
        index: frames to keep (see :func:`resolve_index`), ``None`` for all.

    Returns:
        An :class:`InMemoryDataset`. Only the kept frames are converted and validated, with
        ``where = f"{path}[{frame}]"``, ``frame`` counting from 0 in the file. ``source`` falls back
        to the file name.
    """

    path, options = Path(path), options or ReadOptions()
    frames = _read_all_frames(path)
    frames = frames if isinstance(frames, list) else [frames]
    keep = resolve_index(index, len(frames))
    molecules = []
    for frame in range(len(frames)) if keep is None else keep.tolist():
        atoms = frames[frame]
        calc = atoms.calc
        mol = options.molecule(
            where=f"{path}[{frame}]",
            positions=atoms.positions,
            numbers=atoms.numbers,
            info=atoms.info,
            results=dict(calc.results) if calc is not None else {},
            arrays=atoms.arrays,
            cell=atoms.cell[:],
            pbc=atoms.pbc,
            source=path.name,
        )
        molecules.append(mol)
    return InMemoryDataset(molecules, path=path)


class AseDbDataset(MoleculeDataset):
    """An ASE database (``ase.db.connect``: SQLite ``.db``, JSON...) read row by row.

    Rows are addressed by position (0-based, in id order); ``where`` in errors is
    ``f"{path}[{position}]"``. ``atoms.info`` is built from the row's key-value pairs and its
    ``data`` dict (``data`` wins), as fairchem does.

    Args:
        path: the database file.
        options: keys and checks.
    """

    def __init__(self, path: str | Path, options: ReadOptions | None = None) -> None:
        import ase.db

        self.path = Path(path)
        self.options = options or ReadOptions()
        with ase.db.connect(str(self.path)) as db:
            rows = [(row.id, row.natoms) for row in db.select(include_data=False)]
        self._ids = np.array([r[0] for r in rows], dtype=np.int64)
        self.__dict__["_sizes"] = np.array([r[1] for r in rows], dtype=np.int64)
        self._db = None
        self._pid = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_db"], state["_pid"] = None, None
        return state

    def _connection(self):
        if self._db is None or self._pid != os.getpid():
            import ase.db

            self._db, self._pid = ase.db.connect(str(self.path)), os.getpid()
        return self._db

    def __len__(self) -> int:
        return int(self._ids.size)

    def _get(self, index: int) -> Molecule:
        row = self._connection().get(id=int(self._ids[index]))
        atoms = row.toatoms()
        info = {**row.key_value_pairs, **(row.data or {})}
        calc = atoms.calc
        return self.options.molecule(
            where=f"{self.path}[{index}]",
            positions=atoms.positions,
            numbers=atoms.numbers,
            info=info,
            results=dict(calc.results) if calc is not None else {},
            arrays=atoms.arrays,
            cell=atoms.cell[:],
            pbc=atoms.pbc,
            source=self.path.name,
        )
