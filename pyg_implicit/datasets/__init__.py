"""Datasets: PyG InMemoryDatasets that generate or read their data."""
from .nbody import NBodyConstrained
from .qm9 import QM9

__all__ = ["NBodyConstrained", "QM9"]
