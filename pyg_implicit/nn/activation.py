r"""Equivariant nonlinearities for fields of restricted irreps."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from e3nn import io, o3
from e3nn import nn as e3nn_nn
from torch import nn

from ._irreps import IrrepsLike, as_irreps, check_features, fields, invariant_features


class NormGate(nn.Module):
    r"""Gated nonlinearity driven by *all* invariants, exact for every :math:`G \le O(3)`.

    With :math:`s = [x_{0e}, \|x_f\|_f]` the ``0e`` channels and the norms of every other field,

    .. math::
        y_{0e} = \phi(W_s s + b_s), \qquad y_f = x_f \, \sigma\big((W_g s + b_g)_f\big).

    A gate driven by scalars alone is not enough inside a kernel network: among harmonic
    polynomials of :math:`x` the only :math:`O(3)` scalar is the constant, so such a network is
    affine in its input for :math:`O(3)`. The norms :math:`|x|^l` make it a genuine function of
    the radius. Output irreps equal input irreps.

    Args:
        irreps (str or Irreps): Irreps of the input and output.
        act (callable): Nonlinearity :math:`\phi` of the scalar channels. (default: SiLU)

    Shapes:
        - **input:** :math:`(*, \dim)`
        - **output:** :math:`(*, \dim)`
    """

    def __init__(self, irreps: IrrepsLike, act: Callable[[torch.Tensor], torch.Tensor] = F.silu) -> None:
        super().__init__()
        self.irreps_in = self.irreps_out = as_irreps(irreps, "irreps")
        self.act = act
        self._fields = fields(self.irreps_in)
        self._dim = self.irreps_in.dim
        n_inv = self.irreps_in.num_irreps
        n_scalar = sum(mul for mul, ir in self.irreps_in if ir == o3.Irrep("0e"))
        self.scalar = nn.Linear(n_inv, n_scalar) if n_scalar else None
        self.gate = nn.Linear(n_inv, n_inv - n_scalar) if n_inv > n_scalar else None

    def reset_parameters(self) -> None:
        for lin in (self.scalar, self.gate):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features(x, self._dim, "x", self.irreps_in)
        s = invariant_features(x, self._fields)
        scalars = self.act(self.scalar(s)) if self.scalar is not None else None
        gates = torch.sigmoid(self.gate(s)) if self.gate is not None else None
        out, i_scalar, i_gate = [], 0, 0
        for f in self._fields:
            if f.scalar:
                out.append(scalars[..., i_scalar : i_scalar + f.mul])
                i_scalar += f.mul
            else:
                g = gates[..., i_gate : i_gate + f.mul, None]
                out.append((x[..., f.start : f.stop].reshape(*x.shape[:-1], f.mul, f.dim) * g).flatten(-2))
                i_gate += f.mul
        return torch.cat(out, dim=-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in})"


class QuotientELU(nn.Module):
    r"""The paper's spherical quotient ELU: to a sphere grid, ELU pointwise, back.

    Each channel :math:`u` of irreps ``mul x (0e + 1o + 2e + ...)`` (every :math:`l \le L` once,
    parity :math:`(-1)^l`) is read as a band-limited function on :math:`S^2`,
    :math:`f_u(n) = \sum_l A^l_u \cdot Y^l(n)`, and mapped to
    :math:`\int \mathrm{ELU}(f_u(n)) Y^l(n) dn` (``e3nn.nn.S2Activation``).
    Equivariance is exact only in the limit of a fine grid: the error for finite ``resolution``
    is measured in the tests (``tests/test_activation.py``); use :class:`NormGate` where
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


def activation(name: str, irreps: IrrepsLike) -> nn.Module:
    """The equivariant nonlinearity named ``name`` (``"gate"`` or ``"quotient_elu"``) on ``irreps``."""
    if name == "gate":
        return NormGate(irreps)
    if name == "quotient_elu":
        return QuotientELU(irreps)
    raise ValueError(f"activation: expected 'gate' or 'quotient_elu', got {name!r}")
