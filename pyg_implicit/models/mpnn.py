r"""A non-equivariant message-passing network (the paper's MPNN baseline)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from ..checkpoint import saveable


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.SiLU(), nn.Linear(d_hidden, d_out))


class MPNNLayer(MessagePassing):
    r""":math:`h_i' = h_i + \phi_h(h_i, \mathrm{mean}_j\, \phi_m(h_i, h_j, x_j - x_i, |x_j - x_i|^2, e_{ij}))`."""

    def __init__(self, hidden: int, edge_dim: int) -> None:
        super().__init__(aggr="mean")
        self.message_mlp = _mlp(2 * hidden + 4 + edge_dim, hidden, hidden)
        self.update_mlp = _mlp(2 * hidden, hidden, hidden)

    def forward(self, h: Tensor, pos: Tensor, edge_index: Tensor, edge_feat: Tensor) -> Tensor:
        messages = self.propagate(edge_index, h=h, pos=pos, edge_feat=edge_feat)
        return h + self.update_mlp(torch.cat([h, messages], dim=-1))

    def message(self, h_i: Tensor, h_j: Tensor, pos_i: Tensor, pos_j: Tensor, edge_feat: Tensor) -> Tensor:
        rel = pos_j - pos_i
        return self.message_mlp(torch.cat([h_i, h_j, rel, rel.pow(2).sum(-1, keepdim=True), edge_feat], dim=-1))


@saveable
class MPNN(nn.Module):
    r"""Plain message passing on raw coordinates: the same architecture as :class:`SEGNN` with
    every equivariant map replaced by an MLP (not equivariant to any rotation).

    Args:
        in_dim (int): Node input width.
        hidden (int): Hidden width.
        out_dim (int): Node output width.
        num_layers (int): Message-passing layers. (default: :obj:`4`)
        edge_dim (int): Edge feature width. (default: :obj:`0`)
        zero_output (bool): Start the last layer at zero, as :class:`SteerableCNN` does, so that
            every model of a comparison starts from the output 0. (default: :obj:`True`)
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int = 4, edge_dim: int = 0, zero_output: bool = True) -> None:
        super().__init__()
        self.edge_dim = edge_dim
        self.embedding = nn.Linear(in_dim, hidden)
        self.layers = nn.ModuleList(MPNNLayer(hidden, edge_dim) for _ in range(num_layers))
        self.head = _mlp(hidden, hidden, out_dim)
        if zero_output:
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None) -> Tensor:
        edge_feat = edge_attr if edge_attr is not None else x.new_zeros(edge_index.shape[1], 0)
        if edge_feat.shape[1] != self.edge_dim:
            raise ValueError(f"edge_attr: expected width {self.edge_dim}, got {edge_feat.shape[1]}")
        h = self.embedding(x)
        for layer in self.layers:
            h = layer(h, pos, edge_index, edge_feat)
        return self.head(h)
