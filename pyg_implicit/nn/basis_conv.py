r"""Steerable ``conv2d`` whose kernel is a learned combination of an orthonormal basis of all steerable kernels on the grid.

The explicit counterpart of :class:`~pyg_implicit.nn.ImplicitConv2d` on the pixel grid, as escnn's
``R2Conv`` and the G-CNNs' filter banks are: for a finite group :math:`G` that maps the
:math:`k \times k` grid onto itself, the :math:`G`-steerable kernels between two fields,
:math:`K(g u) = \rho_{out}(g) K(u) \rho_{in}(g)^{-1}`, are the image of the Reynolds projector

.. math::
    \Pi K = \frac{1}{|G|} \sum_{g \in G} \rho_{out}(g)\, K(g^{-1} u)\, \rho_{in}(g)^{-1},

an orthogonal projector on :math:`\mathbb{R}^{d_{out} \times d_{in} \times k \times k}`; its eigenvectors
of eigenvalue one are an orthonormal basis :math:`\{K_n\}` of the space. Each pair of fields gets its
own weights :math:`w_n`, :math:`K = \sum_n w_n K_n`: every steerable kernel is reached, with one weight
per dimension, and the map from weights to kernels is an isometry (every direction of the kernel space
learns at the same rate).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Union

import torch
from e3nn import o3
from torch import Tensor, nn

from ..groups import Group, irreps_D
from ..irreps import IrrepsLike, as_irreps
from .dense_conv import DenseSteerableConv
from .image_action import grid_group, transform_image

__all__ = ["BasisConv2d", "steerable_grid_basis"]


def steerable_grid_basis(irreps_in: IrrepsLike, irreps_out: IrrepsLike, kernel_size: int, group: Union[str, Group]) -> Tensor:
    r"""Orthonormal basis ``[n, d_out, d_in, k, k]`` (float64) of the ``group``-steerable ``k x k`` kernels from
    ``irreps_in`` to ``irreps_out`` fields: the eigenvectors of eigenvalue one of the Reynolds projector."""
    group = grid_group(group)
    return _basis(str(as_irreps(irreps_in, "irreps_in")), str(as_irreps(irreps_out, "irreps_out")), kernel_size, group).clone()


@lru_cache(maxsize=None)
def _basis(irreps_in: str, irreps_out: str, kernel_size: int, group: Group) -> Tensor:
    d_in, d_out = o3.Irreps(irreps_in).dim, o3.Irreps(irreps_out).dim
    shape = (d_out, d_in, kernel_size, kernel_size)
    entries = torch.eye(math.prod(shape), dtype=torch.float64).view(-1, *shape)  # every kernel entry on its own
    projector = 0
    for R in group.coset_representatives:
        D_out, D_in = irreps_D(irreps_out, R), irreps_D(irreps_in, R)
        moved = transform_image(entries.flatten(0, 1), R).view_as(entries)  # K(R^-1 u) on the spatial axes
        projector = projector + torch.einsum("ab,nbcxy,dc->nadxy", D_out, moved, D_in)  # D_in^-1 = D_in^T
    values, vectors = torch.linalg.eigh((projector / group.order).flatten(1))
    return vectors[:, values > 0.5].T.reshape(-1, *shape)  # eigenvalues are 0 or 1


class BasisConv2d(DenseSteerableConv):
    r"""Steerable ``conv2d`` with an explicit kernel basis: :math:`K = \sum_n w_n K_n` for every pair of fields.

    For input fields :math:`i` and output fields :math:`o` (copies of O(3) irreps restricted to
    :math:`G`), :math:`K_{oi} = \sum_n w_{oin} K^{(l_o, l_i)}_n` with :math:`\{K^{(l_o, l_i)}_n\}` the
    orthonormal basis of :func:`steerable_grid_basis`. The weights start at
    :math:`w \sim \mathcal{N}(0, \sigma^2)` with :math:`\sigma^2 = d_{out} d_{in} k^2 / (n\, \mathrm{fan\_in})`,
    so every kernel entry has second moment :math:`1 / \mathrm{fan\_in}` (:math:`\mathrm{fan\_in} = \dim_{in} k^2`),
    as ``torch.nn.Conv2d`` with unit gain. Exactly :math:`G`-equivariant on the grid
    (:func:`~pyg_implicit.nn.transform_field_image`).

    Args:
        irreps_in, irreps_out (str or Irreps): Fields per pixel (channels = their dimension).
        kernel_size (int): Window size :math:`k`.
        group (str or Group): A finite group that maps the pixel grid onto itself (a subgroup of ``d4``). (default: ``"c4"``)
        stride, padding (int): As for ``conv2d``.
        bias (bool): A :math:`G`-invariant bias. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(B, d_{in}, H, W)`
        - **output:** :math:`(B, d_{out}, H', W')`
    """

    dims = 2

    def __init__(
        self,
        irreps_in: IrrepsLike,
        irreps_out: IrrepsLike,
        kernel_size: int,
        group: Union[str, Group] = "c4",
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = as_irreps(irreps_in, "irreps_in"), as_irreps(irreps_out, "irreps_out")
        self.group = grid_group(group)
        self._init_conv(self.irreps_out, self.group, kernel_size, stride, padding, bias)
        # one block of weights per (output irreps block, input irreps block): [mul_out, mul_in, n]
        self.weights = nn.ParameterList()
        self._blocks = []
        dtype = torch.get_default_dtype()
        for q, (mul_out, ir_out) in enumerate(self.irreps_out):
            for p, (mul_in, ir_in) in enumerate(self.irreps_in):
                basis = steerable_grid_basis(str(ir_in), str(ir_out), kernel_size, self.group)
                if basis.shape[0] and mul_out and mul_in:
                    self.register_buffer(f"basis_{len(self._blocks)}", basis.to(dtype), persistent=False)
                    self.weights.append(nn.Parameter(torch.empty(mul_out, mul_in, basis.shape[0])))
                    self._blocks.append((q, p))
        if not self._blocks:
            raise ValueError(f"irreps_out: no {self.group.name}-steerable {kernel_size}x{kernel_size} kernel maps {self.irreps_in} to {self.irreps_out}")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.irreps_in.dim * self.kernel_size**2
        for b, w in enumerate(self.weights):
            basis = getattr(self, f"basis_{b}")
            nn.init.normal_(w, std=(basis[0].numel() / (basis.shape[0] * fan_in)) ** 0.5)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def weight(self) -> Tensor:
        """The convolution weight ``[d_out, d_in, k, k]``: every block the weights times its basis."""
        k = self.kernel_size
        slices_out, slices_in = self.irreps_out.slices(), self.irreps_in.slices()
        W = self.weights[0].new_zeros(self.irreps_out.dim, self.irreps_in.dim, k, k)
        for b, ((q, p), w) in enumerate(zip(self._blocks, self.weights)):
            block = torch.einsum("uvn,nabxy->uavbxy", w, getattr(self, f"basis_{b}"))  # [mul_out, d_out, mul_in, d_in, k, k]
            W[slices_out[q], slices_in[p]] = block.reshape(slices_out[q].stop - slices_out[q].start, -1, k, k)
        return W

    def extra_repr(self) -> str:
        return (f"{self.irreps_in} -> {self.irreps_out}, kernel_size={self.kernel_size}, group={self.group.name}, "
                f"stride={self.stride}, padding={self.padding}")  # fmt: skip
