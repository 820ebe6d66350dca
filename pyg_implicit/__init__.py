"""pyg_implicit: steerable point convolutions with implicit kernels for any subgroup of O(3), in PyG."""
from . import graph, groups, nn, testing
from .checkpoint import load_model, save_model
from .groups import Group, get_group

__version__ = "0.1.0"

__all__ = ["Group", "get_group", "graph", "groups", "load_model", "nn", "save_model", "testing", "__version__"]
