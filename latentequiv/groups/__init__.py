"""Matrix groups, their samplers and their action on vectors and point sets."""

from ._base import Group
from ._so3 import SO3

__all__ = ["Group", "SO3"]
