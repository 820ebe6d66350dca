"""PyG transforms for the package's datasets."""
from .molecule import (
           AtomOneHot,
           BondOneHot,
           QM9Targets,
           RadiusGraph,
           StandardizeTargets,
           bond_types,
           raw_properties,
)
from .pointcloud import EstimateNormalAxes, KNNHierarchy, NormalizeUnitBall, PointHierarchy, RandomRotation

__all__ = ["AtomOneHot", "BondOneHot", "QM9Targets", "RadiusGraph", "StandardizeTargets", "bond_types", "raw_properties",
           "EstimateNormalAxes", "KNNHierarchy", "NormalizeUnitBall", "PointHierarchy", "RandomRotation"]  # fmt: skip
