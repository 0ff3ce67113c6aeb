"""Small real datasets shipped with the package (see ``transip/datasets/README.md``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: Names accepted by :func:`bundled_dataset`, each a ``transip/datasets/<name>.extxyz.gz`` file.
BUNDLED_DATASETS = (
    "g2_xtb",
    "ethanol_train",
    "ethanol_test",
    "acac_train_300K",
    "acac_test_300K",
    "acac_test_600K",
)


def bundled_dataset(name: str) -> Path:
    """Path of a dataset shipped in ``transip/datasets/``.

    Args:
        name: one of :data:`BUNDLED_DATASETS`: ``"g2_xtb"`` (GFN2-xTB MD of small molecules, charged
            and open-shell states), ``"ethanol_train"`` / ``"ethanol_test"`` (rMD17), and
            ``"acac_train_300K"`` / ``"acac_test_300K"`` / ``"acac_test_600K"`` (acetylacetone).

    Returns:
        Path of the ``.extxyz.gz`` file; pass it to :func:`read_dataset`.

    Example:
        >>> bundled_dataset("g2_xtb").name
        'g2_xtb.extxyz.gz'
    """
    if name not in BUNDLED_DATASETS:
        raise KeyError(f"unknown bundled dataset {name!r}; available: {', '.join(BUNDLED_DATASETS)}")
    path = Path(str(files("transip").joinpath("datasets", f"{name}.extxyz.gz")))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the package was installed without its data files")
    return path
