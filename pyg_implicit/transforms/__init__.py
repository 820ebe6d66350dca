"""PyG transforms for the package's datasets."""
from .molecule import AtomOneHot, BondOneHot, QM9Targets, RadiusGraph, StandardizeTargets

__all__ = ["AtomOneHot", "BondOneHot", "QM9Targets", "RadiusGraph", "StandardizeTargets"]
