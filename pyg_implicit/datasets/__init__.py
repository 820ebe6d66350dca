"""Datasets: PyG InMemoryDatasets that generate or read their data."""
from .nbody import NBodyConstrained

__all__ = ["NBodyConstrained"]
