r"""Harmonic-polynomial embedding of relative positions (paper app. B.1)."""
from __future__ import annotations

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import nn


def harmonic_polynomials(vec: torch.Tensor, lmax: int) -> torch.Tensor:
    r"""Homogeneous harmonic polynomials :math:`|x|^l\, Y^l(x / |x|)` for :math:`l = 0, \dots, L`.

    The order-:math:`l` part is the projection of :math:`x^{\otimes l}` on its only copy of the
    :math:`l` irrep, so :math:`P^l(g x) = D^l(g) P^l(x)` for every :math:`g \in O(3)` with parity
    :math:`(-1)^l` (irreps ``0e + 1o + 2e + ...``), and :math:`P^l(0) = 0` for :math:`l > 0`.

    Args:
        vec (Tensor): Points :math:`(*, 3)`.
        lmax (int): Highest order :math:`L`.

    Returns:
        :math:`(*, (L + 1)^2)`
    """
    return o3.spherical_harmonics(list(range(lmax + 1)), vec, normalize=False, normalization="component")


def unit_spherical_harmonics(vec: torch.Tensor, lmax: int) -> torch.Tensor:
    r"""Spherical harmonics :math:`Y^l(x / |x|)`; at :math:`x = 0` they are :math:`(1, 0, \dots, 0)`.

    A zero vector has no direction, so :math:`Y^{l>0}(0)` is defined as :math:`0` (the value of the
    harmonic polynomials there), with zero gradient: the division by :math:`|x|` is only evaluated
    on non-zero vectors (the "double where"), so zero-length edges (self-loops, coincident points)
    give finite outputs and gradients instead of the :math:`1/\epsilon` of a clamped norm, which in
    float32 cancelled every other contribution to a position's gradient.
    """
    sq = vec.pow(2).sum(-1, keepdim=True)
    nonzero = sq > 0
    safe = torch.where(nonzero, vec, torch.ones_like(vec))  # any non-zero vector: its gradient is discarded
    unit = torch.where(nonzero, safe / safe.norm(dim=-1, keepdim=True), torch.zeros_like(vec))
    return harmonic_polynomials(unit, lmax)


class HarmonicEmbedding(nn.Module):
    r"""Harmonic polynomials of the relative position, batch-normalised per irrep.

    .. math::
        x \mapsto \mathrm{BN}\big(P^0(x) \oplus P^1(x) \oplus \dots \oplus P^L(x)\big)

    The batch norm is e3nn's equivariant one: ``0e`` is centred and scaled, every other field is
    divided by its root-mean-square norm over the batch (a rotation-invariant statistic). The
    paper found this normalisation the most effective way to stabilise implicit kernels.

    Args:
        lmax (int): Highest polynomial order :math:`L`.
        batch_norm (bool): Apply the equivariant batch norm. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(E, 3)`
        - **output:** :math:`(E, (L + 1)^2)`, irreps :attr:`irreps_out` = ``0e + 1o + ... ``
    """

    def __init__(self, lmax: int, batch_norm: bool = True) -> None:
        super().__init__()
        if not isinstance(lmax, int) or lmax < 0:
            raise ValueError(f"lmax: expected a non-negative int, got {lmax!r}")
        self.lmax = lmax
        self.irreps_out = o3.Irreps.spherical_harmonics(lmax)
        self.batch_norm = e3nn_nn.BatchNorm(self.irreps_out) if batch_norm else None

    def reset_parameters(self) -> None:
        if self.batch_norm is not None:
            self.batch_norm.running_mean.zero_()
            self.batch_norm.running_var.fill_(1.0)
            self.batch_norm.weight.data.fill_(1.0)
            self.batch_norm.bias.data.zero_()

    def forward(self, vec: torch.Tensor) -> torch.Tensor:
        out = harmonic_polynomials(vec, self.lmax)
        if self.batch_norm is not None and out.shape[0] > 0:  # no statistics from an empty batch
            out = self.batch_norm(out)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(lmax={self.lmax}, irreps_out={self.irreps_out})"
