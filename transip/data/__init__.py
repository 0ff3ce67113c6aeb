"""Structures in, packed batches out: molecules, readers, samplers and element references.

Units everywhere: Å, eV, eV/Å; ``charge`` in e, ``spin`` the multiplicity ``2S + 1``. The data
contract (keys, conventions, the ``.aselmdb`` layout, error messages) is in ``docs/transip/data.md``.
"""

from ._ase_files import AseDbDataset, read_ase_file
from ._aselmdb import AseLmdbDataset, write_aselmdb
from ._batch import Batch, HostSummary
from ._bundled import BUNDLED_DATASETS, bundled_dataset
from ._convert import molecule_from_atoms, molecule_to_atoms
from ._dataset import (
    ConcatMoleculeDataset,
    InMemoryDataset,
    MoleculeDataset,
    ReadOptions,
    SubsetDataset,
    numbers_and_energies,
    resolve_index,
    subset,
)
from ._loader import make_loader
from ._molecule import Molecule
from ._read import read_dataset
from ._references import ElementReferences, ReferenceFitReport
from ._samplers import AtomBudgetSampler, FixedCountSampler, pack_by_atoms
from ._split import split_dataset
from ._summary import DatasetSummary, dataset_summary
from ._validation import MAX_Z, DataError, validate_molecule

__all__ = [
    "MAX_Z",
    "AseDbDataset",
    "AseLmdbDataset",
    "AtomBudgetSampler",
    "BUNDLED_DATASETS",
    "Batch",
    "ConcatMoleculeDataset",
    "DataError",
    "DatasetSummary",
    "ElementReferences",
    "HostSummary",
    "FixedCountSampler",
    "InMemoryDataset",
    "Molecule",
    "MoleculeDataset",
    "ReadOptions",
    "ReferenceFitReport",
    "SubsetDataset",
    "bundled_dataset",
    "dataset_summary",
    "make_loader",
    "numbers_and_energies",
    "molecule_from_atoms",
    "molecule_to_atoms",
    "pack_by_atoms",
    "read_ase_file",
    "read_dataset",
    "resolve_index",
    "split_dataset",
    "subset",
    "validate_molecule",
    "write_aselmdb",
]
