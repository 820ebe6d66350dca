r"""A steerable CNN on point clouds and graphs, built from the package's convolutions."""
from __future__ import annotations

from typing import Optional, Union

from torch import Tensor, nn

from ..groups import Group, get_group
from ..nn import EquivariantLinear, EquivariantMLP, ImplicitConv, NormGate, StandardConv
from ..nn._irreps import IrrepsLike, as_irreps


class SteerableCNN(nn.Module):
    r"""Embedding, residual steerable convolutions, node-wise :math:`G`-MLP head (paper app. B.2).

    .. math::
        h^{(0)} = W_{emb} x, \qquad
        h^{(t+1)} = h^{(t)} + \sigma\big(\mathrm{Conv}_t(h^{(t)}, \mathrm{pos}, e)\big), \qquad
        y = \mathrm{MLP}_G(h^{(T)})

    Every part is :math:`G`-equivariant, so the model is: outputs transform with ``out_irreps``
    when inputs, positions and attributes transform by any :math:`g \in G` (positions also by
    translations).

    Args:
        in_irreps (str or Irreps): Node input irreps.
        hidden_irreps (str or Irreps): Irreps of the hidden node features.
        out_irreps (str or Irreps): Node output irreps.
        group (str or Group): The symmetry group. (default: ``"o3"``)
        num_layers (int): Number of convolutions. (default: :obj:`4`)
        kernel (str): ``"implicit"`` (:class:`ImplicitConv`) or ``"standard"`` (:class:`StandardConv`).
        edge_attr_irreps, node_attr_irreps (str or Irreps, optional): Attributes fed to the kernels.
        head_layers (int): Linear layers of the head :math:`G`-MLP. (default: :obj:`3`)
        aggr (str): Aggregation of the convolutions. (default: ``"mean"``)
        kernel_hidden_irreps (str or Irreps, optional): Hidden irreps of the implicit kernels' MLP.
        **conv_kwargs: Passed to every convolution (``lmax``, ``mlp_layers``, ``radial_features``, ...).

    Shapes:
        - **input:** :math:`x: (N, d_{in})`, :math:`\mathrm{pos}: (N, 3)`, edge index :math:`(2, E)`
        - **output:** :math:`(N, d_{out})`
    """

    def __init__(
        self,
        in_irreps: IrrepsLike,
        hidden_irreps: IrrepsLike,
        out_irreps: IrrepsLike,
        group: Union[str, Group] = "o3",
        num_layers: int = 4,
        kernel: str = "implicit",
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
        head_layers: int = 3,
        aggr: str = "mean",
        kernel_hidden_irreps: Optional[IrrepsLike] = None,
        **conv_kwargs,
    ) -> None:
        super().__init__()
        if kernel not in ("implicit", "standard"):
            raise ValueError(f"kernel: expected 'implicit' or 'standard', got {kernel!r}")
        self.irreps_in = as_irreps(in_irreps, "in_irreps")
        self.irreps_hidden = as_irreps(hidden_irreps, "hidden_irreps")
        self.irreps_out = as_irreps(out_irreps, "out_irreps")
        self.group = get_group(group)
        self.kernel = kernel
        if kernel == "implicit" and kernel_hidden_irreps is not None:
            conv_kwargs["hidden_irreps"] = kernel_hidden_irreps
        conv = ImplicitConv if kernel == "implicit" else StandardConv
        self.embedding = EquivariantLinear(self.irreps_in, self.irreps_hidden, self.group)
        self.convs = nn.ModuleList(
            conv(self.irreps_hidden, self.irreps_hidden, self.group, edge_attr_irreps=edge_attr_irreps,
                 node_attr_irreps=node_attr_irreps, aggr=aggr, **conv_kwargs)
            for _ in range(num_layers)
        )  # fmt: skip
        self.activations = nn.ModuleList(NormGate(self.irreps_hidden) for _ in range(num_layers))
        self.head = EquivariantMLP(self.irreps_hidden, self.irreps_hidden, self.irreps_out, head_layers, self.group)

    def reset_parameters(self) -> None:
        for module in [self.embedding, *self.convs, *self.activations, self.head]:
            module.reset_parameters()

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        edge_attr: Optional[Tensor] = None,
        node_attr: Optional[Tensor] = None,
    ) -> Tensor:
        h = self.embedding(x)
        for conv, act in zip(self.convs, self.activations):
            h = h + act(conv(h, pos, edge_index, edge_attr, node_attr))
        return self.head(h)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_hidden} x {len(self.convs)} -> "
            f"{self.irreps_out}, group={self.group.name}, kernel={self.kernel})"
        )
