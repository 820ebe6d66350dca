"""Networks composed from the package's layers, and the baselines the paper compares against."""
from .budget import count_parameters, match_budget
from .gcnn import GCNN
from .image_cnn import SteerableImageCNN
from .mpnn import MPNN
from .pointcloud import PointCloudClassifier
from .qm9 import QM9Net
from .segnn import SEGNN
from .steerable_cnn import SteerableCNN

__all__ = ["GCNN", "MPNN", "SteerableImageCNN", "PointCloudClassifier", "QM9Net", "SEGNN", "SteerableCNN", "count_parameters", "match_budget"]
