"""Networks composed from the package's layers, and the baselines the paper compares against."""
from .mpnn import MPNN
from .segnn import SEGNN
from .steerable_cnn import SteerableCNN

__all__ = ["MPNN", "SEGNN", "SteerableCNN"]
