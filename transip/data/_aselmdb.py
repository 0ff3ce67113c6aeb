"""OMol25's ``.aselmdb`` files: a reader and a writer for fairchem's LMDB layout of an ASE database.

The format (what ``ase-db-backends``' ``LMDBDatabase`` writes and fairchem reads):

- one LMDB environment per file, stored as a single file (``subdir=False``; LMDB keeps its lock in
  ``<file>-lock`` when opened for writing);
- keys are ASCII strings: the row id (``"1"``, ``"2"``, ... counting from 1), plus the reserved
  entries ``"nextid"`` (one past the largest id ever written), ``"deleted_ids"`` (a list) and
  ``"metadata"`` (a dict);
- every value is ``zlib.compress(ase.io.jsonio.encode(obj).encode("utf-8"))``;
- a row is the dict of an ASE ``AtomsRow``: ``numbers``, ``positions``, ``cell``, ``pbc``, the
  calculator results (``energy``, ``forces``...) with ``calculator``/``calculator_parameters``,
  ``unique_id``, ``ctime``, ``mtime``, ``user``, ``key_value_pairs`` and ``data``.
  OMol25 keeps ``charge``, ``spin``, ``source``, ``data_id`` and friends in ``data``;
- a dataset is a file or a directory of ``*.aselmdb`` files read in sorted order, optionally with
  a ``metadata.npz`` whose ``natoms`` array holds every structure's atom count in that order.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ._convert import pop_energy
from ._dataset import MoleculeDataset, ReadOptions
from ._molecule import Molecule
from ._validation import DataError, validate_molecule

_RESERVED = ("nextid", "deleted_ids", "metadata")
# Map size only bounds how large a file may grow; LMDB files are sparse, so this costs nothing.
_MAP_SIZE = 2**40


def encode_value(obj) -> bytes:
    """Serialise a value as the format stores it: ASE JSON, UTF-8, zlib."""
    from ase.io.jsonio import encode

    return zlib.compress(encode(obj).encode("utf-8"))


def decode_value(raw: bytes):
    """Inverse of :func:`encode_value` (ASE's JSON decoder restores numpy arrays)."""
    from ase.io.jsonio import decode

    return decode(zlib.decompress(raw).decode("utf-8"))


_LMDB_MAGIC = 0xBEEFC0DE


def check_lmdb_file(path: Path) -> None:
    """Raise :class:`DataError` unless ``path`` is a whole LMDB data file.

    LMDB maps the file and trusts its meta pages: a file cut short (an interrupted copy) is read
    past its end, which kills the process with a bus error rather than raising. So the two meta
    pages (pages 0 and 1, little-endian 64-bit layout: magic at byte 16, page size at 40, last page
    at 136, transaction id at 144 of each) are read first, and the file must reach the last page
    that the newer one names.
    """
    import struct

    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(152)
        if len(head) < 152 or struct.unpack_from("<I", head, 16)[0] != _LMDB_MAGIC:
            raise DataError(str(path), "file", f"not an LMDB (.aselmdb) file ({size} bytes)")
        page_size = struct.unpack_from("<I", head, 40)[0]
        f.seek(page_size)
        second = f.read(152)
    metas = [head]
    if len(second) == 152 and struct.unpack_from("<I", second, 16)[0] == _LMDB_MAGIC:
        metas.append(second)
    last_page, _ = max((struct.unpack_from("<QQ", m, 136) for m in metas), key=lambda m: m[1])
    needed = (last_page + 1) * page_size
    if len(metas) < 2 or size < needed:
        raise DataError(
            str(path),
            "file",
            f"truncated: {size} bytes where the LMDB file needs {max(needed, 2 * page_size)} "
            "(an interrupted copy or download? copy it again)",
        )


def _open(path: Path, *, write: bool = False):
    import lmdb

    if write:
        return lmdb.open(str(path), subdir=False, map_size=_MAP_SIZE, meminit=False, map_async=True)
    return lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False, meminit=False)


# Read-only environments of this process, keyed by the data file's (device, inode). LMDB refuses
# to open one file twice in a process, so all datasets of a process share one handle per file.
_READERS: dict[tuple[int, int], object] = {}
_READERS_PID = os.getpid()


def _file_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _reader(path: Path):
    """This process's read-only environment for ``path`` (opened on first use)."""
    global _READERS_PID
    if _READERS_PID != os.getpid():
        # Forked: handles inherited from the parent must not be used here. They are lock-free and
        # read-only, so closing them only unmaps this process's copy; then open our own.
        for env in _READERS.values():
            env.close()
        _READERS.clear()
        _READERS_PID = os.getpid()
    key = _file_key(path)
    env = _READERS.get(key)
    if env is None:
        check_lmdb_file(path)
        env = _READERS[key] = _open(path)
    return env


def _forget(path: Path) -> None:
    """Close this process's reader of ``path`` (before the file is replaced)."""
    if path.exists() and _READERS_PID == os.getpid():
        env = _READERS.pop(_file_key(path), None)
        if env is not None:
            env.close()


def _row_ids(path: Path) -> list[int]:
    """Live row ids of one file: ``1 .. nextid - 1`` minus ``deleted_ids``."""
    with _reader(path).begin() as txn:
        raw_next = txn.get(b"nextid")
        raw_deleted = txn.get(b"deleted_ids")
    nextid = decode_value(raw_next) if raw_next is not None else 1
    deleted = set(decode_value(raw_deleted)) if raw_deleted is not None else set()
    return [i for i in range(1, int(nextid)) if i not in deleted]


def _row_to_parts(row: dict) -> dict:
    """The pieces :func:`molecule_from_parts` needs, from a decoded row dict."""
    from ase.calculators.calculator import all_properties

    info = {**(row.get("key_value_pairs") or {}), **(row.get("data") or {})}
    results = {k: row[k] for k in all_properties if k in row}
    return dict(
        positions=row["positions"],
        numbers=row["numbers"],
        info=info,
        results=results,
        cell=row.get("cell"),
        pbc=row.get("pbc"),
    )


class AseLmdbDataset(MoleculeDataset):
    """An ``.aselmdb`` file, or a directory of them, read lazily.

    Nothing but the row ids is read at construction. ``sizes`` come from ``metadata.npz`` in the
    directory when it is present and has one entry per row, otherwise from one pass over the rows
    the first time they are asked for. Each process opens its own read-only LMDB environments
    on first access (and again after a fork, never using the parent's), shared by all datasets of
    the process, so the dataset is safe to use with ``DataLoader`` workers (fork or spawn).

    Args:
        path: an ``.aselmdb`` file or a directory holding ``*.aselmdb`` files.
        options: keys and checks; errors name ``f"{file}[{row position in that file}]"``.
    """

    def __init__(self, path: str | Path, options: ReadOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or ReadOptions()
        if self.path.is_dir():
            self.files = sorted(self.path.glob("*.aselmdb"))
            if not self.files:
                raise FileNotFoundError(f"{self.path}: no *.aselmdb files in this directory")
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise FileNotFoundError(f"{self.path}: no such file or directory")
        self._ids = [_row_ids(f) for f in self.files]
        self._ends = np.cumsum([len(ids) for ids in self._ids]).tolist()
        meta = self.path / "metadata.npz" if self.path.is_dir() else None
        if meta is not None and meta.is_file():
            natoms = np.load(meta)["natoms"]
            if natoms.shape == (len(self),):
                self.__dict__["_sizes"] = natoms.astype(np.int64)

    def __len__(self) -> int:
        return int(self._ends[-1]) if self._ends else 0

    def _locate(self, index: int) -> tuple[int, int]:
        import bisect

        part = bisect.bisect_right(self._ends, index)
        return part, index - (self._ends[part - 1] if part else 0)

    def read_row(self, index: int) -> dict:
        """The decoded row dict at dataset position ``index`` (for inspection and debugging)."""
        part, local = self._locate(index)
        with _reader(self.files[part]).begin() as txn:
            raw = txn.get(str(self._ids[part][local]).encode("ascii"))
        if raw is None:
            raise KeyError(f"{self.files[part]}: row id {self._ids[part][local]} is missing")
        return decode_value(raw)

    def _get(self, index: int) -> Molecule:
        part, local = self._locate(index)
        where = f"{self.files[part]}[{local}]"
        row = self.read_row(index)
        return self.options.molecule(where=where, source=self.files[part].name, **_row_to_parts(row))

    def _numbers_energy(self, index: int) -> tuple[np.ndarray, float | None]:
        # The row is decoded whole (JSON), but no Molecule is built and the k-d tree distance
        # check is skipped: the full read of the same row still runs it.
        part, local = self._locate(index)
        where = f"{self.files[part]}[{local}]"
        parts = _row_to_parts(self.read_row(index))
        energy = pop_energy(parts["info"], parts["results"], energy_key=self.options.energy_key, where=where)
        numbers = np.asarray(parts["numbers"], dtype=np.int64)
        if self.options.validate:
            light = Molecule(np.asarray(parts["positions"], dtype=np.float64), numbers, energy=energy)
            validate_molecule(
                light,
                where=where,
                max_atoms=self.options.max_atoms,
                allowed_numbers=self.options.allowed_numbers,
                min_distance=None,
            )
        return numbers, energy

    def _compute_sizes(self) -> np.ndarray:
        return np.array([len(self.read_row(i)["numbers"]) for i in range(len(self))], dtype=np.int64)

    @property
    def metadata(self) -> dict:
        """The ``"metadata"`` entry of the first file (``{}`` when absent)."""
        with _reader(self.files[0]).begin() as txn:
            raw = txn.get(b"metadata")
        return {} if raw is None else decode_value(raw)


def _molecule_to_row(mol: Molecule) -> dict:
    from ase.db.core import now

    t = now()
    pbc = np.zeros(3, dtype=bool) if "pbc" not in mol.info else np.asarray(mol.info["pbc"], dtype=bool)
    data = {k: v for k, v in mol.info.items() if k != "pbc"}
    data.update(charge=int(mol.charge), spin=int(mol.spin), source=mol.source, data_id=mol.data_id)
    row = {
        "numbers": mol.numbers,
        "positions": mol.positions,
        "cell": np.zeros((3, 3)) if mol.cell is None else mol.cell,
        "pbc": pbc,
        "unique_id": os.urandom(16).hex(),
        "ctime": t,
        "mtime": t,
        "user": os.getenv("USER", ""),
        "key_value_pairs": {},
        "data": data,
    }
    if mol.energy is not None or mol.forces is not None:
        row["calculator"] = "unknown"
        row["calculator_parameters"] = {}
    if mol.energy is not None:
        row["energy"] = float(mol.energy)
    if mol.forces is not None:
        row["forces"] = mol.forces
    return row


def write_aselmdb(
    path: str | Path, molecules: Iterable[Molecule], *, metadata: dict | None = None, overwrite: bool = False
) -> np.ndarray:
    """Write molecules to an ``.aselmdb`` file that fairchem and ``ase-db-backends`` can read.

    ``charge``, ``spin``, ``source``, ``data_id`` and the rest of ``Molecule.info`` are stored in
    the row's ``data`` dict (the OMol25 layout); energy and forces as calculator results.

    Args:
        path: the file to create.
        molecules: what to write, in order (rows get ids 1, 2, ...).
        metadata: optional dict stored under the ``"metadata"`` key.
        overwrite: replace an existing file instead of raising ``FileExistsError``.

    Returns:
        ``(n,)`` int64 atom counts, ready for ``np.savez(dir / "metadata.npz", natoms=...)``.
    """
    path = Path(path)
    lock = path.with_name(path.name + "-lock")
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
        _forget(path)
        path.unlink()
        lock.unlink(missing_ok=True)
    sizes = []
    env = _open(path, write=True)
    try:
        with env.begin(write=True) as txn:
            for i, mol in enumerate(molecules):
                where = f"{path}[{i}]"
                try:
                    value = encode_value(_molecule_to_row(mol))
                except TypeError as err:
                    raise DataError(where, "info", f"not JSON-serialisable: {err}") from err
                txn.put(str(i + 1).encode("ascii"), value)
                sizes.append(len(mol))
            txn.put(b"nextid", encode_value(len(sizes) + 1))
            if metadata is not None:
                txn.put(b"metadata", encode_value(metadata))
    finally:
        env.close()
    lock.unlink(missing_ok=True)
    return np.array(sizes, dtype=np.int64)
