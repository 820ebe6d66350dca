"""Layers: harmonic embedding, equivariant linear / bilinear maps, nonlinearities, normalisation, kernels,
convolutions and blocks."""
from .activation import InvariantGate, OrbitELU, QuotientELU
from .block import SteerableBlock
from .conv import ImplicitConv, StandardConv, SteerableConv
from .data_init import DataDependentInit
from .dense_conv import ImplicitConv2d, ImplicitConv3d, transform_field_image
from .equivariance_loss import EquivarianceLoss
from .group_conv import GroupConv2d, coset_max_pool
from .harmonics import HarmonicEmbedding, harmonic_polynomials, unit_spherical_harmonics
from .invariants import InvariantSplit
from .kernel import ImplicitKernel, StandardKernel, SteerableKernel
from .linear import EquivariantLinear
from .mlp import EquivariantMLP
from .norm import EquivariantBatchNorm
from .tensor_product import EquivariantTensorProduct

__all__ = [
    "DataDependentInit",
    "EquivarianceLoss",
    "EquivariantBatchNorm",
    "EquivariantLinear",
    "EquivariantMLP",
    "EquivariantTensorProduct",
    "GroupConv2d",
    "HarmonicEmbedding",
    "ImplicitConv",
    "ImplicitConv2d",
    "ImplicitConv3d",
    "ImplicitKernel",
    "InvariantGate",
    "InvariantSplit",
    "OrbitELU",
    "QuotientELU",
    "StandardConv",
    "StandardKernel",
    "SteerableBlock",
    "SteerableConv",
    "SteerableKernel",
    "coset_max_pool",
    "harmonic_polynomials",
    "transform_field_image",
    "unit_spherical_harmonics",
]
