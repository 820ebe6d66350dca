r"""The QM9 regression network of the paper (sec. 5.4, app. B.2): convolutions on the bond graph."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from ..checkpoint import saveable
from ..groups import Group
from ..irreps import IrrepsLike
from .steerable_cnn import SteerableCNN


@saveable
class QM9Net(nn.Module):
    r"""Invariant property regression on molecular graphs.

    .. math::
        s_i = \mathrm{SteerableCNN}(x, \mathrm{pos}, \mathcal{E}, b, a)_i \in \mathbb{R}^{C}, \qquad
        \hat y = \mathrm{MLP}\Big(\frac{1}{N}\sum_i s_i\Big)

    The steerable CNN (embedding, residual convolutions, a head to ``readout`` invariant scalars
    per atom) runs on the bond graph :math:`\mathcal{E}`; its kernels see the relative position and,
    when switched on, the bond type :math:`b_{ij}` (``bond_attr``) and the atom types
    :math:`a_i, a_j` of both endpoints (``atom_attr``), as in the paper's ablation (Fig. 4).
    The prediction is invariant to every element of ``group`` and to translations.

    Args:
        hidden_irreps (str or Irreps): Irreps of the hidden atom features.
        num_layers (int): Number of convolutions. (default: :obj:`4`)
        group (str or Group): Symmetry group. (default: ``"o3"``)
        kernel (str): ``"implicit"`` or ``"standard"``.
        bond_attr (bool): Feed the bond-type one-hot (``data.edge_attr``) to the kernels.
        atom_attr (bool): Feed the atom-type one-hots of both endpoints (``data.x``) to the kernels.
        num_atom_types (int): Width of ``data.x``. (default: :obj:`5`, H C N O F)
        num_bond_types (int): Width of ``data.edge_attr``. (default: :obj:`4`)
        readout (int): Invariant features per atom and width of the final MLP. (default: :obj:`128`)
        out_features (int): Number of predicted targets. (default: :obj:`1`)
        **cnn_kwargs: Passed to :class:`SteerableCNN` (``kernel_hidden_irreps``, ``mlp_layers``,
            ``lmax``, ``radial_features``, ...).

    Shapes:
        - **input:** a batch with ``x`` :math:`(N, 5)`, ``pos`` :math:`(N, 3)`, ``edge_index``
          :math:`(2, E)`, ``edge_attr`` :math:`(E, 4)`, ``batch`` :math:`(N,)`
        - **output:** :math:`(B, \text{out\_features})`
    """

    def __init__(
        self,
        hidden_irreps: IrrepsLike,
        num_layers: int = 4,
        group: Union[str, Group] = "o3",
        kernel: str = "implicit",
        bond_attr: bool = True,
        atom_attr: bool = True,
        num_atom_types: int = 5,
        num_bond_types: int = 4,
        readout: int = 128,
        out_features: int = 1,
        **cnn_kwargs,
    ) -> None:
        super().__init__()
        self.bond_attr, self.atom_attr = bond_attr, atom_attr
        self.cnn = SteerableCNN(
            f"{num_atom_types}x0e", hidden_irreps, f"{readout}x0e", group, num_layers=num_layers, kernel=kernel,
            edge_attr_irreps=f"{num_bond_types}x0e" if bond_attr else None,
            node_attr_irreps=f"{num_atom_types}x0e" if atom_attr else None, head_layers=2, aggr="add",
            zero_output=False, **cnn_kwargs,  # its output is the readout's input, not the prediction
        )  # fmt: skip
        self.mlp = nn.Sequential(nn.Linear(readout, readout), nn.SiLU(), nn.Linear(readout, out_features))

    def forward(self, data) -> Tensor:
        edge_attr: Optional[Tensor] = data.edge_attr if self.bond_attr else None
        node_attr: Optional[Tensor] = data.x if self.atom_attr else None
        scalars = self.cnn(data.x, data.pos, data.edge_index, edge_attr, node_attr)
        batch = data.batch if getattr(data, "batch", None) is not None else torch.zeros_like(data.x[:, 0], dtype=torch.long)
        return self.mlp(global_mean_pool(scalars, batch, size=getattr(data, "num_graphs", None)))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cnn={self.cnn}, bond_attr={self.bond_attr}, atom_attr={self.atom_attr})"
