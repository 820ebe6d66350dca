"""Networks composed from the package's layers, and the baselines the paper compares against."""
from .budget import match_budget
from .mpnn import MPNN
from .pointcloud import PointCloudClassifier
from .qm9 import QM9Net
from .segnn import SEGNN
from .steerable_cnn import SteerableCNN

__all__ = ["MPNN", "PointCloudClassifier", "QM9Net", "SEGNN", "SteerableCNN", "match_budget"]
