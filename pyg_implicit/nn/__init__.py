"""Layers: harmonic embedding, equivariant linear / bilinear maps, nonlinearities, normalisation, kernels,
convolutions and blocks."""
from .activation import InvariantGate, QuotientELU
from .block import SteerableBlock
from .conv import ImplicitConv, StandardConv, SteerableConv
from .harmonics import HarmonicEmbedding, harmonic_polynomials, unit_spherical_harmonics
from .invariants import InvariantSplit
from .kernel import ImplicitKernel, StandardKernel, SteerableKernel
from .linear import EquivariantLinear
from .mlp import EquivariantMLP
from .norm import EquivariantBatchNorm
from .tensor_product import EquivariantTensorProduct

__all__ = [
    "EquivariantBatchNorm",
    "EquivariantLinear",
    "EquivariantMLP",
    "EquivariantTensorProduct",
    "HarmonicEmbedding",
    "ImplicitConv",
    "ImplicitKernel",
    "InvariantGate",
    "InvariantSplit",
    "QuotientELU",
    "StandardConv",
    "StandardKernel",
    "SteerableBlock",
    "SteerableConv",
    "SteerableKernel",
    "harmonic_polynomials",
    "unit_spherical_harmonics",
]
