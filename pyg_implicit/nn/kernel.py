r"""Steerable kernels :math:`K(x_{ij}, z_{ij})`: the implicit one of the paper and the standard one.

Both are written as :math:`K(x, z) f = B(f, h(x, z))`: a *kernel network* produces per-edge
features :math:`h` with irreps :attr:`irreps_features`, and a learned :math:`G`-equivariant
bilinear map :math:`B` (:class:`EquivariantTensorProduct`) turns them into the message. Since
the last layer of the kernel network and the Clebsch-Gordan change of basis to
:math:`\mathrm{vec}(K)` are both linear, this equals applying the explicit
:math:`d_{out} \times d_{in}` kernel, which is never formed in the forward pass; memory per
edge is :math:`O(d_h + d_{in} + d_{out})` up to the tensor product's intermediates instead of
:math:`O(d_{in} d_{out})`. :meth:`SteerableKernel.materialize` forms it for tests and plots.

The kernel networks differ:

* :class:`ImplicitKernel` (Zhdanov et al., 2023): a :math:`G`-equivariant network of the
  batch-normalised harmonic polynomials of :math:`x` and any steerable attributes
  :math:`z = (e_{ij}, a_i, a_j)`, times a Gaussian shell :math:`e^{-|x|^2 / \sigma^2}`: the
  paper's :math:`G`-MLP (``form="mlp"``), or functions of all :math:`G`-invariants of
  :math:`(x, z)` times the fields :math:`Y(x/|x|) \oplus z` (``form="factorized"``).
* :class:`StandardKernel` (Thomas et al., 2018; Weiler et al., 2018; restricted to :math:`G` as
  in Cesa et al., 2022): spherical harmonics :math:`Y(x/|x|)` times a radial MLP of :math:`|x|`
  (and of the invariants of :math:`z`).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from torch import nn

from ..groups import Group, get_group
from .data_init import DataDependentInit
from ..irreps import IrrepsLike, as_irreps, check_features
from .harmonics import HarmonicEmbedding, unit_spherical_harmonics
from .invariants import InvariantSplit
from .mlp import EquivariantMLP
from .tensor_product import EquivariantTensorProduct


class SteerableKernel(nn.Module):
    r"""Base class: a kernel :math:`K(x, z)` applied as :math:`B(f, h(x, z))`.

    Subclasses build :attr:`irreps_features` and implement :meth:`features`; this class holds the
    bilinear map and the attribute bookkeeping shared by all kernels.

    Args:
        irreps_in (str or Irreps): Irreps of the input field :math:`f`.
        irreps_out (str or Irreps): Irreps of the output field.
        group (str or Group): The symmetry group :math:`G`.
        edge_attr_irreps (str or Irreps, optional): Irreps of edge attributes :math:`e_{ij}`.
        node_attr_irreps (str or Irreps, optional): Irreps of node attributes :math:`a_i`, fed
            for both endpoints.
        path_weights (str): ``"full"`` or ``"factorized"`` weights of the bilinear map
            (:class:`EquivariantTensorProduct`; with ``"factorized"`` a subgroup's parameter count
            grows with its admissible paths, not their basis size). (default: ``"full"``)
    """

    irreps_features: o3.Irreps

    def __init__(
        self,
        irreps_in: IrrepsLike,
        irreps_out: IrrepsLike,
        group: Union[str, Group] = "o3",
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
        path_weights: str = "full",
    ) -> None:
        super().__init__()
        self.path_weights = path_weights
        self.irreps_in = as_irreps(irreps_in, "irreps_in")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.group = get_group(group)
        self.edge_attr_irreps = as_irreps(edge_attr_irreps, "edge_attr_irreps", allow_none=True)
        self.node_attr_irreps = as_irreps(node_attr_irreps, "node_attr_irreps", allow_none=True)
        # Irreps of the concatenated attributes z = e_ij (+) a_i (+) a_j.
        self.irreps_attr = o3.Irreps("")
        if self.edge_attr_irreps is not None:
            self.irreps_attr += self.edge_attr_irreps
        if self.node_attr_irreps is not None:
            self.irreps_attr += self.node_attr_irreps + self.node_attr_irreps
        self._attr_dims = tuple(None if irreps is None else irreps.dim for irreps in (self.edge_attr_irreps, self.node_attr_irreps))

    def _build_tensor_product(self) -> None:
        self.tensor_product = EquivariantTensorProduct(
            self.irreps_in, self.irreps_features, self.irreps_out, self.group, path_weights=self.path_weights
        )

    def attributes(
        self,
        vec: torch.Tensor,
        edge_attr: Optional[torch.Tensor],
        node_attr_i: Optional[torch.Tensor],
        node_attr_j: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """Check and concatenate the attributes into :math:`z` ``[E, dim irreps_attr]``."""
        parts = []
        edge_dim, node_dim = self._attr_dims
        for value, dim, name in (
            (edge_attr, edge_dim, "edge_attr"),
            (node_attr_i, node_dim, "node_attr"),
            (node_attr_j, node_dim, "node_attr"),
        ):
            if dim is None and value is not None:
                raise ValueError(f"{name}: given, but the layer was built without {name}_irreps")
            if dim is not None:
                if value is None:
                    raise ValueError(f"{name}: missing; the layer was built with {name}_irreps={getattr(self, name + '_irreps')}")
                check_features(value, dim, name, getattr(self, name + "_irreps"))
                if value.shape[0] != vec.shape[0]:
                    raise ValueError(f"{name}: expected {vec.shape[0]} rows (one per edge), got {value.shape[0]}")
                parts.append(value)
        return torch.cat(parts, dim=-1) if parts else vec.new_zeros(vec.shape[0], 0)

    def features(
        self,
        vec: torch.Tensor,
        edge_attr: Optional[torch.Tensor] = None,
        node_attr_i: Optional[torch.Tensor] = None,
        node_attr_j: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The kernel network's per-edge output :math:`h` ``[E, dim irreps_features]``."""
        raise NotImplementedError

    def forward(
        self,
        f: torch.Tensor,
        vec: torch.Tensor,
        edge_attr: Optional[torch.Tensor] = None,
        node_attr_i: Optional[torch.Tensor] = None,
        node_attr_j: Optional[torch.Tensor] = None,
        index: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        r"""The message :math:`K(x_{ij}, z_{ij}) f_j = B(f_j, h_{ij})` ``[E, dim irreps_out]``.

        ``f`` holds one row per edge, or, with ``index`` (the source node of each edge), one row
        per node: :math:`f_j` = ``f[index]``, contracted once per node
        (:meth:`EquivariantTensorProduct.forward`)."""
        return self.tensor_product(f, self.features(vec, edge_attr, node_attr_i, node_attr_j), index=index)

    def materialize(
        self,
        vec: torch.Tensor,
        edge_attr: Optional[torch.Tensor] = None,
        node_attr_i: Optional[torch.Tensor] = None,
        node_attr_j: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        r"""The explicit kernel :math:`K(x_{ij}, z_{ij})` ``[E, dim irreps_out, dim irreps_in]``.

        It satisfies :math:`K(g x, \rho_z(g) z) = \rho_{out}(g) K(x, z) \rho_{in}(g)^{-1}`
        (paper eq. 3) for every :math:`g \in G`.
        """
        h = self.features(vec, edge_attr, node_attr_i, node_attr_j)
        return self.tensor_product.right(h).transpose(-1, -2)

    def extra_repr(self) -> str:
        attrs = f", edge_attr={self.edge_attr_irreps}" if self.edge_attr_irreps is not None else ""
        attrs += f", node_attr={self.node_attr_irreps}" if self.node_attr_irreps is not None else ""
        return f"{self.irreps_in} -> {self.irreps_out}, group={self.group.name}{attrs}"


def distance_embedding(vec: torch.Tensor, max_radius: float, num_basis: int) -> torch.Tensor:
    r"""Gaussian embedding ``[E, num_basis]`` of :math:`|x|` on :math:`[0, r_{max}]` (e3nn's
    ``soft_one_hot_linspace``, no cutoff): invariant under every :math:`G \le O(3)`."""
    return soft_one_hot_linspace(vec.norm(dim=-1), 0.0, max_radius, num_basis, basis="gaussian", cutoff=False)


def weighted_fields(weights: torch.Tensor, x: torch.Tensor, layout: Tuple[Tuple[int, int], ...]) -> torch.Tensor:
    r"""Every field of ``x`` times every column of ``weights``: :math:`\bigoplus_k w \otimes x_k`.

    ``layout`` lists ``(mul, ir.dim)`` of the irreps of ``x`` (plain ints, so that compiled code
    needs no guard on an ``Irreps``). With :math:`G`-invariant ``weights`` ``[E, m]`` the result
    ``[E, m * dim]``, with irreps :func:`fields_times` (channel :math:`r \cdot mul + u` is weight
    :math:`r` times field :math:`u`), is :math:`G`-equivariant in ``x``: the radial-times-angular
    product of the standard kernel, and of the factorised implicit kernel.
    """
    blocks, start = [], 0
    for mul, dim in layout:
        block = x[:, start : start + mul * dim].unflatten(-1, (mul, dim))
        blocks.append(torch.einsum("er,eud->erud", weights, block).flatten(1))
        start += mul * dim
    return torch.cat(blocks, dim=-1)


def fields_times(irreps: o3.Irreps, multiplicity: int) -> o3.Irreps:
    """The irreps of :func:`weighted_fields` with ``multiplicity`` weights."""
    return o3.Irreps([(multiplicity * mul, ir) for mul, ir in irreps])


def field_layout(irreps: o3.Irreps) -> Tuple[Tuple[int, int], ...]:
    """``(mul, ir.dim)`` of every entry of ``irreps``: the ``layout`` of :func:`weighted_fields`."""
    return tuple((mul, ir.dim) for mul, ir in irreps)


class RadialMLP(nn.Sequential):
    """``Linear -> SiLU -> Linear`` of invariant inputs: the network :math:`R` of the standard and the
    factorised implicit kernel, whose outputs multiply the fields (:func:`weighted_fields`)."""

    def __init__(self, num_in: int, hidden: int, num_out: int) -> None:
        super().__init__(nn.Linear(num_in, hidden), nn.SiLU(), nn.Linear(hidden, num_out))

    def reset_parameters(self) -> None:
        self[0].reset_parameters()
        self[2].reset_parameters()


class ImplicitKernel(SteerableKernel, DataDependentInit):
    r"""The implicit steerable kernel (Zhdanov, Hoffmann & Cesa, NeurIPS 2023).

    .. math::
        \mathrm{vec}\, K(x, z) = e^{-|x|^2/\sigma^2}\;
            \mathrm{MLP}_G\big(\mathrm{BN}(P^{\le L}(x)) \oplus E(|x|) \oplus z\big)

    (the Gaussian shell :math:`e^{-|x|^2/\sigma^2}` optional: ``shell``)

    where :math:`P^{\le L}` are the harmonic polynomials of the relative position, :math:`E` an
    optional Gaussian embedding of the distance (``num_basis`` invariant scalars; none by
    default, as in the paper), :math:`z` the steerable attributes and :math:`\mathrm{MLP}_G` a :math:`G`-equivariant MLP whose output
    transforms as :math:`\rho_{out} \otimes \rho_{in}`. By Lemma 1 of the paper the kernel
    then satisfies the steerability constraint for every :math:`g \in G`. The MLP's last layer is
    the bilinear map :math:`B`; the layers before it produce :math:`h` (:meth:`features`).

    With ``form="factorized"`` the kernel network is instead

    .. math::
        h(x, z) = R\big(s_G(\mathrm{BN}(P^{\le L}(x)) \oplus z) \oplus E(|x|)\big) \otimes
            \big(Y^{\le L}(x / |x|) \oplus z\big)

    with :math:`s_G` *all* :math:`G`-invariants of the polynomials and attributes
    (:class:`~pyg_implicit.nn.InvariantSplit`: the invariant components and the norms of the
    :math:`G`-stable blocks; under :math:`SO(2)` :math:`x_z` and :math:`|x_{xy}|` as well as
    :math:`|x|`), :math:`R` an MLP with ``radial_features`` outputs, and every field of
    :math:`Y \oplus z` multiplied by every output of :math:`R` (:func:`weighted_fields`; fields of
    :math:`z` that the group leaves fixed, such as one-hot atom types, are inputs of :math:`R`
    and not repeated here). Since :math:`R` is invariant, :math:`h` is :math:`G`-equivariant. It
    is the standard kernel's form (:class:`StandardKernel`, :math:`R(|x|) \otimes Y`) with the
    radial profile replaced by a function of every :math:`G`-invariant: the kernel is nonlinear in
    everything :math:`G` leaves fixed, while its angular dependence is tied across the orders
    :math:`l` by the shared :math:`R`. The paper's :math:`G`-MLP reaches the same invariants
    through gates, but each output field gets its own nonlinear function and a gate sees one
    invariant of a field at a time. Measured on the N-body task (README).

    Args:
        irreps_in (str or Irreps): Irreps of the input field.
        irreps_out (str or Irreps): Irreps of the output field.
        group (str or Group): The symmetry group :math:`G`. (default: ``"o3"``)
        lmax (int): Highest order :math:`L` of the harmonic polynomials. (default: :obj:`2`)
        hidden_irreps (str or Irreps): Irreps of the MLP's hidden layers (``form="mlp"``).
            (default: ``"8x0e+8x1o+8x2e"``)
        mlp_layers (int): Number of linear layers of the MLP, the bilinear output layer
            included; :obj:`1` gives a kernel linear in :math:`P(x) \oplus z` (``form="mlp"``).
            (default: :obj:`2`)
        edge_attr_irreps (str or Irreps, optional): Irreps of edge attributes.
        node_attr_irreps (str or Irreps, optional): Irreps of node attributes (both endpoints).
        path_weights (str): Weights of the bilinear map, see :class:`SteerableKernel`. (default: ``"full"``)
        activation (str): ``"gate"`` or ``"scalar_gate"`` (exact) or ``"quotient_elu"`` (the paper's, approximate)
            (``form="mlp"``). (default: ``"gate"``)
        polynomial_norm (str): The harmonic polynomials' normalisation :math:`\mathrm{BN}`
            (:class:`HarmonicEmbedding`'s ``norm``): ``"batch"`` (the paper's batch norm), ``"data"``
            (each order scaled by its RMS on the first training batch, then fixed) or ``"none"``.
            (default: ``"batch"``)
        num_basis (int): Size of the Gaussian embedding :math:`E` of :math:`|x|` on
            :math:`[0, r_{max}]` fed to the MLP next to the polynomials: a radial resolution the
            low-order polynomials of :math:`|x|^2` lack (as in the standard kernel and NequIP's
            radial MLP). :obj:`0`: none. (default: :obj:`0`)
        max_radius (float): Range :math:`r_{max}` of that embedding. (default: :obj:`2.0`)
        sigma (float, optional): Initial width of the Gaussian shell, in the units of the positions.
            :obj:`None` ties it to the data: it is set to twice the root-mean-square length
            :math:`\bar r` of the relative positions of the first batch seen in training mode
            (the shell is then :math:`e^{-1/4}` at :math:`\bar r`; learned as usual afterwards),
            and the bilinear map's initial weights are scaled so that the shell-weighted features
            have unit second moment on that batch.
            A shell much narrower than the edges (edges of length 10 with :math:`\sigma = 1`
            give kernels of order :math:`e^{-100}`) silences a layer. (default: :obj:`None`)
        shell (bool): Multiply the kernel by the Gaussian shell (the paper's kernel). Without it the
            kernel's decay with :math:`|x|` is whatever the MLP learns, as in the standard kernel;
            on graphs that are not local (the N-body task's complete graphs) the shell costs
            accuracy (README). With :obj:`False` there is no ``sigma`` parameter, and the first
            batch scales the bilinear map's weights only. (default: :obj:`True`)
        mlp_group (str or Group, optional): The group :math:`H \ge G` the kernel network's
            nonlinear part is equivariant to (the MLP's hidden layers; with ``form="factorized"``,
            the group whose invariants :math:`R` reads); the bilinear map :math:`B` stays
            :math:`G`-equivariant, so the kernel is still :math:`G`-steerable. :math:`H = G` (the
            default, the paper's kernel) lets the kernel be any nonlinear function of all
            :math:`G`-invariants of :math:`x` (under :math:`SO(2)`: of :math:`x_z` as well as
            :math:`|x|`); a larger :math:`H` restricts it to nonlinear functions of the
            :math:`H`-invariants, with the :math:`G`-specific couplings only linear in :math:`B`
            (:math:`H = O(3)`: the standard kernel's form, :math:`\sum R(|x|)\, Y(\hat x)`-like,
            with an implicit radial profile). Measured on the N-body task (README): ``"o3"`` lowers
            an SO(2) model's mean test MSE at k = 100 2.5x (a cone model's 1.1x) with ``form="mlp"``.
            (default: :obj:`None`, :math:`H = G`)
        form (str): The kernel network: ``"mlp"`` (the paper's :math:`G`-MLP) or ``"factorized"``
            (invariant functions times fields, above). (default: ``"mlp"``)
        radial_features (int): Outputs of :math:`R` (``form="factorized"``): the multiplicity of
            every field of :math:`Y \oplus z` in :math:`h`. (default: :obj:`8`)
        radial_hidden (int): Width of :math:`R`'s hidden layer (``form="factorized"``). (default: :obj:`32`)

    Shapes:
        - **input:** :math:`f: (E, d_{in})`, :math:`x: (E, 3)`, attributes :math:`(E, *)`
        - **output:** :math:`(E, d_{out})`; :meth:`materialize`: :math:`(E, d_{out}, d_{in})`
    """

    FORMS = ("mlp", "factorized")

    def __init__(
        self,
        irreps_in: IrrepsLike,
        irreps_out: IrrepsLike,
        group: Union[str, Group] = "o3",
        lmax: int = 2,
        hidden_irreps: IrrepsLike = "8x0e+8x1o+8x2e",
        mlp_layers: int = 2,
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
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
    ) -> None:
        super().__init__(irreps_in, irreps_out, group, edge_attr_irreps, node_attr_irreps, path_weights)
        self.mlp_group = self.group if mlp_group is None else get_group(mlp_group)
        if not self.group.is_subgroup_of(self.mlp_group):
            raise ValueError(f"mlp_group: expected a group containing the layer's group {self.group.name}, "
                             f"got {self.mlp_group.name} (the kernel would not be {self.group.name}-steerable)")
        if form not in self.FORMS:
            raise ValueError(f"form: expected one of {self.FORMS}, got {form!r}")
        for name, value, low in (("mlp_layers", mlp_layers, 1), ("num_basis", num_basis, 0),
                                 ("radial_features", radial_features, 1), ("radial_hidden", radial_hidden, 1)):  # fmt: skip
            if not (isinstance(value, int) and value >= low):
                raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
        if not (isinstance(max_radius, (int, float)) and max_radius > 0):
            raise ValueError(f"max_radius: expected a positive float, got {max_radius!r}")
        if sigma is not None and not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma: expected a positive width or None (set from the data), got {sigma!r}")
        if polynomial_norm not in HarmonicEmbedding.NORMS:
            raise ValueError(f"polynomial_norm: expected one of {HarmonicEmbedding.NORMS}, got {polynomial_norm!r}")
        if not isinstance(shell, bool):
            raise ValueError(f"shell: expected a bool, got {shell!r}")
        if sigma is not None and not shell:
            raise ValueError("sigma: the width of a Gaussian shell, but shell=False builds the kernel without one")
        self.lmax, self.mlp_layers, self.form = lmax, mlp_layers, form
        self.sigma_init = None if sigma is None else float(sigma)
        self.num_basis, self.max_radius = num_basis, float(max_radius)
        self.harmonics = HarmonicEmbedding(lmax, norm=polynomial_norm)
        self.mlp = self.radial = self.invariant_split = None
        if form == "factorized":
            self.invariant_split = InvariantSplit(self.harmonics.irreps_out + self.irreps_attr, self.mlp_group)
            self.radial = RadialMLP(self.invariant_split.num_invariants + num_basis, radial_hidden, radial_features)
            # The fields R multiplies: Y(x/|x|) and the attributes' fields that H moves (a field H fixes
            # entirely is among R's inputs already, so R times it adds nothing R cannot represent).
            moved = [(mul, ir, sl) for (mul, ir), sl in zip(self.irreps_attr, self.irreps_attr.slices())
                     if self.mlp_group.invariant_basis(ir).shape[0] < ir.dim]  # fmt: skip
            self.irreps_fields = o3.Irreps.spherical_harmonics(lmax) + o3.Irreps([(mul, ir) for mul, ir, _ in moved])
            columns = [torch.arange(sl.start, sl.stop) for _, _, sl in moved]
            self.register_buffer("moved_attr", torch.cat(columns) if columns else torch.zeros(0, dtype=torch.long), persistent=False)
            self._field_layout = field_layout(self.irreps_fields)
            self.irreps_features = fields_times(self.irreps_fields, radial_features)
        else:
            irreps_mlp_in = self.harmonics.irreps_out + o3.Irreps(f"{num_basis}x0e" if num_basis else "") + self.irreps_attr
            self.irreps_features = irreps_mlp_in  # mlp_layers = 1: the bilinear map alone, linear in P(x) + E + z
            if mlp_layers > 1:
                hidden = as_irreps(hidden_irreps, "hidden_irreps")
                self.mlp = EquivariantMLP(irreps_mlp_in, hidden, hidden, mlp_layers - 1, self.mlp_group, activation, activate_last=True)
                self.irreps_features = hidden
        self.sigma = nn.Parameter(torch.empty(())) if shell else None
        self._build_tensor_product()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.harmonics.reset_parameters()
        if self.mlp is not None:
            self.mlp.reset_parameters()
        if self.radial is not None:
            self.radial.reset_parameters()
        if self.sigma is not None:
            nn.init.constant_(self.sigma, 1.0 if self.sigma_init is None else self.sigma_init)
        self._set_init_pending(self.sigma_init is None)  # sigma and the bilinear scale from the first batch
        self.tensor_product.reset_parameters()

    def radial_shell(self, vec: torch.Tensor) -> torch.Tensor:
        r"""The Gaussian shell :math:`e^{-|x|^2/\sigma^2}` ``[E, 1]`` with learnable :math:`\sigma` (ones without one)."""
        if self.sigma is None:
            return vec.new_ones(vec.shape[0], 1)
        return torch.exp(-vec.pow(2).sum(-1, keepdim=True) / self.sigma.pow(2))

    def features(self, vec, edge_attr=None, node_attr_i=None, node_attr_j=None) -> torch.Tensor:
        z = self.attributes(vec, edge_attr, node_attr_i, node_attr_j)
        P = self.harmonics(vec)
        E = [distance_embedding(vec, self.max_radius, self.num_basis)] if self.num_basis else []
        if self.form == "factorized":
            R = self.radial(torch.cat([self.invariant_split.invariants(torch.cat([P, z], dim=-1))] + E, dim=-1))
            fields = torch.cat([unit_spherical_harmonics(vec, self.lmax), z[:, self.moved_attr]], dim=-1)
            h = weighted_fields(R, fields, self._field_layout)
        else:
            h = torch.cat([P] + E + [z], dim=-1)
            if self.mlp is not None:
                h = self.mlp(h)
        if self._init_pending and self.training and vec.shape[0]:
            self._initialize_from_data(vec, h)
        return h * self.radial_shell(vec)

    @torch.no_grad()
    def _initialize_from_data(self, vec: torch.Tensor, h: torch.Tensor) -> None:
        """Set sigma (if there is a shell) to twice the RMS edge length, then scale the bilinear map's weights so that the
        shell-weighted features have unit second moment on this batch (data-dependent initialisation,
        as in LSUV): the MLP output is largest on long edges, where the shell is smallest, so their
        product would otherwise start at a third of the scale the bilinear map expects."""
        if self.sigma is not None:
            self.sigma.copy_(2 * vec.pow(2).sum(-1).mean().sqrt().clamp_min(1e-6))  # shell e^{-1/4} at the RMS length
        mean_square = (h * self.radial_shell(vec)).pow(2).mean()
        if mean_square > 0:
            self.tensor_product.scale_weights_(float(mean_square) ** -0.5)
        self._set_init_pending(False)

    def extra_repr(self) -> str:
        basis = f", num_basis={self.num_basis}, max_radius={self.max_radius:g}" if self.num_basis else ""
        basis += f", mlp_group={self.mlp_group.name}" if self.mlp_group != self.group else ""
        form = f", form={self.form}" if self.form != "mlp" else f", mlp_layers={self.mlp_layers}"
        form += "" if self.sigma is not None else ", shell=False"
        form += "" if self.harmonics.norm == "batch" else f", polynomial_norm={self.harmonics.norm}"
        return f"{super().extra_repr()}, lmax={self.lmax}{basis}, features={self.irreps_features}{form}"


class StandardKernel(SteerableKernel):
    r"""The standard steerable kernel, restricted to :math:`G` by the same bilinear machinery.

    .. math::
        K(x, z) f = B\big(f,\; R(|x|, s(z)) \otimes Y^{\le L}(x / |x|)\big)

    :math:`Y^{\le L}` are the spherical harmonics, :math:`R` a radial MLP of a Gaussian embedding
    of :math:`|x|` on :math:`[0, r_{max}]` (and of the :math:`G`-invariants :math:`s(z)` of the
    attributes, :class:`~pyg_implicit.nn.InvariantSplit`) with ``radial_features`` outputs, and :math:`B`
    a learned :math:`G`-equivariant bilinear map. For :math:`O(3)` this is the tensor field
    network kernel; for a subgroup :math:`B` admits all :math:`G`-equivariant couplings of
    :math:`Y^l` with the input, which is the group-restricted basis of Cesa et al. (2022).

    Args:
        irreps_in (str or Irreps): Irreps of the input field.
        irreps_out (str or Irreps): Irreps of the output field.
        group (str or Group): The symmetry group :math:`G`. (default: ``"o3"``)
        lmax (int): Highest order of the spherical harmonics. (default: :obj:`2`)
        radial_features (int): Number of radial functions (multiplicity of each :math:`Y^l`).
            (default: :obj:`8`)
        radial_hidden (int): Width of the radial MLP. (default: :obj:`32`)
        num_basis (int): Size of the Gaussian embedding of :math:`|x|`. (default: :obj:`10`)
        max_radius (float): Range :math:`r_{max}` of that embedding. (default: :obj:`2.0`)
        edge_attr_irreps (str or Irreps, optional): Irreps of edge attributes.
        node_attr_irreps (str or Irreps, optional): Irreps of node attributes (both endpoints).
        path_weights (str): Weights of the bilinear map, see :class:`SteerableKernel`. (default: ``"full"``)

    Shapes:
        - **input:** :math:`f: (E, d_{in})`, :math:`x: (E, 3)`, attributes :math:`(E, *)`
        - **output:** :math:`(E, d_{out})`; :meth:`materialize`: :math:`(E, d_{out}, d_{in})`
    """

    def __init__(
        self,
        irreps_in: IrrepsLike,
        irreps_out: IrrepsLike,
        group: Union[str, Group] = "o3",
        lmax: int = 2,
        radial_features: int = 8,
        radial_hidden: int = 32,
        num_basis: int = 10,
        max_radius: float = 2.0,
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
        path_weights: str = "full",
    ) -> None:
        super().__init__(irreps_in, irreps_out, group, edge_attr_irreps, node_attr_irreps, path_weights)
        if not isinstance(lmax, int) or lmax < 0:
            raise ValueError(f"lmax: expected a non-negative int, got {lmax!r}")
        if not max_radius > 0:
            raise ValueError(f"max_radius: expected a positive float, got {max_radius!r}")
        for name, value in (("radial_features", radial_features), ("radial_hidden", radial_hidden), ("num_basis", num_basis)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.lmax, self.num_basis, self.max_radius = lmax, num_basis, float(max_radius)
        self.radial_features = radial_features
        sh = o3.Irreps.spherical_harmonics(lmax)
        self._sh_layout = field_layout(sh)
        self.irreps_features = fields_times(sh, radial_features)
        self.attr_invariants = InvariantSplit(self.irreps_attr, self.group)
        self.radial = RadialMLP(num_basis + self.attr_invariants.num_invariants, radial_hidden, radial_features)
        self._build_tensor_product()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.radial.reset_parameters()
        self.tensor_product.reset_parameters()

    def features(self, vec, edge_attr=None, node_attr_i=None, node_attr_j=None) -> torch.Tensor:
        z = self.attributes(vec, edge_attr, node_attr_i, node_attr_j)
        embedding = distance_embedding(vec, self.max_radius, self.num_basis)
        radial = self.radial(torch.cat([embedding, self.attr_invariants.invariants(z)], dim=-1))  # [E, n_r]
        return weighted_fields(radial, unit_spherical_harmonics(vec, self.lmax), self._sh_layout)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lmax={self.lmax}, features={self.irreps_features}"
