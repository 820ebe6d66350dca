r"""A steerable CNN on point clouds and graphs, built from the package's blocks."""
from __future__ import annotations

from typing import Optional, Union

from torch import Tensor, nn

from ..checkpoint import saveable
from ..groups import Group, get_group
from ..nn import EquivariantLinear, EquivariantMLP, SteerableBlock
from ..nn._irreps import IrrepsLike, as_irreps
from ..nn.norm import running_batch_norm


@saveable
class SteerableCNN(nn.Module):
    r"""Normalised embedding, :class:`~pyg_implicit.nn.SteerableBlock` s, node-wise :math:`G`-MLP head (paper app. B.2).

    .. math::
        h^{(0)} = W_{emb}\, \mathrm{BN}_G(x), \qquad
        h^{(t+1)} = \mathrm{Block}_t\big(h^{(t)}, \mathrm{pos}, e, a\big), \qquad
        y = \mathrm{MLP}_G\big(\mathrm{BN}_G(h^{(T)})\big)

    :math:`\mathrm{BN}_G` (:class:`~pyg_implicit.nn.EquivariantBatchNorm`) standardises every
    :math:`G`-invariant component and every :math:`G`-stable block by its own statistics, so inputs
    of very different scales (vertical and horizontal velocities under :math:`SO(2)`) reach the
    network at unit scale, and so does the head's input. Its running statistics normalise in
    training too (cumulative for the input, an average over the last ~100 batches for the head):
    a common rescaling that keeps every node's magnitude and adds no batch noise. Every part is :math:`G`-equivariant, so the
    model is: outputs transform with ``irreps_out`` when inputs, positions and attributes transform
    by any :math:`g \in G` (positions also by translations).

    Args:
        irreps_in (str or Irreps): Node input irreps.
        hidden_irreps (str or Irreps): Irreps of the hidden node features.
        irreps_out (str or Irreps): Node output irreps.
        group (str or Group): The symmetry group. (default: ``"o3"``)
        num_layers (int): Number of blocks (convolutions). (default: :obj:`4`)
        kernel (str): ``"implicit"`` (:class:`~pyg_implicit.nn.ImplicitConv`) or ``"standard"``
            (:class:`~pyg_implicit.nn.StandardConv`).
        edge_attr_irreps, node_attr_irreps (str or Irreps, optional): Attributes fed to the kernels.
        kernel_node_features (bool): The kernels also see the current features of both endpoints.
            (default: :obj:`True`)
        norm (bool): Standardise the input per invariant component and stable block, and
            pre-normalise every block (:class:`~pyg_implicit.nn.SteerableBlock`). (default: :obj:`True`)
        head_layers (int): Linear layers of the head :math:`G`-MLP. (default: :obj:`2`)
        aggr (str): Aggregation of the convolutions. ``"variance_preserving"`` (PyG's
            :math:`\frac{1}{\sqrt{|\mathcal{N}(i)|}}\sum_j`, the e3nn / NequIP normalisation: the sum of
            :math:`n` uncorrelated unit-variance messages keeps unit variance) or any PyG aggregation.
            (default: ``"variance_preserving"``)
        kernel_hidden_irreps (str or Irreps, optional): Hidden irreps of the implicit kernels' MLP.
        **conv_kwargs: Passed to every convolution (``lmax``, ``mlp_layers``, ``radial_features``, ...).

    Shapes:
        - **input:** :math:`x: (N, d_{in})`, :math:`\mathrm{pos}: (N, 3)`, edge index :math:`(2, E)`
        - **output:** :math:`(N, d_{out})`
    """

    def __init__(
        self,
        irreps_in: IrrepsLike,
        hidden_irreps: IrrepsLike,
        irreps_out: IrrepsLike,
        group: Union[str, Group] = "o3",
        num_layers: int = 4,
        kernel: str = "implicit",
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
        kernel_node_features: bool = True,
        norm: bool = True,
        head_layers: int = 2,
        aggr: str = "variance_preserving",
        kernel_hidden_irreps: Optional[IrrepsLike] = None,
        **conv_kwargs,
    ) -> None:
        super().__init__()
        self.irreps_in = as_irreps(irreps_in, "irreps_in")
        self.irreps_hidden = as_irreps(hidden_irreps, "hidden_irreps")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.group = get_group(group)
        self.kernel = kernel
        if kernel == "implicit" and kernel_hidden_irreps is not None:
            conv_kwargs["hidden_irreps"] = kernel_hidden_irreps
        self.input_norm = running_batch_norm(self.irreps_in, self.group, momentum=None) if norm else None
        self.head_norm = running_batch_norm(self.irreps_hidden, self.group) if norm else None
        self.embedding = EquivariantLinear(self.irreps_in, self.irreps_hidden, self.group)
        self.blocks = nn.ModuleList(
            SteerableBlock(self.irreps_hidden, self.group, kernel, edge_attr_irreps=edge_attr_irreps,
                           node_attr_irreps=node_attr_irreps, kernel_node_features=kernel_node_features, norm=norm,
                           aggr=aggr, **conv_kwargs)
            for _ in range(num_layers)
        )  # fmt: skip
        self.head = EquivariantMLP(self.irreps_hidden, self.irreps_hidden, self.irreps_out, head_layers, self.group)

    def reset_parameters(self) -> None:
        for module in [self.input_norm, self.embedding, *self.blocks, self.head_norm, self.head]:
            if module is not None:
                module.reset_parameters()

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        edge_attr: Optional[Tensor] = None,
        node_attr: Optional[Tensor] = None,
    ) -> Tensor:
        h = self.embedding(self.input_norm(x) if self.input_norm is not None else x)
        for block in self.blocks:
            h = block(h, pos, edge_index, edge_attr, node_attr)
        return self.head(self.head_norm(h) if self.head_norm is not None else h)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_hidden} x {len(self.blocks)} -> "
            f"{self.irreps_out}, group={self.group.name}, kernel={self.kernel})"
        )
