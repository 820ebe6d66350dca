"""PyG transforms for the package's datasets."""
from .molecule import (
           AtomOneHot,
           BondOneHot,
           QM9Targets,
           RadiusGraph,
           StandardizeTargets,
)
from .pointcloud import KNNHierarchy, NormalizeUnitBall, PointHierarchy, RandomRotation

__all__ = ["AtomOneHot", "BondOneHot", "QM9Targets", "RadiusGraph", "StandardizeTargets",
           "KNNHierarchy", "NormalizeUnitBall", "PointHierarchy", "RandomRotation"]  # fmt: skip
