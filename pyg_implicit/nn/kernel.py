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

* :class:`ImplicitKernel` (Zhdanov et al., 2023): a :math:`G`-MLP of the batch-normalised
  harmonic polynomials of :math:`x` concatenated with any steerable attributes
  :math:`z = (e_{ij}, a_i, a_j)`, times a Gaussian shell :math:`e^{-|x|^2 / \sigma^2}`.
* :class:`StandardKernel` (Thomas et al., 2018; Weiler et al., 2018; restricted to :math:`G` as
  in Cesa et al., 2022): spherical harmonics :math:`Y(x/|x|)` times a radial MLP of :math:`|x|`
  (and of the invariants of :math:`z`).
"""
from __future__ import annotations

import math
from typing import Optional, Union

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


class ImplicitKernel(SteerableKernel, DataDependentInit):
    r"""The implicit steerable kernel (Zhdanov, Hoffmann & Cesa, NeurIPS 2023).

    .. math::
        \mathrm{vec}\, K(x, z) = e^{-|x|^2/\sigma^2}\;
            \mathrm{MLP}_G\big(\mathrm{BN}(P^{\le L}(x)) \oplus E(|x|) \oplus z\big)

    where :math:`P^{\le L}` are the harmonic polynomials of the relative position, :math:`E` an
    optional Gaussian embedding of the distance (``num_basis`` invariant scalars; none by
    default, as in the paper), :math:`z` the steerable attributes and :math:`\mathrm{MLP}_G` a :math:`G`-equivariant MLP whose output
    transforms as :math:`\rho_{out} \otimes \rho_{in}`. By Lemma 1 of the paper the kernel
    then satisfies the steerability constraint for every :math:`g \in G`. The MLP's last layer is
    the bilinear map :math:`B`; the layers before it produce :math:`h` (:meth:`features`).

    Args:
        irreps_in (str or Irreps): Irreps of the input field.
        irreps_out (str or Irreps): Irreps of the output field.
        group (str or Group): The symmetry group :math:`G`. (default: ``"o3"``)
        lmax (int): Highest order :math:`L` of the harmonic polynomials. (default: :obj:`2`)
        hidden_irreps (str or Irreps): Irreps of the MLP's hidden layers.
            (default: ``"8x0e+8x1o+8x2e"``)
        mlp_layers (int): Number of linear layers of the MLP, the bilinear output layer
            included; :obj:`1` gives a kernel linear in :math:`P(x) \oplus z`. (default: :obj:`2`)
        edge_attr_irreps (str or Irreps, optional): Irreps of edge attributes.
        node_attr_irreps (str or Irreps, optional): Irreps of node attributes (both endpoints).
        path_weights (str): Weights of the bilinear map, see :class:`SteerableKernel`. (default: ``"full"``)
        activation (str): ``"gate"`` (exact) or ``"quotient_elu"`` (the paper's, approximate).
            (default: ``"gate"``)
        batch_norm (bool): Batch-normalise the harmonic polynomials. (default: :obj:`True`)
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
        mlp_group (str or Group, optional): The group :math:`H \ge G` the MLP's hidden layers are
            equivariant to; the bilinear map :math:`B` stays :math:`G`-equivariant, so the kernel is
            still :math:`G`-steerable. :math:`H = G` (the default, the paper's kernel) lets the
            kernel be any nonlinear function of all :math:`G`-invariants of :math:`x` (under
            :math:`SO(2)`: of :math:`x_z` as well as :math:`|x|`); a larger :math:`H` restricts it to
            nonlinear functions of the :math:`H`-invariants, with the :math:`G`-specific couplings
            only linear in :math:`B` (:math:`H = O(3)`: the standard kernel's form,
            :math:`\sum R(|x|)\, Y(\hat x)`-like, with an implicit radial profile). Measured on the
            N-body task (README): ``"o3"`` lowers an SO(2) model's mean test MSE at k = 100 2.5x
            (a cone model's 1.1x). (default: :obj:`None`, :math:`H = G`)

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
        hidden_irreps: IrrepsLike = "8x0e+8x1o+8x2e",
        mlp_layers: int = 2,
        edge_attr_irreps: Optional[IrrepsLike] = None,
        node_attr_irreps: Optional[IrrepsLike] = None,
        activation: str = "gate",
        batch_norm: bool = True,
        sigma: Optional[float] = None,
        path_weights: str = "full",
        num_basis: int = 0,
        max_radius: float = 2.0,
        mlp_group: Optional[Union[str, Group]] = None,
    ) -> None:
        super().__init__(irreps_in, irreps_out, group, edge_attr_irreps, node_attr_irreps, path_weights)
        self.mlp_group = self.group if mlp_group is None else get_group(mlp_group)
        if not self.group.is_subgroup_of(self.mlp_group):
            raise ValueError(f"mlp_group: expected a group containing the layer's group {self.group.name}, "
                             f"got {self.mlp_group.name} (the kernel would not be {self.group.name}-steerable)")
        if not isinstance(mlp_layers, int) or mlp_layers < 1:
            raise ValueError(f"mlp_layers: expected an int >= 1, got {mlp_layers!r}")
        if not (isinstance(num_basis, int) and num_basis >= 0):
            raise ValueError(f"num_basis: expected a non-negative int, got {num_basis!r}")
        if not (isinstance(max_radius, (int, float)) and max_radius > 0):
            raise ValueError(f"max_radius: expected a positive float, got {max_radius!r}")
        if sigma is not None and not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma: expected a positive width or None (set from the data), got {sigma!r}")
        self.lmax, self.mlp_layers = lmax, mlp_layers
        self.sigma_init = None if sigma is None else float(sigma)
        self.num_basis, self.max_radius = num_basis, float(max_radius)
        self.harmonics = HarmonicEmbedding(lmax, batch_norm=batch_norm)
        irreps_mlp_in = self.harmonics.irreps_out + o3.Irreps(f"{num_basis}x0e" if num_basis else "") + self.irreps_attr
        if mlp_layers == 1:
            self.mlp = None
            self.irreps_features = irreps_mlp_in
        else:
            hidden = as_irreps(hidden_irreps, "hidden_irreps")
            self.mlp = EquivariantMLP(
                irreps_mlp_in, hidden, hidden, mlp_layers - 1, self.mlp_group, activation, activate_last=True
            )
            self.irreps_features = hidden
        self.sigma = nn.Parameter(torch.empty(()))
        self._build_tensor_product()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.harmonics.reset_parameters()
        if self.mlp is not None:
            self.mlp.reset_parameters()
        nn.init.constant_(self.sigma, 1.0 if self.sigma_init is None else self.sigma_init)
        self._set_init_pending(self.sigma_init is None)  # sigma and the bilinear scale from the first batch
        self.tensor_product.reset_parameters()

    def radial_shell(self, vec: torch.Tensor) -> torch.Tensor:
        r"""The Gaussian shell :math:`e^{-|x|^2/\sigma^2}` ``[E, 1]`` with learnable :math:`\sigma`."""
        return torch.exp(-vec.pow(2).sum(-1, keepdim=True) / self.sigma.pow(2))

    def features(self, vec, edge_attr=None, node_attr_i=None, node_attr_j=None) -> torch.Tensor:
        z = self.attributes(vec, edge_attr, node_attr_i, node_attr_j)
        h = [self.harmonics(vec), z]
        if self.num_basis:
            h.insert(1, distance_embedding(vec, self.max_radius, self.num_basis))
        h = torch.cat(h, dim=-1)
        if self.mlp is not None:
            h = self.mlp(h)
        if self._init_pending and self.training and vec.shape[0]:
            self._initialize_from_data(vec, h)
        return h * self.radial_shell(vec)

    @torch.no_grad()
    def _initialize_from_data(self, vec: torch.Tensor, h: torch.Tensor) -> None:
        """Set sigma to twice the RMS edge length, then scale the bilinear map's weights so that the
        shell-weighted features have unit second moment on this batch (data-dependent initialisation,
        as in LSUV): the MLP output is largest on long edges, where the shell is smallest, so their
        product would otherwise start at a third of the scale the bilinear map expects."""
        self.sigma.copy_(2 * vec.pow(2).sum(-1).mean().sqrt().clamp_min(1e-6))  # shell e^{-1/4} at the RMS length
        mean_square = (h * self.radial_shell(vec)).pow(2).mean()
        if mean_square > 0:
            self.tensor_product.scale_weights_(float(mean_square) ** -0.5)
        self._set_init_pending(False)

    def extra_repr(self) -> str:
        basis = f", num_basis={self.num_basis}, max_radius={self.max_radius:g}" if self.num_basis else ""
        basis += f", mlp_group={self.mlp_group.name}" if self.mlp_group != self.group else ""
        return f"{super().extra_repr()}, lmax={self.lmax}{basis}, features={self.irreps_features}, mlp_layers={self.mlp_layers}"


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
        self.irreps_features = o3.Irreps([(radial_features, ir) for _, ir in sh])
        self.attr_invariants = InvariantSplit(self.irreps_attr, self.group)
        self.radial = nn.Sequential(
            nn.Linear(num_basis + self.attr_invariants.num_invariants, radial_hidden),
            nn.SiLU(),
            nn.Linear(radial_hidden, radial_features),
        )
        self._build_tensor_product()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.radial:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self.tensor_product.reset_parameters()

    def features(self, vec, edge_attr=None, node_attr_i=None, node_attr_j=None) -> torch.Tensor:
        z = self.attributes(vec, edge_attr, node_attr_i, node_attr_j)
        embedding = distance_embedding(vec, self.max_radius, self.num_basis)
        radial = self.radial(torch.cat([embedding, self.attr_invariants.invariants(z)], dim=-1))  # [E, n_r]
        Y = unit_spherical_harmonics(vec, self.lmax)  # [E, (L+1)^2]
        blocks = [
            torch.einsum("er,em->erm", radial, Y[:, l * l : (l + 1) ** 2]).flatten(1) for l in range(self.lmax + 1)
        ]
        return torch.cat(blocks, dim=-1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lmax={self.lmax}, features={self.irreps_features}"
