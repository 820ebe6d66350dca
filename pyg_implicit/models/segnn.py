r"""An O(3) SEGNN-style network (Brandstetter et al., ICLR 2022), the paper's N-body baseline."""
from __future__ import annotations

from typing import Optional

import torch
from e3nn import o3
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from ..checkpoint import saveable
from ..groups import get_group
from ..nn import EquivariantTensorProduct, InvariantGate
from ..irreps import IrrepsLike, as_irreps
from ..nn.harmonics import unit_spherical_harmonics
from ..nn.norm import running_batch_norm


class _SteerableLinear(nn.Module):
    """SEGNN's steerable linear layer: a tensor product of features with steerable attributes, optionally gated."""

    def __init__(self, irreps_in: o3.Irreps, irreps_attr: o3.Irreps, irreps_out: o3.Irreps, gate: bool) -> None:
        super().__init__()
        self.tensor_product = EquivariantTensorProduct(irreps_in, irreps_attr, irreps_out, "o3")
        self.gate = InvariantGate(irreps_out, "o3") if gate else None

    def forward(self, x: Tensor, attr: Tensor) -> Tensor:
        out = self.tensor_product(x, attr)
        return self.gate(out) if self.gate is not None else out


class SEGNNLayer(MessagePassing):
    r"""Steerable message passing conditioned on spherical-harmonic attributes.

    .. math::
        m_{ij} = \phi_m(h_i \oplus h_j \oplus |x_{ij}|^2 \oplus e_{ij};\, a_{ij}), \qquad
        h_i' = h_i + \phi_h(h_i \oplus \tfrac{1}{|N_i|}\textstyle\sum_j m_{ij};\, a_i)

    with :math:`a_{ij} = Y(x_{ij}/|x_{ij}|)`, :math:`a_i` the mean of :math:`a_{ij}` over the
    neighbours, and :math:`\phi` two steerable linear layers (tensor products with the
    attribute), the first gated.
    """

    def __init__(self, irreps_hidden: o3.Irreps, irreps_attr: o3.Irreps, irreps_edge: o3.Irreps) -> None:
        super().__init__(aggr="mean")
        message_in = irreps_hidden + irreps_hidden + o3.Irreps("1x0e") + irreps_edge
        update_in = irreps_hidden + irreps_hidden
        self.message_1 = _SteerableLinear(message_in, irreps_attr, irreps_hidden, gate=True)
        self.message_2 = _SteerableLinear(irreps_hidden, irreps_attr, irreps_hidden, gate=True)
        self.update_1 = _SteerableLinear(update_in, irreps_attr, irreps_hidden, gate=True)
        self.update_2 = _SteerableLinear(irreps_hidden, irreps_attr, irreps_hidden, gate=False)

    def forward(self, h: Tensor, pos: Tensor, edge_index: Tensor, edge_feat: Tensor, edge_sh: Tensor, node_sh: Tensor) -> Tensor:
        messages = self.propagate(edge_index, h=h, pos=pos, edge_feat=edge_feat, edge_sh=edge_sh)
        update = self.update_2(self.update_1(torch.cat([h, messages], dim=-1), node_sh), node_sh)
        return h + update

    def message(self, h_i: Tensor, h_j: Tensor, pos_i: Tensor, pos_j: Tensor, edge_feat: Tensor, edge_sh: Tensor) -> Tensor:
        dist2 = (pos_j - pos_i).pow(2).sum(-1, keepdim=True)
        m = self.message_1(torch.cat([h_i, h_j, dist2, edge_feat], dim=-1), edge_sh)
        return self.message_2(m, edge_sh)


@saveable
class SEGNN(nn.Module):
    r"""O(3)-equivariant SEGNN-style network: embedding, residual SEGNN layers, steerable head.

    Args:
        irreps_in (str or Irreps): Node input irreps.
        hidden_irreps (str or Irreps): Hidden irreps (SEGNN uses ``Nx0e+Nx1o`` for N-body, lmax 1).
        irreps_out (str or Irreps): Node output irreps.
        num_layers (int): Message-passing layers. (default: :obj:`4`)
        lmax_attr (int): Order of the spherical-harmonic attributes. (default: :obj:`1`)
        edge_attr_irreps (str or Irreps, optional): Invariant edge features joined to the messages.
        input_norm (bool): Standardise the input as :class:`SteerableCNN` does (O(3) batch
            statistics, cumulative, used in training too), so that every model of a comparison
            sees inputs of the same scale. (default: :obj:`True`)
        zero_output (bool): Start the last layer at zero, as :class:`SteerableCNN` does, so that
            every model of a comparison starts from the output 0. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`x: (N, d_{in})`, :math:`\mathrm{pos}: (N, 3)`, edge index :math:`(2, E)`
        - **output:** :math:`(N, d_{out})`
    """

    def __init__(
        self,
        irreps_in: IrrepsLike,
        hidden_irreps: IrrepsLike,
        irreps_out: IrrepsLike,
        num_layers: int = 4,
        lmax_attr: int = 1,
        edge_attr_irreps: Optional[IrrepsLike] = None,
        input_norm: bool = True,
        zero_output: bool = True,
    ) -> None:
        super().__init__()
        self.irreps_in = as_irreps(irreps_in, "irreps_in")
        self.irreps_hidden = as_irreps(hidden_irreps, "hidden_irreps")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.irreps_edge = as_irreps(edge_attr_irreps, "edge_attr_irreps", allow_none=True) or o3.Irreps("")
        self.lmax_attr = lmax_attr
        self.group = get_group("o3")
        irreps_attr = o3.Irreps.spherical_harmonics(lmax_attr)
        self.input_norm = running_batch_norm(self.irreps_in, self.group, momentum=None) if input_norm else None
        self.embedding = _SteerableLinear(self.irreps_in, irreps_attr, self.irreps_hidden, gate=False)
        self.layers = nn.ModuleList(SEGNNLayer(self.irreps_hidden, irreps_attr, self.irreps_edge) for _ in range(num_layers))
        self.head_1 = _SteerableLinear(self.irreps_hidden, irreps_attr, self.irreps_hidden, gate=True)
        self.head_2 = _SteerableLinear(self.irreps_hidden, irreps_attr, self.irreps_out, gate=False)
        if zero_output:
            self.head_2.tensor_product.scale_weights_(0.0)

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None) -> Tensor:
        j, i = edge_index
        edge_sh = unit_spherical_harmonics(pos[j] - pos[i], self.lmax_attr)
        node_sh = scatter(edge_sh, i, dim=0, dim_size=x.shape[0], reduce="mean")
        edge_feat = edge_attr if edge_attr is not None else x.new_zeros(edge_index.shape[1], 0)
        h = self.embedding(self.input_norm(x) if self.input_norm is not None else x, node_sh)
        for layer in self.layers:
            h = layer(h, pos, edge_index, edge_feat, edge_sh, node_sh)
        return self.head_2(self.head_1(h, node_sh), node_sh)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_hidden} x {len(self.layers)} -> {self.irreps_out})"
