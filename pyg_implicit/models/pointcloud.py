r"""The point-cloud classifier of the paper (sec. 5.3, app. B.2): steerable blocks with
progressive random downsampling and skip connections, invariant readout, global max pooling."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_max_pool

from ..checkpoint import saveable
from ..data import PointHierarchy
from ..groups import Group, get_group
from ..irreps import IrrepsLike, as_irreps
from ..nn import EquivariantLinear, EquivariantMLP, SteerableBlock
from ..nn.data_init import DataDependentInit, match_second_moment
from ..nn.norm import running_batch_norm


INPUTS = {"normal": ("normal", "1x1o"), "normal_axis": ("normal_axis", "1x2e"), "none": (None, "1x0e")}
"""Point features a classifier can read: attribute and irreps (``none``: the constant 1 per point)."""


@saveable
class PointCloudClassifier(DataDependentInit):
    r"""Classify point clouds, invariantly to ``group``.

    .. math::
        h^{(0)} = W_{emb}\, \mathrm{BN}_G(f), \qquad
        h^{(l)}_i = \cos\theta\, h^{(l-1)}_i + \sin\theta\, \mathrm{MLP}_G\Big(h^{(l-1)}_i \oplus
            \tfrac{1}{\sqrt{k}} \sum_{j \in \mathrm{kNN}_{l-1}(i)} K(x_j - x_i)\, h^{(l-1)}_j\Big), \quad i \in P_l, \qquad
        \mathrm{logits} = \mathrm{MLP}\big(\max_{i \in P_L} \mathrm{MLP}_G(h^{(L)}_i)\big)

    The point features :math:`f` (``input``): the normals (``"normal"``, a vector field ``1x1o``),
    the sign-free normal axes of :class:`~pyg_implicit.transforms.EstimateNormalAxes`
    (``"normal_axis"``, ``1x2e``, for clouds without normals) or nothing (``"none"``: the constant
    scalar 1, the geometry then enters through the kernels only), standardised per
    :math:`G`-invariant component (:class:`~pyg_implicit.nn.EquivariantBatchNorm`, running
    statistics) and embedded linearly. Level :math:`l` keeps the points :math:`P_l \subset P_{l-1}`
    of a :class:`~pyg_implicit.transforms.PointHierarchy` (from
    :class:`~pyg_implicit.transforms.KNNHierarchy`); its block
    (:class:`~pyg_implicit.nn.SteerableBlock` on the bipartite kNN graph :math:`P_{l-1} \to P_l`)
    convolves the features of level :math:`l-1` onto the kept points, updates each with a
    :math:`G`-MLP of its own state and the message, and adds the update to the point's own
    features (a skip connection through every level, paper app. B.2, Table 1 model). A node-wise
    :math:`G`-MLP maps the last level's features to ``readout`` :math:`G`-invariant scalars (all
    invariants of the restricted fields: the z-components of vectors under :math:`SO(2)`, ...),
    max-pooled per shape and classified by a 2-layer MLP. The logits are invariant to every
    element of ``group`` acting on positions and point features. The embedding and every block
    keep the second moment of their input at initialisation (data-dependent, on the first training
    batch), so the depth does not shrink or grow the features.

    Args:
        hidden_irreps (str or Irreps): Irreps of the hidden point features.
        num_classes (int): Number of classes. (default: :obj:`40`)
        group (str or Group): Symmetry group. (default: ``"o3"``)
        num_layers (int): Number of blocks = levels of the hierarchy. (default: :obj:`6`)
        kernel (str): ``"implicit"`` or ``"standard"``.
        readout (int): Invariant features per point and width of the MLP. (default: :obj:`128`)
        update_layers (int): Linear layers of every block's node update. (default: :obj:`3`)
        activation (str): Nonlinearity of the :math:`G`-MLPs: ``"gate"``
            (:class:`~pyg_implicit.nn.InvariantGate`) or ``"quotient_elu"`` (the paper's).
            (default: ``"gate"``)
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
        update_layers: int = 3,
        activation: str = "gate",
        kernel_hidden_irreps: Optional[IrrepsLike] = None,
        input: str = "normal",
        **conv_kwargs,
    ) -> None:
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"input: expected one of {sorted(INPUTS)}, got {input!r}")
        self.input_key, irreps_input = INPUTS[input]
        if num_layers < 1:
            raise ValueError(f"num_layers: expected a positive int, got {num_layers!r}")
        self.group, self.kernel, self.num_layers = get_group(group), kernel, num_layers
        hidden = as_irreps(hidden_irreps, "hidden_irreps")
        if kernel == "implicit" and kernel_hidden_irreps is not None:
            conv_kwargs["hidden_irreps"] = kernel_hidden_irreps
        # a constant input has nothing to standardise (its mean is all of it)
        self.input_norm = running_batch_norm(irreps_input, self.group, momentum=None) if self.input_key else None
        self.embedding = EquivariantLinear(irreps_input, hidden, self.group)
        self.blocks = nn.ModuleList(
            SteerableBlock(hidden, self.group, kernel, update_layers=update_layers, activation=activation, **conv_kwargs)
            for _ in range(num_layers)
        )  # fmt: skip
        self.head = EquivariantMLP(hidden, hidden, as_irreps(f"{readout}x0e", "readout"), 2, self.group, activation)
        self.mlp = nn.Sequential(nn.Linear(readout, readout), nn.SiLU(), nn.Linear(readout, num_classes))
        self._set_init_pending(True)  # the embedding's scale, from the first training batch

    def reset_parameters(self) -> None:
        for module in [self.input_norm, self.embedding, *self.blocks, self.head, *self.mlp[::2]]:
            if module is not None:
                module.reset_parameters()
        self._set_init_pending(True)

    def forward(self, data: PointHierarchy) -> Tensor:
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
            features = self.input_norm(data[self.input_key])
        h = self.embedding(features)
        if self._init_pending and self.training:
            h = h * match_second_moment(self.embedding, h, features)
            self._set_init_pending(False)
        for level, block in enumerate(self.blocks, start=1):
            index = data[f"index_{level}"]
            coarse = pos[index]
            h = block((h, h[index]), (pos, coarse), data[f"edge_index_{level}"])
            pos, batch = coarse, batch[index]
        return self.mlp(global_max_pool(self.head(h), batch, size=getattr(data, "num_graphs", None)))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.embedding.irreps_out} x {self.num_layers} -> {self.mlp[-1].out_features} classes, "
                f"group={self.group.name}, kernel={self.kernel})")  # fmt: skip
