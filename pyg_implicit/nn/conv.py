r"""Steerable point convolutions as PyG ``MessagePassing`` layers."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from e3nn import o3
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_edge_index

from ..groups import Group
from ..irreps import IrrepsLike, check_features
from .kernel import ImplicitKernel, StandardKernel, SteerableKernel
from .linear import EquivariantLinear, invariant_bias_vector, register_invariant_bias

PairTensor = Tuple[Tensor, Tensor]
PairOptTensor = Tuple[Optional[Tensor], Optional[Tensor]]


class SteerableConv(MessagePassing):
    r"""A steerable point convolution with a given kernel.

    .. math::
        f'_i = W_{root} f_i + b + \bigoplus_{j \in \mathcal{N}(i)} K(x_j - x_i,\; e_{ij}, a_i, a_j)\, f_j

    with :math:`\bigoplus` the aggregation (sum by default), :math:`K` a
    :class:`~pyg_implicit.nn.SteerableKernel`, :math:`W_{root}` a :math:`G`-equivariant linear map
    (the self-interaction of e3nn / NequIP: a node's own features reach its output through a
    learned map, not only through messages) and :math:`b` a :math:`G`-invariant bias. If :math:`K`
    satisfies :math:`K(g x, \rho_z(g) z) = \rho_{out}(g) K(x, z) \rho_{in}(g)^{-1}`, the layer is
    equivariant to :math:`G` and to translations. :class:`ImplicitConv` and :class:`StandardConv`
    are this layer with the two kernels of the package.

    Args:
        kernel (SteerableKernel): The kernel.
        root_weight (bool): Add the transformed features of the target node, :math:`W_{root} f_i`
            (skipped for bipartite input whose target features are ``None``, as in PyG).
            (default: :obj:`True`)
        bias (bool): Add a learned :math:`G`-invariant bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of :class:`torch_geometric.nn.conv.MessagePassing`
            (``aggr="add"`` by default, ``flow``, ...).

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, d_{in})` or
          :math:`((|\mathcal{V_s}|, d_{in}), (|\mathcal{V_t}|, *))` if bipartite,
          positions :math:`(|\mathcal{V}|, 3)` or :math:`((|\mathcal{V_s}|, 3), (|\mathcal{V_t}|, 3))`,
          edge indices :math:`(2, |\mathcal{E}|)` (or ``EdgeIndex``, or a sparse adjacency
          :math:`(|\mathcal{V}_t|, |\mathcal{V}_s|)` as in PyG, whose entries are the edges in
          row-major order), edge attributes :math:`(|\mathcal{E}|, d_e)`,
          node attributes :math:`(|\mathcal{V}|, d_a)` or a pair
        - **output:** node features :math:`(|\mathcal{V}_t|, d_{out})`
    """

    def __init__(self, kernel: SteerableKernel, root_weight: bool = True, bias: bool = True, **kwargs) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        self.kernel = kernel
        self.irreps_in: o3.Irreps = kernel.irreps_in
        self.irreps_out: o3.Irreps = kernel.irreps_out
        self.group: Group = kernel.group
        self._dim_in, self._dim_out = self.irreps_in.dim, self.irreps_out.dim
        self.root_weight = root_weight
        self.lin_root = EquivariantLinear(self.irreps_in, self.irreps_out, self.group, bias=False) if root_weight else None
        self.bias = None
        self._bias_fields = register_invariant_bias(self, self.irreps_out, self.group) if bias else ()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.kernel.reset_parameters()
        if self.lin_root is not None:
            self.lin_root.reset_parameters()
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(
        self,
        x: Union[Tensor, PairOptTensor],
        pos: Union[Tensor, PairTensor],
        edge_index: Union[Tensor, SparseTensor],
        edge_attr: Optional[Tensor] = None,
        node_attr: Optional[Union[Tensor, PairTensor]] = None,
    ) -> Tensor:
        x = _pair(x)
        pos = _pair(pos)
        node_attr = _pair(node_attr)
        src = 0 if self.flow == "source_to_target" else 1  # which side of the pairs edge_index[src] gathers
        check_features(x[src], self._dim_in, "x", self.irreps_in)
        for p in pos:
            if not isinstance(p, Tensor) or p.dim() != 2 or p.shape[1] != 3:
                raise ValueError(f"pos: expected shape (num_nodes, 3), got {getattr(p, 'shape', type(p))}")
        size = (pos[0].shape[0], pos[1].shape[0])
        if size[0] == 0 or size[1] == 0:
            raise ValueError(f"pos: empty graph (source, target node counts {size})")
        if x[src].shape[0] != size[src]:
            raise ValueError(f"x: expected {size[src]} rows (one per source node), got {x[src].shape[0]}")
        edge_index = _check_edge_index(edge_index, size, self.flow)
        if edge_attr is not None and edge_attr.shape[0] != edge_index.shape[1]:
            raise ValueError(f"edge_attr: expected {edge_index.shape[1]} rows (one per edge), got {edge_attr.shape[0]}")
        for a, n in zip(node_attr, size):
            if a is not None and a.shape[0] != n:
                raise ValueError(f"node_attr: expected {n} rows (one per node), got {a.shape[0]}")
        if (node_attr[0] is None) != (node_attr[1] is None):
            raise ValueError("node_attr: give it for both source and target nodes")
        if node_attr[0] is None:
            node_attr = None
        _check_devices_and_dtypes(self, x[src], pos[0], edge_index, edge_attr, node_attr)
        if not torch.compiler.is_compiling():  # value checks sync with the device: kept out of compiled graphs
            _check_values(pos, edge_index, size)
        # propagate_type: (x_source: Tensor, pos: PairTensor, edge_attr: OptTensor, node_attr: PairOptTensor)
        out = self.propagate(edge_index, x_source=x[src], pos=pos, edge_attr=edge_attr, node_attr=node_attr, size=size)
        x_root = x[1 - src]
        if self.lin_root is not None and x_root is not None:
            check_features(x_root, self._dim_in, "x", self.irreps_in)
            if x_root.shape[0] != size[1 - src]:
                raise ValueError(f"x: expected {size[1 - src]} rows (one per target node), got {x_root.shape[0]}")
            out = out + self.lin_root(x_root)
        if self.bias is not None:
            out = out + self.bias_vector().to(out)
        return out

    def bias_vector(self) -> Tensor:
        """The :math:`G`-invariant bias ``[dim irreps_out]`` (zeros without ``bias``)."""
        return invariant_bias_vector(self, self._bias_fields, self._dim_out)

    def message(
        self,
        x_source: Tensor,
        edge_index_j: Tensor,
        pos_i: Tensor,
        pos_j: Tensor,
        edge_attr: Optional[Tensor],
        node_attr_i: Optional[Tensor],
        node_attr_j: Optional[Tensor],
    ) -> Tensor:
        # K(x_j - x_i) f_j for every edge; f_j = x_source[edge_index_j] is never gathered: the kernel
        # contracts the source features once per node (EquivariantTensorProduct with index).
        return self.kernel(x_source, pos_j - pos_i, edge_attr, node_attr_i, node_attr_j, index=edge_index_j)  # [E, d_out]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out}, group={self.group.name}, "
            f"kernel={self.kernel.__class__.__name__}({self.kernel.extra_repr()}), aggr={self.aggr})"
        )


class ImplicitConv(SteerableConv):
    r"""Steerable point convolution with an implicit kernel (Zhdanov, Hoffmann & Cesa, NeurIPS 2023).

    .. math::
        f'_i = \sum_{j \in \mathcal{N}(i)} K(x_j - x_i, e_{ij}, a_i, a_j)\, f_j, \qquad
        \mathrm{vec}\, K = e^{-|x|^2/\sigma^2}\, \mathrm{MLP}_G\big(\mathrm{BN}(P^{\le L}(x)) \oplus e_{ij} \oplus a_i \oplus a_j\big)

    :math:`G`-equivariant for any closed subgroup :math:`G \le O(3)`; see :class:`ImplicitKernel`.
    The message is computed as :math:`B(f_j, h_{ij})` without forming :math:`K`.

    Args:
        irreps_in (str or Irreps): Irreps of the input features, e.g. ``"16x0e+16x1o"``.
        irreps_out (str or Irreps): Irreps of the output features.
        group (str or Group): The symmetry group, a name of :func:`~pyg_implicit.groups.get_group`
            or a :class:`~pyg_implicit.groups.Group`. (default: ``"o3"``)
        edge_attr_irreps (str or Irreps, optional): Irreps of edge attributes fed to the kernel.
        node_attr_irreps (str or Irreps, optional): Irreps of node attributes fed to the kernel
            for both endpoints.
        lmax (int): Highest order of the harmonic polynomials. (default: :obj:`2`)
        hidden_irreps (str or Irreps): Hidden irreps of the kernel MLP. (default: ``"8x0e+8x1o+8x2e"``)
        mlp_layers (int): Linear layers of the kernel MLP, output layer included. (default: :obj:`2`)
        activation (str): ``"gate"``, ``"scalar_gate"`` or ``"quotient_elu"``. (default: ``"gate"``)
        polynomial_norm (str): Normalisation of the harmonic polynomials: ``"batch"`` (the paper's),
            ``"data"`` (fixed from the first training batch) or ``"none"`` (see :class:`ImplicitKernel`).
            (default: ``"batch"``)
        sigma (float, optional): Initial width of the Gaussian shell; :obj:`None` sets it to twice
            the root-mean-square edge length of the first training batch. (default: :obj:`None`)
        path_weights (str): ``"full"`` or ``"factorized"`` weights of the bilinear map
            (:class:`~pyg_implicit.nn.EquivariantTensorProduct`); with ``"factorized"`` a subgroup's
            parameter count grows with its admissible paths, not their basis size. (default: ``"full"``)
        num_basis (int): Size of a Gaussian embedding of :math:`|x|` on ``[0, max_radius]`` fed to
            the kernel MLP next to the polynomials; :obj:`0`: none. (default: :obj:`0`)
        max_radius (float): Range of that embedding. (default: :obj:`2.0`)
        mlp_group (str or Group, optional): A group :math:`H \ge G` for the kernel network's
            nonlinear part (see :class:`ImplicitKernel`). (default: :obj:`None`, the layer's group)
        form (str): The kernel network: ``"mlp"`` (the paper's :math:`G`-MLP) or ``"factorized"``
            (an MLP of all :math:`G`-invariants of :math:`(x, z)` times the fields
            :math:`Y(x/|x|) \oplus z`, see :class:`ImplicitKernel`). (default: ``"mlp"``)
        radial_features (int): Invariant functions of the factorised form. (default: :obj:`8`)
        radial_hidden (int): Their MLP's width. (default: :obj:`32`)
        shell (bool): Multiply the kernel by the Gaussian shell, as the paper does. (default: :obj:`True`)
        **kwargs (optional): ``root_weight`` and ``bias`` of :class:`SteerableConv` (both
            :obj:`True` by default), and additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes: see :class:`SteerableConv`.

    Example:
        >>> from pyg_implicit.graph import knn_graph
        >>> conv = ImplicitConv("8x0e+4x1o", "8x0e+4x1o", group="so2", edge_attr_irreps="1x0e")
        >>> pos = torch.randn(20, 3)
        >>> edge_index = knn_graph(pos, k=4)
        >>> bond_length = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=1, keepdim=True)
        >>> conv(torch.randn(20, 20), pos, edge_index, edge_attr=bond_length).shape
        torch.Size([20, 20])
    """

    def __init__(
        self,
        irreps_in: IrrepsLike,
        irreps_out: IrrepsLike,
        group: Union[str, Group] = "o3",
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
        lmax: int = 2,
        hidden_irreps: IrrepsLike = "8x0e+8x1o+8x2e",
        mlp_layers: int = 2,
        activation: str = "gate",
        polynomial_norm: str = "batch",
        sigma: Optional[float] = None,
        path_weights: str = "full",
        num_basis: int = 0,
        max_radius: float = 2.0,
        mlp_group: Optional[Union[str, Group]] = None,
        form: str = "mlp",
        radial_features: int = 8,
        radial_hidden: int = 32,
        shell: bool = True,
        **kwargs,
    ) -> None:
        kernel = ImplicitKernel(
            irreps_in, irreps_out, group, lmax=lmax, hidden_irreps=hidden_irreps, mlp_layers=mlp_layers,
            edge_attr_irreps=edge_attr_irreps, node_attr_irreps=node_attr_irreps, activation=activation,
            polynomial_norm=polynomial_norm, sigma=sigma, path_weights=path_weights, num_basis=num_basis, max_radius=max_radius,
            mlp_group=mlp_group, form=form, radial_features=radial_features, radial_hidden=radial_hidden, shell=shell,
        )  # fmt: skip
        super().__init__(kernel, **kwargs)


class StandardConv(SteerableConv):
    r"""Steerable point convolution with the standard kernel: spherical harmonics times a radial MLP.

    .. math::
        f'_i = \sum_{j \in \mathcal{N}(i)} B\big(f_j,\; R(|x_{ij}|, s(z_{ij})) \otimes Y(x_{ij}/|x_{ij}|)\big)

    The baseline the paper compares against (tensor field networks for :math:`O(3)`, restricted to
    :math:`G` otherwise); same signature as :class:`ImplicitConv`, see :class:`StandardKernel`.

    Args:
        irreps_in (str or Irreps): Irreps of the input features.
        irreps_out (str or Irreps): Irreps of the output features.
        group (str or Group): The symmetry group. (default: ``"o3"``)
        edge_attr_irreps (str or Irreps, optional): Irreps of edge attributes; their invariants
            enter the radial MLP.
        node_attr_irreps (str or Irreps, optional): Irreps of node attributes (both endpoints).
        lmax (int): Highest order of the spherical harmonics. (default: :obj:`2`)
        radial_features (int): Number of radial functions per harmonic. (default: :obj:`8`)
        radial_hidden (int): Width of the radial MLP. (default: :obj:`32`)
        num_basis (int): Size of the Gaussian embedding of the distance. (default: :obj:`10`)
        max_radius (float): Range of that embedding. (default: :obj:`2.0`)
        path_weights (str): ``"full"`` or ``"factorized"`` weights of the bilinear map, as in
            :class:`ImplicitConv`. (default: ``"full"``)
        **kwargs (optional): ``root_weight`` and ``bias`` of :class:`SteerableConv` (both
            :obj:`True` by default), and additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes: see :class:`SteerableConv`.
    """

    def __init__(
        self,
        irreps_in: IrrepsLike,
        irreps_out: IrrepsLike,
        group: Union[str, Group] = "o3",
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
        lmax: int = 2,
        radial_features: int = 8,
        radial_hidden: int = 32,
        num_basis: int = 10,
        max_radius: float = 2.0,
        path_weights: str = "full",
        **kwargs,
    ) -> None:
        kernel = StandardKernel(
            irreps_in, irreps_out, group, lmax=lmax, radial_features=radial_features, radial_hidden=radial_hidden,
            num_basis=num_basis, max_radius=max_radius, edge_attr_irreps=edge_attr_irreps,
            node_attr_irreps=node_attr_irreps, path_weights=path_weights,
        )  # fmt: skip
        super().__init__(kernel, **kwargs)


def _check_devices_and_dtypes(layer: torch.nn.Module, x: Tensor, pos: Tensor, edge_index: Tensor, edge_attr, node_attr) -> None:
    """One clear error for inputs on several devices or in dtypes other than the layer's."""
    named = {"x": x, "pos": pos, "edge_index": edge_index, "edge_attr": edge_attr, "node_attr": None if node_attr is None else node_attr[0]}
    named = {name: t for name, t in named.items() if isinstance(t, Tensor)}
    weight = next(layer.parameters(), None)
    devices = {name: t.device for name, t in named.items()}
    if weight is not None:
        devices["the layer"] = weight.device
    if len(set(devices.values())) > 1:
        raise ValueError("inputs on different devices: " + ", ".join(f"{name} on {device}" for name, device in devices.items())
                         + " (move them with .to(device))")
    dtypes = {name: t.dtype for name, t in named.items() if name != "edge_index"}
    if weight is not None:
        dtypes["the layer"] = weight.dtype
    if len(set(dtypes.values())) > 1:
        raise TypeError("inputs of different floating dtypes: " + ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
                        + " (convert with .to(dtype), or build the layer in that dtype)")


def _pair(value):
    return value if isinstance(value, (tuple, list)) else (value, value)


def _check_edge_index(edge_index: Union[Tensor, SparseTensor], size: Tuple[int, int], flow: str) -> Tensor:
    """``edge_index`` as a dense ``(2, E)`` long tensor, from any graph format PyG layers take.

    A dense ``(2, E)`` tensor or ``EdgeIndex`` (int32 is widened), or a sparse adjacency (a
    ``torch.sparse`` tensor or a ``SparseTensor``) read as PyG reads it: the *transposed*
    adjacency ``adj_t[target, source]``, whose entries become edges in row-major order.
    """
    if isinstance(edge_index, SparseTensor) or (isinstance(edge_index, Tensor) and edge_index.layout != torch.strided):
        if flow != "source_to_target":
            raise ValueError("edge_index: a sparse adjacency needs flow='source_to_target' (as in PyG)")
        if tuple(edge_index.size())[:2] != (size[1], size[0]):
            raise ValueError(f"edge_index: expected a sparse adjacency adj_t of shape (num_target, num_source) = {(size[1], size[0])}, "
                             f"got {tuple(edge_index.size())}")  # fmt: skip
        return to_edge_index(edge_index)[0].flip(0)
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index: expected shape (2, num_edges) or a sparse adjacency, got {getattr(edge_index, 'shape', type(edge_index))}")
    if edge_index.dtype not in (torch.long, torch.int):
        raise TypeError(f"edge_index: expected dtype torch.long or torch.int32, got {edge_index.dtype}")
    return edge_index.long()


def _check_values(pos: Tuple[Tensor, Tensor], edge_index: Tensor, size: Tuple[int, int]) -> None:
    """Checks that read values (and so synchronise with a GPU): finite positions, indices in range."""
    for p in pos:
        if not torch.isfinite(p).all():
            raise ValueError("pos: contains NaN or inf")
    if edge_index.numel():
        if edge_index.min() < 0:
            raise ValueError("edge_index: contains negative indices")
        if edge_index[0].max() >= size[0] or edge_index[1].max() >= size[1]:
            raise ValueError(
                f"edge_index: index out of range for {size[0]} source / {size[1]} target nodes "
                f"(max {int(edge_index[0].max())}, {int(edge_index[1].max())})"
            )
