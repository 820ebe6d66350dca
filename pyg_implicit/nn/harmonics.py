r"""Harmonic-polynomial embedding of relative positions (paper app. B.1)."""
from __future__ import annotations

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3

from .data_init import DataDependentInit


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


class HarmonicEmbedding(DataDependentInit):
    r"""Harmonic polynomials of the relative position, normalised per order.

    .. math::
        x \mapsto N\big(P^0(x) \oplus P^1(x) \oplus \dots \oplus P^L(x)\big)

    ``norm`` chooses :math:`N`:

    * ``"batch"`` (the paper's): e3nn's equivariant batch norm. ``0e`` is centred and scaled, every
      other field divided by its root-mean-square norm over the batch (a rotation-invariant
      statistic); the paper found it the most effective way to stabilise implicit kernels. In
      training the statistics are the batch's, so the kernel every edge sees depends on the other
      edges of its batch: a noise floor on the training loss (N-body, README).
    * ``"data"``: each order :math:`l \ge 1` divided by its root-mean-square over the first training
      batch, then fixed (saved with the model; the statistic of ``"batch"``, frozen); :math:`P^0 = 1`
      is kept. Deterministic, and tied to the data's scale as the Gaussian shell's width is.
    * ``"none"``: the raw polynomials.

    Args:
        lmax (int): Highest polynomial order :math:`L`.
        norm (str): ``"batch"``, ``"data"`` or ``"none"``. (default: ``"batch"``)

    Shapes:
        - **input:** :math:`(E, 3)`
        - **output:** :math:`(E, (L + 1)^2)`, irreps :attr:`irreps_out` = ``0e + 1o + ... ``
    """

    NORMS = ("batch", "data", "none")

    def __init__(self, lmax: int, norm: str = "batch") -> None:
        super().__init__()
        if not isinstance(lmax, int) or lmax < 0:
            raise ValueError(f"lmax: expected a non-negative int, got {lmax!r}")
        if norm not in self.NORMS:
            raise ValueError(f"norm: expected one of {self.NORMS}, got {norm!r}")
        self.lmax, self.norm = lmax, norm
        self.irreps_out = o3.Irreps.spherical_harmonics(lmax)
        self.batch_norm = e3nn_nn.BatchNorm(self.irreps_out) if norm == "batch" else None
        # the order l of every output component, and one scale per order (norm="data")
        self.register_buffer("order", torch.cat([torch.full((2 * l + 1,), l) for l in range(lmax + 1)]), persistent=False)
        self.register_buffer("scale", torch.ones(lmax + 1) if norm == "data" else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.batch_norm is not None:
            self.batch_norm.running_mean.zero_()
            self.batch_norm.running_var.fill_(1.0)
            self.batch_norm.weight.data.fill_(1.0)
            self.batch_norm.bias.data.zero_()
        if self.scale is not None:
            self.scale.fill_(1.0)
            self._set_init_pending(True)

    def forward(self, vec: torch.Tensor) -> torch.Tensor:
        out = harmonic_polynomials(vec, self.lmax)
        if out.shape[0] == 0:  # no statistics from an empty batch
            return out
        if self.batch_norm is not None:
            return self.batch_norm(out)
        if self.scale is not None:
            if self._init_pending and self.training:
                self._initialize_from_data(out)
            return out * self.scale[self.order]
        return out

    @torch.no_grad()
    def _initialize_from_data(self, out: torch.Tensor) -> None:
        """Each order l >= 1 to unit mean square per component on this batch (P^0 = 1 stays)."""
        for l in range(1, self.lmax + 1):
            mean_square = float(out[:, self.order == l].pow(2).mean())
            self.scale[l] = mean_square**-0.5 if mean_square > 0 else 1.0
        self._set_init_pending(False)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(lmax={self.lmax}, irreps_out={self.irreps_out}, norm={self.norm})"
