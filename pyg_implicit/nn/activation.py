r"""Equivariant nonlinearities for fields of restricted irreps."""
from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F
from e3nn import io, o3
from e3nn import nn as e3nn_nn
from e3nn.math import normalize2mom
from torch import nn

from ..groups import Group, get_group
from ..irreps import IrrepsLike, as_irreps, check_features, fields
from .invariants import InvariantSplit


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
        irreps = self.irreps_in
        muls = {mul for mul, _ in irreps}
        lmax = irreps.lmax
        expected = o3.Irreps([(next(iter(muls)), (l, (-1) ** l)) for l in range(lmax + 1)]) if len(muls) == 1 else None
        if expected is None or irreps.simplify() != expected.simplify() or len(irreps) != lmax + 1:
            raise ValueError(
                f"irreps: QuotientELU needs mul x (0e + 1o + 2e + ...) with every l <= lmax once, got {irreps}"
            )
        self.mul = next(iter(muls))
        # the input block of each l, in order l = 0, 1, ..., L
        layout = fields(irreps)
        self._blocks = tuple(layout[[ir.l for _, ir in irreps].index(l)] for l in range(lmax + 1))
        self._dim = irreps.dim
        self.s2 = e3nn_nn.S2Activation(io.SphericalTensor(lmax, p_val=1, p_arg=-1), F.elu, resolution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features(x, self._dim, "x", self.irreps_in)
        blocks = [x[..., f.start : f.stop].reshape(*x.shape[:-1], self.mul, f.dim) for f in self._blocks]
        y = self.s2(torch.cat(blocks, dim=-1))  # [*, mul, (L+1)^2], channels as functions on the sphere
        out = x.new_empty(*x.shape[:-1], self._dim)
        for l, f in enumerate(self._blocks):
            out[..., f.start : f.stop] = y[..., l * l : (l + 1) ** 2].flatten(-2)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in})"


ACTIVATIONS = ("gate", "scalar_gate", "quotient_elu")


def activation(name: str, irreps: IrrepsLike, group: Union[str, Group]) -> nn.Module:
    """The equivariant nonlinearity named ``name`` on ``irreps``: ``"gate"`` (:class:`InvariantGate`),
    ``"scalar_gate"`` (:class:`InvariantGate` with ``scalar_invariants=True``) or ``"quotient_elu"``."""
    if name in ("gate", "scalar_gate"):
        return InvariantGate(irreps, group, scalar_invariants=name == "scalar_gate")
    if name == "quotient_elu":
        return QuotientELU(irreps)
    raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {name!r}")
