"""The model's rotational symmetry, tested with ``latentequiv.testing`` as a user would test theirs.

The group acts on a batch through :func:`transip.symmetry.rotate_batch` (positions about each
molecule's centre of mass, forces as vectors); the kit's probes and assertions take it as their
``input_action``. TransIP is not equivariant by construction: the probe measures that an untrained
model is not, and the assertions hold for the parts that are exact.
"""

import numpy as np
import torch
from hypothesis import given, settings

from latentequiv.groups import SO3
from latentequiv.probes import equivariance_error
from latentequiv.testing import assert_equivariant, assert_invariant, point_clouds
from transip.data import Batch, Molecule, bundled_dataset, read_dataset
from transip.model import TransIP, TransIPConfig, centre_of_mass
from transip.symmetry import molecule_centres, rotate_batch

F64 = torch.float64


def rotated(g: torch.Tensor, batch: Batch) -> Batch:
    """The kit's ``input_action``: one rotation per molecule."""
    return rotate_batch(batch, g)


def _clouds_as_batch(x: torch.Tensor, seed: int = 0) -> Batch:
    """``(B, N, 3)`` point clouds as a batch of ``B`` molecules of ``N`` random C/H/O atoms."""
    rng = np.random.default_rng(seed)
    mols = [Molecule(c.numpy(), rng.choice([1, 6, 8], size=c.shape[0])) for c in x]
    return Batch.from_molecules(mols, dtype=F64)


def test_an_untrained_model_is_measurably_not_rotation_invariant():
    # the probe measures and never raises: the latent objective (latentequiv) has to teach this
    torch.manual_seed(0)
    model = TransIP(TransIPConfig.preset("tiny")).to(F64).eval()
    dataset = read_dataset(bundled_dataset("g2_xtb"), index=":6")
    batch = Batch.from_molecules(list(dataset), dtype=F64)
    report = equivariance_error(
        lambda b: model(b, compute_forces=False).energy,
        batch,
        group=SO3(),
        input_action=rotated,
        n_samples=2,
        batch_size=batch.num_molecules,
        generator=torch.Generator().manual_seed(0),
    )
    assert report.dtype == F64 and report.kind == "invariance"
    assert np.isfinite(report.rel_max) and report.rel_max > 1e-6


@settings(max_examples=20, deadline=None)
@given(x=point_clouds(min_points=1, max_points=12, batch_size=3, scale=2.0))
def test_centre_of_mass_is_rotation_equivariant(x):
    # about the origin: com(R x) = R com(x), the kit's default action on point clouds
    masses = torch.rand(x.shape[1], dtype=F64, generator=torch.Generator().manual_seed(1)) + 0.5

    def centres(clouds: torch.Tensor) -> torch.Tensor:  # (B, N, 3) -> (B, 3)
        b, n = clouds.shape[:2]
        index = torch.arange(b).repeat_interleave(n)
        return centre_of_mass(clouds.reshape(-1, 3), masses.repeat(b), index, b)

    assert_equivariant(centres, x, group=SO3(), output_action=lambda g: g)


@settings(max_examples=20, deadline=None)
@given(x=point_clouds(min_points=1, max_points=12, batch_size=3, scale=2.0))
def test_the_action_keeps_centres_and_rotates_positions_about_them(x):
    batch = _clouds_as_batch(x)
    b, n = x.shape[:2]
    assert_invariant(molecule_centres, batch, group=SO3(), input_action=rotated, batch_size=b)

    def relative(bt: Batch) -> torch.Tensor:  # (B, N, 3) positions about each centre
        return (bt.positions - molecule_centres(bt)[bt.batch]).reshape(b, n, 3)

    assert_equivariant(
        relative,
        batch,
        group=SO3(),
        input_action=rotated,
        output_action=lambda g, y: y @ g.transpose(-1, -2),
        batch_size=b,
    )
