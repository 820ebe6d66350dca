r"""A message-passing block: a steerable convolution, then a :math:`G`-MLP update of every node."""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from e3nn import o3
from torch import Tensor
from torch_geometric.typing import PairTensor

from ..groups import Group, get_group
from .data_init import DataDependentInit
from ..irreps import IrrepsLike, as_irreps
from .conv import ImplicitConv, StandardConv, _pair
from .mlp import EquivariantMLP
from .norm import running_batch_norm

KERNELS = {"implicit": ImplicitConv, "standard": StandardConv}


class SteerableBlock(DataDependentInit):
    r"""Convolution, node update and residual connection, :math:`G`-equivariant for any :math:`G \le O(3)`.

    .. math::
        \bar h = \mathrm{BN}_G(h)\ (\text{or } h), \qquad
        m_i = \bigoplus_{j \in \mathcal{N}(i)} K\big(x_j - x_i,\; e_{ij},\; a_i \oplus \bar h_i,\; a_j \oplus \bar h_j\big)\, \bar h_j,
        \qquad
        h_i' = \cos\theta\; h_i + \sin\theta\; \mathrm{MLP}_G(\bar h_i \oplus m_i)

    The message is a steerable convolution (:class:`~pyg_implicit.nn.ImplicitConv` or
    :class:`~pyg_implicit.nn.StandardConv`) whose kernel may see the current features of both
    endpoints (``kernel_node_features``, paper app. B.1: the implicit kernel's input includes the
    node features, so a message depends on both ends, as in SEGNN). The update is a
    :math:`G`-MLP of the node's own state and its aggregated message (SEGNN, EGNN, NequIP all
    update a node this way), so a node's features pass through nonlinearities every block. The
    residual weights satisfy :math:`\cos^2\theta + \sin^2\theta = 1` (e3nn's convolution uses
    :math:`\theta = \pi/8`): with unit-variance, uncorrelated terms the second moment of :math:`h`
    stays one however many blocks are stacked; the update is correlated with :math:`h`, so on the
    first training batch its last layer is rescaled to make that hold exactly (LSUV-style).

    With ``norm=True`` the block reads its input through an
    :class:`~pyg_implicit.nn.EquivariantBatchNorm` (pre-normalisation, as in pre-LN transformers)
    while the residual stream :math:`h` keeps its scale: a message is bilinear in the features when
    the kernel sees them, so without it a deep stack of such blocks can grow its features without
    bound (measured: second moment 1.7e4 after 8 SO(2) blocks at initialisation). The norm
    normalises with its running statistics (``use_batch_statistics=False``, ``momentum=0.01``): a
    common rescaling of all nodes that keeps each node's magnitude and adds no batch noise (batch
    statistics cost 5x in MSE on the N-body task). Without kernel node features it is off by
    default: it slowed the N-body regression (9e-4 against 1.2e-4 at k = 0).

    On a bipartite graph (``h = (h_source, h_target)``, ``pos = (pos_source, pos_target)``, as PyG's
    convolutions take it) the messages flow from the source to the target nodes and the output
    lives on the targets: :math:`h_i` above is ``h_target``. With the targets a subset of the
    sources (``h_target = h_source[index]``) this is a downsampling block with a skip connection
    (:class:`~pyg_implicit.models.PointCloudClassifier`).

    Args:
        irreps (str or Irreps): Irreps of the node features :math:`h` (input and output).
        group (str or Group): The symmetry group. (default: ``"o3"``)
        kernel (str): ``"implicit"`` or ``"standard"``. (default: ``"implicit"``)
        edge_attr_irreps (str or Irreps, optional): Irreps of edge attributes :math:`e_{ij}`.
        node_attr_irreps (str or Irreps, optional): Irreps of fixed node attributes :math:`a_i`.
        kernel_node_features (bool): Feed :math:`h_i, h_j` to the kernel. (default: :obj:`False`)
        update_layers (int): Linear layers of the update :math:`G`-MLP. Unless the kernel sees the
            features, the message is linear in them, so the update holds every nonlinearity of the
            block; three layers give it the depth of a message MLP plus an update MLP (EGNN, our
            MPNN). Measured on the N-body task (SO(2), 40 epochs, 3 seeds, equal parameter count,
            k = 1000): test MSE 2.4e-3 with 2 layers, 1.5e-3 with 3, 1.1e-3 with 4 (k = 0 and 100: 3
            within the seed spread of 2, 4 worse); wider hidden layers instead (2 layers, twice the
            width) 2.6e-3. (default: :obj:`3`)
        activation (str): Nonlinearity of the update: ``"gate"``
            (:class:`~pyg_implicit.nn.InvariantGate`), ``"scalar_gate"`` (the same with
            ``scalar_invariants=True``) or ``"quotient_elu"``. (default: ``"gate"``)
        kernel_activation (str, optional): Nonlinearity of the implicit kernel's :math:`G`-MLP
            (:class:`~pyg_implicit.nn.ImplicitKernel`'s ``activation``; the standard kernel has
            none). (default: :obj:`None`, the kernel's default)
        norm (bool): Pre-normalise the input with :class:`~pyg_implicit.nn.EquivariantBatchNorm`;
            needed with ``kernel_node_features``. (default: :obj:`False`)
        residual_angle (float): :math:`\theta`. (default: :math:`\pi/8`)
        aggr (str): Aggregation of the messages. ``"variance_preserving"`` (PyG's
            :math:`\frac{1}{\sqrt{|\mathcal{N}(i)|}}\sum_j`, the e3nn / NequIP normalisation: the sum of
            :math:`n` uncorrelated unit-variance messages keeps unit variance) or any PyG aggregation.
            (default: ``"variance_preserving"``)
        **conv_kwargs: Passed to the convolution (``lmax``, ``hidden_irreps``, ``mlp_layers``, ...).

    Shapes:
        - **input:** :math:`h: (N, \dim)` or :math:`((N_s, \dim), (N_t, \dim))`, :math:`\mathrm{pos}: (N, 3)`
          or :math:`((N_s, 3), (N_t, 3))`, edge index :math:`(2, E)`, edge attributes :math:`(E, d_e)`,
          node attributes :math:`(N, d_a)` or a pair
        - **output:** :math:`(N, \dim)` or :math:`(N_t, \dim)`
    """

    def __init__(
        self,
        irreps: IrrepsLike,
        group: Union[str, Group] = "o3",
        kernel: str = "implicit",
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
        kernel_node_features: bool = False,
        update_layers: int = 3,
        activation: str = "gate",
        kernel_activation: Optional[str] = None,
        norm: bool = False,
        residual_angle: float = math.pi / 8,
        aggr: str = "variance_preserving",
        **conv_kwargs,
    ) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {sorted(KERNELS)}, got {kernel!r}")
        if not isinstance(update_layers, int) or update_layers < 1:
            raise ValueError(f"update_layers: expected an int >= 1 (linear layers of the node update), got {update_layers!r}")
        if kernel_activation is not None:
            if kernel != "implicit":
                raise ValueError(f"kernel_activation: only the implicit kernel has a G-MLP, got kernel={kernel!r}")
            conv_kwargs["activation"] = kernel_activation
        self.irreps_in = self.irreps_out = as_irreps(irreps, "irreps")
        self.group = get_group(group)
        self.kernel_node_features = kernel_node_features
        self.norm = running_batch_norm(self.irreps_in, self.group) if norm else None
        node_attr = as_irreps(node_attr_irreps, "node_attr_irreps", allow_none=True)
        kernel_attr = (node_attr or o3.Irreps("")) + (self.irreps_in if kernel_node_features else o3.Irreps(""))
        self.conv = KERNELS[kernel](
            self.irreps_in, self.irreps_in, self.group, edge_attr_irreps=edge_attr_irreps,
            node_attr_irreps=kernel_attr if kernel_attr.dim else None, root_weight=False, bias=False, aggr=aggr,
            **conv_kwargs,
        )  # fmt: skip
        self.update = EquivariantMLP(self.irreps_in + self.irreps_in, self.irreps_in, self.irreps_in, update_layers, self.group, activation)
        self.residual_angle = residual_angle
        self._set_init_pending(True)  # the update's scale, from the first training batch

    def reset_parameters(self) -> None:
        if self.norm is not None:
            self.norm.reset_parameters()
        self.conv.reset_parameters()
        self.update.reset_parameters()
        self._set_init_pending(True)

    def forward(
        self,
        h: Union[Tensor, PairTensor],
        pos: Union[Tensor, PairTensor],
        edge_index: Tensor,
        edge_attr: Optional[Tensor] = None,
        node_attr: Optional[Union[Tensor, PairTensor]] = None,
    ) -> Tensor:
        h_source, h_target = _pair(h)
        x_source, x_target = self._normalize(h_source, h_target, isinstance(h, Tensor))
        if self.kernel_node_features:
            a_source, a_target = _pair(node_attr)
            node_attr = (x_source if a_source is None else torch.cat([a_source, x_source], dim=-1),
                         x_target if a_target is None else torch.cat([a_target, x_target], dim=-1))  # fmt: skip
        m = self.conv((x_source, x_target), pos, edge_index, edge_attr, node_attr)
        u = self.update(torch.cat([x_target, m], dim=-1))
        c, s = math.cos(self.residual_angle), math.sin(self.residual_angle)
        if self._init_pending and self.training and h_target.shape[0]:
            u = u * self._initialize_from_data(h_target, u, c, s)
        return c * h_target + s * u

    def _normalize(self, h_source: Tensor, h_target: Tensor, same: bool) -> Tuple[Tensor, Tensor]:
        """The norm's input and output; of the two sides together (one statistics update) when they differ."""
        if self.norm is None:
            return h_source, h_target
        if same:
            x = self.norm(h_source)
            return x, x
        x = self.norm(torch.cat([h_source, h_target]))
        return x[: h_source.shape[0]], x[h_source.shape[0] :]

    @torch.no_grad()
    def _initialize_from_data(self, h: Tensor, u: Tensor, c: float, s: float) -> float:
        r"""On the first training batch, scale the update's last layer by the :math:`a > 0` with
        :math:`\mathbb{E}|c\,h + s\,a\,u|^2 = \mathbb{E}|h|^2` (data-dependent initialisation, as in
        LSUV): the update sees :math:`h`, so it correlates with it and a fixed :math:`\theta` alone
        let an SO(2) stack grow its features 2.5x over 8 blocks at initialisation."""
        A, B, C = h.pow(2).mean(), (h * u).mean(), u.pow(2).mean()
        a = 1.0
        if C > 0:
            a = float((-c * B + (c * c * B * B + s * s * C * A).sqrt()) / (s * C))
            self.update.layers[-1].scale_weights_(a)
        self._set_init_pending(False)
        return a

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.irreps_in}, group={self.group.name}, "
                f"kernel={self.conv.kernel.__class__.__name__}, kernel_node_features={self.kernel_node_features})")  # fmt: skip

