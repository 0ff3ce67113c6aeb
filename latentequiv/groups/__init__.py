"""Matrix groups, their Haar samplers and their action on vectors and point sets, plus the
parametrisations of SO(3) (quaternions, axis-angle, Euler angles, 6D, rotation vectors).

Conventions (quaternion order, Euler axes, row-vector action) are collected in
``docs/latentequiv/conventions.md``.
"""

from ._base import Group
from ._conversions import (
    axis_angle_to_matrix,
    euler_angles_to_matrix,
    matrix_to_6d,
    matrix_to_axis_angle,
    matrix_to_euler_angles,
    sixd_to_matrix,
)
from ._lie import hat, so3_exp, so3_generators, so3_log, vee
from ._o3 import O3
from ._quaternion import (
    matrix_to_quaternion,
    quaternion_invert,
    quaternion_multiply,
    quaternion_standardize,
    quaternion_to_matrix,
)
from ._so2 import SO2, so2_exp, so2_log
from ._so3 import SO3

__all__ = [
    "Group",
    "O3",
    "SO2",
    "SO3",
    "axis_angle_to_matrix",
    "euler_angles_to_matrix",
    "hat",
    "matrix_to_6d",
    "matrix_to_axis_angle",
    "matrix_to_euler_angles",
    "matrix_to_quaternion",
    "quaternion_invert",
    "quaternion_multiply",
    "quaternion_standardize",
    "quaternion_to_matrix",
    "sixd_to_matrix",
    "so2_exp",
    "so2_log",
    "so3_exp",
    "so3_generators",
    "so3_log",
    "vee",
]
