"""pyg_implicit: steerable point convolutions with implicit kernels for any subgroup of O(3), in PyG."""
from . import groups, nn
from .groups import Group, get_group

__version__ = "0.1.0"

__all__ = ["Group", "get_group", "groups", "nn", "__version__"]
