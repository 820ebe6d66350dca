r"""The point-cloud classifier of the paper (sec. 5.3, app. B.2): steerable convolutions with
progressive random downsampling, invariant readout, global max pooling."""
from __future__ import annotations

from typing import Optional, Union

import torch
from e3nn import nn as e3nn_nn
from torch import Tensor, nn
from torch_geometric.nn import global_max_pool

from ..checkpoint import saveable
from ..groups import Group, get_group
from ..nn import EquivariantLinear, ImplicitConv, StandardConv
from ..irreps import IrrepsLike, as_irreps
from ..nn.activation import activation as make_activation
from ..data import PointHierarchy


INPUTS = {"normal": ("normal", "1x1o"), "normal_axis": ("normal_axis", "1x2e"), "none": (None, "1x0e")}
"""Point features a classifier can read: attribute and irreps (``none``: the constant 1 per point)."""


@saveable
class PointCloudClassifier(nn.Module):
    r"""Classify point clouds, invariantly to ``group``.

    .. math::
        h^{(0)} = W_{emb}\, f, \qquad
        h^{(l)} = \sigma\big(\mathrm{BN}(\mathrm{Conv}_l(h^{(l-1)}; P_{l-1} \to P_l))\big), \qquad
        s = \mathrm{Conv}_L(h^{(L-1)}) \in \mathbb{R}^{C}, \qquad
        \mathrm{logits} = \mathrm{MLP}\big(\max_{i \in P_L} s_i\big)

    The point features :math:`f` (``input``): the normals (``"normal"``, a vector field ``1x1o``),
    the sign-free normal axes of :class:`~pyg_implicit.transforms.EstimateNormalAxes`
    (``"normal_axis"``, ``1x2e``, for clouds without normals) or nothing (``"none"``: the constant
    scalar 1, the geometry then enters through the kernels only) are embedded linearly; convolution :math:`l`
    maps the points :math:`P_{l-1}` of level :math:`l-1` to the kept points :math:`P_l` of level
    :math:`l` over the bipartite kNN graph of a :class:`~pyg_implicit.transforms.PointHierarchy`
    (from :class:`~pyg_implicit.transforms.KNNHierarchy`); BN is e3nn's equivariant batch norm,
    :math:`\sigma` the equivariant nonlinearity; the last convolution returns ``readout`` invariant
    scalars per point, max-pooled per shape and classified by a 2-layer MLP. The logits are
    invariant to every element of ``group`` acting on positions and normals.

    Args:
        hidden_irreps (str or Irreps): Irreps of the hidden point features.
        num_classes (int): Number of classes. (default: :obj:`40`)
        group (str or Group): Symmetry group. (default: ``"o3"``)
        num_layers (int): Number of convolutions = levels of the hierarchy. (default: :obj:`6`)
        kernel (str): ``"implicit"`` or ``"standard"``.
        readout (int): Invariant features per point and width of the MLP. (default: :obj:`128`)
        activation (str): ``"gate"`` or ``"quotient_elu"`` (the paper's). (default: ``"gate"``)
        kernel_hidden_irreps (str or Irreps, optional): Hidden irreps of the implicit kernels' MLP.
        input (str): The point features: ``"normal"``, ``"normal_axis"`` or ``"none"``. (default: ``"normal"``)
        **conv_kwargs: Passed to every convolution (``lmax``, ``mlp_layers``, ``radial_features``, ...).

    Shapes:
        - **input:** a batch of :class:`~pyg_implicit.transforms.PointHierarchy` with ``pos``
          :math:`(N, 3)`, the ``input`` feature and ``num_layers`` levels
        - **output:** :math:`(B, \text{num\_classes})`
    """

    def __init__(
        self,
        hidden_irreps: IrrepsLike,
        num_classes: int = 40,
        group: Union[str, Group] = "o3",
        num_layers: int = 6,
        kernel: str = "implicit",
        readout: int = 128,
        activation: str = "gate",
        kernel_hidden_irreps: Optional[IrrepsLike] = None,
        input: str = "normal",
        **conv_kwargs,
    ) -> None:
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"input: expected one of {sorted(INPUTS)}, got {input!r}")
        self.input_key, irreps_input = INPUTS[input]
        if kernel not in ("implicit", "standard"):
            raise ValueError(f"kernel: expected 'implicit' or 'standard', got {kernel!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers: expected a positive int, got {num_layers!r}")
        self.group, self.kernel, self.num_layers = get_group(group), kernel, num_layers
        hidden = as_irreps(hidden_irreps, "hidden_irreps")
        if kernel == "implicit" and kernel_hidden_irreps is not None:
            conv_kwargs["hidden_irreps"] = kernel_hidden_irreps
        conv = ImplicitConv if kernel == "implicit" else StandardConv
        self.embedding = EquivariantLinear(irreps_input, hidden, self.group)
        widths = [hidden] * (num_layers - 1) + [as_irreps(f"{readout}x0e", "readout")]
        self.convs = nn.ModuleList(conv(hidden, out, self.group, aggr="mean", **conv_kwargs) for out in widths)
        self.norms = nn.ModuleList(e3nn_nn.BatchNorm(hidden) for _ in range(num_layers - 1))
        self.activations = nn.ModuleList(make_activation(activation, hidden, self.group) for _ in range(num_layers - 1))
        self.mlp = nn.Sequential(nn.Linear(readout, readout), nn.SiLU(), nn.Linear(readout, num_classes))

    def forward(self, data) -> Tensor:
        levels = data.num_levels if isinstance(data, PointHierarchy) else 0
        if levels != self.num_layers:
            raise ValueError(f"data: expected a PointHierarchy with {self.num_layers} levels (KNNHierarchy sizes), got {levels}")
        pos = data.pos
        batch = data.batch if getattr(data, "batch", None) is not None else torch.zeros_like(pos[:, 0], dtype=torch.long)
        if self.input_key is None:
            features = pos.new_ones(pos.shape[0], 1)
        elif getattr(data, self.input_key, None) is None:
            raise ValueError(f"data: the classifier reads {self.input_key!r} (input=...), which the batch does not have")
        else:
            features = data[self.input_key]
        h = self.embedding(features)
        for level, conv in enumerate(self.convs, start=1):
            index = data[f"index_{level}"]
            coarse = pos[index]
            h = conv((h, None), (pos, coarse), data[f"edge_index_{level}"])
            if level < self.num_layers:
                h = self.activations[level - 1](self.norms[level - 1](h))
            pos, batch = coarse, batch[index]
        return self.mlp(global_max_pool(h, batch, size=getattr(data, "num_graphs", None)))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.convs[0].irreps_in} x {self.num_layers} -> {self.mlp[-1].out_features} classes, "
                f"group={self.group.name}, kernel={self.kernel})")  # fmt: skip
