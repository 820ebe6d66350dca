"""Datasets: PyG InMemoryDatasets that generate or read their data."""
from .mnist import RotatedMNIST
from .modelnet import ModelNetPoints
from .nbody import NBodyConstrained
from .qm9 import QM9

__all__ = ["ModelNetPoints", "NBodyConstrained", "QM9", "RotatedMNIST"]
