r"""Models for the constrained N-body task: a backbone predicts a displacement per particle."""
from __future__ import annotations

from torch import Tensor, nn

from ..datasets.nbody import NBodyConstrained
from .mpnn import MPNN
from .segnn import SEGNN
from .steerable_cnn import SteerableCNN

MODELS = ("ik", "standard", "segnn", "mpnn")


class NBodyPredictor(nn.Module):
    r"""Positions at the target frame: :math:`\hat x_i = x_i + f(x, v, l, A)_i`.

    ``backbone(x, pos, edge_index, edge_attr)`` returns one vector (``1x1o``) per particle.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, data) -> Tensor:
        return data.pos + self.backbone(data.x, data.pos, data.edge_index, data.edge_attr)


def nbody_model(name: str, width: int, group: str = "so2") -> NBodyPredictor:
    r"""The N-body model ``name`` at hidden multiplicity ``width`` (features ``width x (0e + 1o)``, l <= 1).

    * ``"ik"``: :class:`SteerableCNN` with implicit kernels for ``group`` (paper: 4 convolutions,
      kernel G-MLP of 3 layers with the hidden fields, harmonic polynomials up to l = 1);
    * ``"standard"``: the same network with standard (spherical harmonics x radial MLP) kernels;
    * ``"segnn"``: the O(3) SEGNN-style baseline, 4 layers, lmax 1;
    * ``"mpnn"``: the non-equivariant baseline.
    """
    node, edge, out = NBodyConstrained.node_irreps, NBodyConstrained.edge_irreps, "1x1o"
    hidden = f"{width}x0e+{width}x1o"
    if name == "ik":
        backbone = SteerableCNN(node, hidden, out, group, num_layers=4, edge_attr_irreps=edge, lmax=1,
                                kernel_hidden_irreps=hidden, mlp_layers=3)  # fmt: skip
    elif name == "standard":
        backbone = SteerableCNN(node, hidden, out, group, num_layers=4, kernel="standard", edge_attr_irreps=edge,
                                lmax=1, radial_features=width)  # fmt: skip
    elif name == "segnn":
        backbone = SEGNN(node, hidden, out, num_layers=4, lmax_attr=1, edge_attr_irreps=edge)
    elif name == "mpnn":
        backbone = MPNN(7, width, 3, num_layers=4, edge_dim=1)
    else:
        raise ValueError(f"name: expected one of {MODELS}, got {name!r}")
    return NBodyPredictor(backbone)
