r"""Equivariant nonlinearities for fields of restricted irreps."""
from __future__ import annotations

import math
from typing import Callable, Tuple, Union

import torch
import torch.nn.functional as F
from e3nn import io, o3
from e3nn import nn as e3nn_nn
from e3nn.math import normalize2mom
from torch import nn

from ..groups import Group, get_group
from ..irreps import Field, IrrepsLike, as_irreps, check_features, fields
from .invariants import InvariantSplit


def _sphere_function_layout(irreps: o3.Irreps, name: str) -> Tuple[int, Tuple[Field, ...]]:
    """``mul`` and the block of each ``l = 0, 1, ..., L`` of ``irreps = mul x (0e + 1o + 2e + ...)``: ``mul``
    band-limited functions on the sphere. A clear error for any other irreps."""
    muls = {mul for mul, _ in irreps}
    lmax = irreps.lmax
    expected = o3.Irreps([(next(iter(muls)), (l, (-1) ** l)) for l in range(lmax + 1)]) if len(muls) == 1 else None
    if expected is None or irreps.sort().irreps.simplify() != expected or len(irreps) != lmax + 1:
        raise ValueError(f"irreps: {name} needs mul x (0e + 1o + 2e + ...) with every l <= lmax once, got {irreps}")
    layout = fields(irreps)
    return next(iter(muls)), tuple(layout[[ir.l for _, ir in irreps].index(l)] for l in range(lmax + 1))


def _functions(x: torch.Tensor, mul: int, blocks: Tuple[Field, ...]) -> torch.Tensor:
    """``[*, dim] -> [*, mul, (L+1)^2]``: each channel's coefficients of ``l = 0, ..., L`` side by side."""
    return torch.cat([x[..., f.start : f.stop].reshape(*x.shape[:-1], mul, f.dim) for f in blocks], dim=-1)


def _coefficients(y: torch.Tensor, blocks: Tuple[Field, ...], dim: int) -> torch.Tensor:
    """The inverse of :func:`_functions`: ``[*, mul, (L+1)^2] -> [*, dim]`` in the layout of the irreps."""
    out = y.new_empty(*y.shape[:-2], dim)
    for l, f in enumerate(blocks):
        out[..., f.start : f.stop] = y[..., l * l : (l + 1) ** 2].flatten(-2)
    return out


def _fibonacci_sphere(n: int) -> torch.Tensor:
    """``n`` nearly uniform unit vectors (float64, ``[n, 3]``), none on the z axis."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (3 - math.sqrt(5)) * i
    r = (1 - z**2).sqrt()
    return torch.stack([r * phi.cos(), r * phi.sin(), z], dim=-1)


class InvariantGate(nn.Module):
    r"""Gated nonlinearity driven by *every* :math:`G`-invariant of its input, exact for every :math:`G \le O(3)`.

    The input splits (:class:`~pyg_implicit.nn.InvariantSplit`) into scalar fields :math:`c`
    (``0e``), the :math:`G`-invariant components :math:`a_k` of the other fields and the
    :math:`G`-stable blocks :math:`P_i x` orthogonal to them. With
    :math:`s = [c, a, \|P_1 x\|/\sqrt{d_1}, \dots]` all invariants of degree one and two,

    .. math::
        c' = \phi(W_c s + b_c), \qquad a_k' = a_k\, \sigma\big((W_g s + b_g)_k\big), \qquad
        (P_i x)' = P_i x\; \sigma\big((W_g s + b_g)_i\big).

    Scalar fields go through an MLP layer of *all* invariants; every other part of a field is
    scaled by a gate computed from them, so a vector stays a vector that can pass through
    (nearly) linearly; all terms commute with :math:`G`. For :math:`O(3)` the invariants are the
    ``0e`` channels and the field norms: an e3nn-style gate whose gates also see the norms. For a
    subgroup they include what :math:`O(3)` cannot see: under :math:`SO(2)` the :math:`z`
    component of every ``1o`` field and its horizontal norm drive every scalar and every gate, and
    the two parts of the vector are gated separately.

    With ``scalar_invariants=True`` the invariant components are activated like the scalar fields,
    :math:`a_k' = \phi\big((W_c s + b_c)_k\big)`, and only the blocks :math:`P_i x` are gated: an
    invariant component is a scalar of :math:`G`, so any function of it is equivariant. Measured on
    the N-body task (README): a gated :math:`a_k` extrapolates a clipped force beyond the training
    range about 4x worse than a scalar; in every :math:`G`-MLP of the SO(2) network the option lowered
    the mean error at k = 100 on 4,096 test systems 2.5-3.3x in 5 of 6 runs (40 epochs; the sixth
    diverged). For :math:`O(3)` there are no such components and the option changes nothing.

    Among harmonic polynomials of :math:`x` the only :math:`O(3)` scalar is the constant, so a gate
    of scalars alone would leave an :math:`O(3)` kernel network affine in its input; the norms
    :math:`|x|^l` make it a genuine function of the radius.

    Normalisation (e3nn's ``normalize2mom``): :math:`\phi` and :math:`\sigma` are rescaled to unit
    second moment on :math:`\mathcal{N}(0, 1)` and :math:`W \sim \mathcal{N}(0, 1/\text{fan-in})`,
    so unit-variance inputs give outputs of second moment close to one: deep stacks keep their scale.

    Args:
        irreps (str or Irreps): Irreps of the input and output.
        group (str or Group): The symmetry group whose invariants drive the gate. (default: ``"o3"``)
        act (callable): Nonlinearity :math:`\phi` of the scalar fields. (default: SiLU)
        scalar_invariants (bool): Activate the invariant components :math:`a_k` with :math:`\phi`
            instead of gating them. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(*, \dim)`
        - **output:** :math:`(*, \dim)`
    """

    def __init__(
        self,
        irreps: IrrepsLike,
        group: Union[str, Group] = "o3",
        act: Callable[[torch.Tensor], torch.Tensor] = F.silu,
        scalar_invariants: bool = False,
    ) -> None:
        super().__init__()
        self.irreps_in = self.irreps_out = as_irreps(irreps, "irreps")
        self.group = get_group(group)
        self.split = InvariantSplit(self.irreps_in, self.group)
        self.act = normalize2mom(act)
        self.gate_act = normalize2mom(torch.sigmoid)
        self.scalar_invariants = scalar_invariants
        # the outputs of phi: the scalar fields, and the invariant components if they are activated
        n_in, n_scalar = self.split.num_invariants, self.split.num_invariant if scalar_invariants else self.split.num_scalar
        n_gates = self.split.num_invariant - n_scalar + self.split.num_blocks
        self.scalar = nn.Linear(n_in, n_scalar) if n_scalar else None
        self._num_activated = n_scalar
        self.gate = nn.Linear(n_in, n_gates) if n_gates else None
        self._dim = self.irreps_in.dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.scalar, self.gate):
            if lin is not None:
                nn.init.normal_(lin.weight, std=lin.in_features**-0.5)
                nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features(x, self._dim, "x", self.irreps_in)
        a, z = self.split.split(x)
        s = torch.cat([a, self.split.block_rms(z)], dim=-1)
        n_scalar, n_invariant = self._num_activated, self.split.num_invariant
        c, a = a[..., :n_scalar], a[..., n_scalar:]
        if self.scalar is not None:
            c = self.act(self.scalar(s))
        if self.gate is not None:
            g = self.gate_act(self.gate(s))
            a = a * g[..., : n_invariant - n_scalar]
            z = z * self.split.expand(g[..., n_invariant - n_scalar :])
        return self.split.merge(torch.cat([c, a], dim=-1), z)

    def __repr__(self) -> str:
        scalar = ", scalar_invariants=True" if self.scalar_invariants else ""
        return f"{self.__class__.__name__}({self.irreps_in}, group={self.group.name}{scalar})"


class QuotientELU(nn.Module):
    r"""The paper's spherical quotient ELU: to a sphere grid, ELU pointwise, back.

    Each channel :math:`u` of irreps ``mul x (0e + 1o + 2e + ...)`` (every :math:`l \le L` once,
    parity :math:`(-1)^l`) is read as a band-limited function on :math:`S^2`,
    :math:`f_u(n) = \sum_l A^l_u \cdot Y^l(n)`, and mapped to
    :math:`\int \mathrm{ELU}(f_u(n)) Y^l(n) dn` (``e3nn.nn.S2Activation``).
    Equivariance is exact only in the limit of a fine grid: the error for finite ``resolution``
    is measured in the tests (``tests/test_layers.py``); use :class:`InvariantGate` where
    exactness matters.

    Args:
        irreps (str or Irreps): ``mul x (0e + 1o + ... )``, written in any order of blocks.
        resolution (int): Grid resolution on the sphere. (default: :obj:`20`)
    """

    def __init__(self, irreps: IrrepsLike, resolution: int = 20) -> None:
        super().__init__()
        self.irreps_in = self.irreps_out = as_irreps(irreps, "irreps")
        self.mul, self._blocks = _sphere_function_layout(self.irreps_in, "QuotientELU")
        lmax = len(self._blocks) - 1
        self._dim = self.irreps_in.dim
        self.s2 = e3nn_nn.S2Activation(io.SphericalTensor(lmax, p_val=1, p_arg=-1), F.elu, resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features(x, self._dim, "x", self.irreps_in)
        y = self.s2(_functions(x, self.mul, self._blocks))  # [*, mul, (L+1)^2], channels as functions on the sphere
        return _coefficients(y, self._blocks, self._dim)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in})"


class OrbitELU(nn.Module):
    r"""The spherical quotient ELU sampled on a union of :math:`G`-orbits: exact for every finite :math:`G`.

    Each channel :math:`u` of irreps ``mul x (0e + 1o + 2e + ...)`` (every :math:`l \le L` once,
    parity :math:`(-1)^l`) is read as a band-limited function on the sphere,
    :math:`f_u(n) = \sum_l Y^l(n) \cdot A^l_u`, sampled on the points
    :math:`S = \{g\, s : g \in G,\ s \in S_0\}` (the orbits of a Fibonacci set :math:`S_0`),
    activated pointwise and projected back by least squares:

    .. math::
        A_u' = Y^{+}\, \mathrm{ELU}(Y A_u), \qquad Y = \big[Y^l(n)\big]_{n \in S} \in \mathbb{R}^{|S| \times \dim}.

    With parity :math:`(-1)^l`, :math:`Y^l(g n) = D^l(g) Y^l(n)` for every :math:`g \in O(3)`, so
    acting on :math:`A` by :math:`g \in G` permutes the samples (:math:`S` is closed under
    :math:`G`): :math:`Y D(g) = P_g Y` for a permutation :math:`P_g`, hence :math:`Y^{+} P_g = D(g) Y^{+}`, and the ELU commutes with
    :math:`P_g`. The map is therefore exactly :math:`G`-equivariant, the finite-group counterpart of
    a regular representation with a pointwise nonlinearity (the G-CNNs' ReLU on :math:`|G|`
    orientations; escnn's ``QuotientFourierELU``): unlike a gate it acts on the field's direction,
    not only on its invariants. :class:`QuotientELU` samples a fine grid instead, equivariant to
    every rotation only approximately. For a linear activation the map is the identity (:math:`Y`
    has full column rank, checked). The samples are scaled to unit second moment for inputs of unit
    second moment per component, and ELU is rescaled to unit second moment on
    :math:`\mathcal{N}(0, 1)` (``normalize2mom``).

    Args:
        irreps (str or Irreps): ``mul x (0e + 1o + 2e + ...)``, written in any order of blocks.
        group (str or Group): A finite group (``c4``, ``d4``, ``oh``, ...).
        num_points (int): Least number of sample points; rounded up to a multiple of the group's
            order. (default: :obj:`32`)
        act (callable): The pointwise nonlinearity. (default: ELU)

    Shapes:
        - **input:** :math:`(*, \dim)`
        - **output:** :math:`(*, \dim)`
    """

    def __init__(
        self,
        irreps: IrrepsLike,
        group: Union[str, Group],
        num_points: int = 32,
        act: Callable[[torch.Tensor], torch.Tensor] = F.elu,
    ) -> None:
        super().__init__()
        self.irreps_in = self.irreps_out = as_irreps(irreps, "irreps")
        self.group = get_group(group)
        if not self.group.is_finite:
            raise ValueError(
                f"group: OrbitELU samples the orbits of a finite group, got {self.group.name} (use InvariantGate, or "
                "QuotientELU for an approximately equivariant ELU)"
            )
        self.mul, self._blocks = _sphere_function_layout(self.irreps_in, "OrbitELU")
        lmax = len(self._blocks) - 1
        order = self.group.order
        seeds = -(-max(int(num_points), 1) // order)
        points = (self.group.coset_representatives @ _fibonacci_sphere(seeds).T).transpose(1, 2).reshape(-1, 3)  # [|G| seeds, 3]
        sh = o3.spherical_harmonics(list(range(lmax + 1)), points, normalize=True, normalization="component")
        to_grid = sh / math.sqrt(sh.shape[1])  # [N, dim]: E f^2 = 1 for unit-variance coefficients
        if int(torch.linalg.matrix_rank(to_grid)) < to_grid.shape[1]:
            raise ValueError(f"num_points: {points.shape[0]} points on {self.group.name}'s orbits do not determine l <= {lmax}")
        self.num_points = points.shape[0]
        dtype = torch.get_default_dtype()
        self.register_buffer("to_grid", to_grid.T.to(dtype), persistent=False)  # [dim, N]
        self.register_buffer("from_grid", torch.linalg.pinv(to_grid).T.to(dtype), persistent=False)  # [N, dim]
        self.act = normalize2mom(act)
        self._dim = self.irreps_in.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features(x, self._dim, "x", self.irreps_in)
        y = self.act(_functions(x, self.mul, self._blocks) @ self.to_grid) @ self.from_grid
        return _coefficients(y, self._blocks, self._dim)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in}, group={self.group.name}, num_points={self.num_points})"


ACTIVATIONS = ("gate", "scalar_gate", "quotient_elu", "orbit_elu")


def activation(name: str, irreps: IrrepsLike, group: Union[str, Group]) -> nn.Module:
    """The equivariant nonlinearity named ``name`` on ``irreps``: ``"gate"`` (:class:`InvariantGate`),
    ``"scalar_gate"`` (:class:`InvariantGate` with ``scalar_invariants=True``), ``"quotient_elu"`` or
    ``"orbit_elu"`` (:class:`OrbitELU`, finite groups)."""
    if name in ("gate", "scalar_gate"):
        return InvariantGate(irreps, group, scalar_invariants=name == "scalar_gate")
    if name == "quotient_elu":
        return QuotientELU(irreps)
    if name == "orbit_elu":
        return OrbitELU(irreps, group)
    raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {name!r}")
