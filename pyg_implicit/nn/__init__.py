"""Layers: harmonic embedding, equivariant linear / bilinear maps and MLPs, kernels, convolutions."""
from .activation import NormGate, QuotientELU
from .conv import ImplicitConv, StandardConv, SteerableConv
from .harmonics import HarmonicEmbedding, harmonic_polynomials, unit_spherical_harmonics
from .kernel import ImplicitKernel, StandardKernel, SteerableKernel
from .linear import EquivariantLinear
from .mlp import EquivariantMLP
from .tensor_product import EquivariantTensorProduct

__all__ = [
    "EquivariantLinear",
    "EquivariantMLP",
    "EquivariantTensorProduct",
    "HarmonicEmbedding",
    "ImplicitConv",
    "ImplicitKernel",
    "NormGate",
    "QuotientELU",
    "StandardConv",
    "StandardKernel",
    "SteerableConv",
    "SteerableKernel",
    "harmonic_polynomials",
    "unit_spherical_harmonics",
]
