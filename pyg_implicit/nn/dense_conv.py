r"""Dense steerable convolutions with implicit kernels on pixel / voxel grids (paper sec. 3.5).

The :math:`G`-equivariant kernel MLP (:class:`~pyg_implicit.nn.ImplicitKernel`) is evaluated at
the centres of the :math:`k \times k` (or :math:`k^3`) window, and the resulting
:math:`K(u) \in \mathbb{R}^{d_{out} \times d_{in}}` are the weights of ``conv2d`` / ``conv3d``:

.. math::
    f_{out}(p) = \sum_{u} K(s\,u)\, f_{in}(p + u) + b

Grid coordinates: array axes ``(-2, -1)`` are :math:`(x, y)` of the plane :math:`z = 0` (2D), and
axes ``(-3, -2, -1)`` are :math:`(x, y, z)` (3D); :math:`s` is the grid spacing in kernel units.
Feature channels hold fields of O(3) irreps restricted to :math:`G` (``"8x0e+4x1o"``). The layer
is exactly equivariant to the elements of :math:`G` that map the grid onto itself (for 2D: C4 and
D4 about z; :func:`transform_field_image`); for other angles (``so2``) the error is that of
resampling the rotated image, not of the kernel, which satisfies its constraint exactly.
"""
from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..groups import Group, irreps_D
from ..irreps import IrrepsLike, check_features
from .image_action import grid_preserving, transform_image
from .kernel import ImplicitKernel
from .linear import invariant_bias_vector, register_invariant_bias

__all__ = ["DenseSteerableConv", "ImplicitConv2d", "ImplicitConv3d", "transform_field_image"]


class DenseSteerableConv(nn.Module):
    r"""What every dense steerable convolution shares: ``conv2d`` / ``conv3d`` with the weight of
    :meth:`weight` and a :math:`G`-invariant bias. Subclasses set ``dims`` and define :meth:`weight`."""

    dims: int

    def _init_conv(self, irreps_out, group: Group, kernel_size: int, stride: int, padding: int, bias: bool) -> None:
        if not (isinstance(kernel_size, int) and kernel_size > 0):
            raise ValueError(f"kernel_size: expected a positive int, got {kernel_size!r}")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.bias = None
        self._bias_fields = register_invariant_bias(self, irreps_out, group) if bias else ()

    def weight(self) -> Tensor:
        """The convolution weight ``[d_out, d_in, k, ..., k]``."""
        raise NotImplementedError

    def bias_vector(self) -> Tensor:
        """The :math:`G`-invariant bias ``[d_out]``."""
        return invariant_bias_vector(self, self._bias_fields, self.irreps_out.dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.dims + 2:
            raise ValueError(f"x: expected shape (B, {self.irreps_in.dim}, {', '.join('S' * self.dims)}), got {tuple(x.shape)}")
        check_features(x.movedim(1, -1), self.irreps_in.dim, "x", self.irreps_in)
        conv = F.conv2d if self.dims == 2 else F.conv3d
        out = conv(x, self.weight(), stride=self.stride, padding=self.padding)
        if self.bias is not None:
            out = out + self.bias_vector().to(out).view(1, -1, *[1] * self.dims)
        return out


class _DenseImplicitConv(DenseSteerableConv):
    def __init__(
        self,
        irreps_in: IrrepsLike,
        irreps_out: IrrepsLike,
        kernel_size: int,
        group: Union[str, Group] = "c4",
        stride: int = 1,
        padding: int = 0,
        spacing: float = 0.5,
        bias: bool = True,
        **kernel_kwargs,
    ) -> None:
        super().__init__()
        self.kernel = ImplicitKernel(irreps_in, irreps_out, group, **kernel_kwargs)
        self.irreps_in, self.irreps_out, self.group = self.kernel.irreps_in, self.kernel.irreps_out, self.kernel.group
        self._init_conv(self.irreps_out, self.group, kernel_size, stride, padding, bias)
        self.spacing = spacing
        centre = (kernel_size - 1) / 2
        axes = torch.arange(kernel_size, dtype=torch.get_default_dtype()) - centre
        grid = torch.stack(torch.meshgrid(*[axes] * self.dims, indexing="ij"), dim=-1).reshape(-1, self.dims)
        grid = torch.cat([grid, grid.new_zeros(len(grid), 3 - self.dims)], dim=1)
        self.register_buffer("grid", spacing * grid, persistent=False)  # [k^dims, 3]

    def reset_parameters(self) -> None:
        self.kernel.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def weight(self) -> Tensor:
        """The convolution weight ``[d_out, d_in, k, ..., k]`` from the kernel MLP at the grid centres."""
        K = self.kernel.materialize(self.grid)  # [k^dims, d_out, d_in]
        return K.permute(1, 2, 0).reshape(K.shape[1], K.shape[2], *[self.kernel_size] * self.dims)

    def extra_repr(self) -> str:
        return (f"{self.irreps_in} -> {self.irreps_out}, kernel_size={self.kernel_size}, group={self.group.name}, "
                f"stride={self.stride}, padding={self.padding}, spacing={self.spacing}")  # fmt: skip


class ImplicitConv2d(_DenseImplicitConv):
    r"""Steerable ``conv2d`` with an implicit kernel, for groups that preserve the plane :math:`z = 0`
    (``c<N>``, ``d<N>``, ``so2``, ``o2``, ``cone``, ...; exact on the grid for C4 and D4).

    Args:
        irreps_in, irreps_out (str or Irreps): Fields per pixel (channels = their dimension).
        kernel_size (int): Window size :math:`k`.
        group (str or Group): The symmetry group. (default: ``"c4"``)
        stride, padding (int): As for ``conv2d`` (exact equivariance needs symmetric padding and,
            with stride :math:`s`, :math:`H + 2p - k` divisible by :math:`s`).
        spacing (float): Distance between pixel centres in kernel units. (default: :obj:`0.5`)
        bias (bool): A :math:`G`-invariant bias. (default: :obj:`True`)
        **kernel_kwargs: Passed to :class:`~pyg_implicit.nn.ImplicitKernel` (``lmax``,
            ``hidden_irreps``, ``mlp_layers``, ``activation``, ``sigma``). On a small window the
            kernel network's width buys little: on the 3x3 grid a G-MLP with ``hidden_irreps="0e+1o+2e"``
            already reaches every C4-steerable kernel between ``0e+1o+2e`` fields, with as many weights
            in its bilinear map as the space has dimensions (183); the default width 8 spends 8x as many
            on the same kernels (``examples/kernel_span.py``).

    Shapes:
        - **input:** :math:`(B, d_{in}, H, W)`
        - **output:** :math:`(B, d_{out}, H', W')`
    """

    dims = 2


class ImplicitConv3d(_DenseImplicitConv):
    r"""Steerable ``conv3d`` with an implicit kernel: as :class:`ImplicitConv2d` on voxel grids,
    axes ``(-3, -2, -1)`` = :math:`(x, y, z)`; exact for the groups that map the cubic grid onto
    itself (subgroups of ``oh``).

    Shapes:
        - **input:** :math:`(B, d_{in}, D, H, W)`
        - **output:** :math:`(B, d_{out}, D', H', W')`
    """

    dims = 3


def transform_field_image(x: Tensor, irreps: IrrepsLike, R: Tensor, mode: str = "bilinear") -> Tensor:
    r""":math:`(g f)(p) = \rho(R) f(R^{-1} p)` for a 2D field image ``[B, d, H, W]`` (square, axes = :math:`(x, y)`).

    ``R`` is a 3x3 matrix preserving the plane :math:`z = 0`. When it maps pixel centres onto pixel
    centres (multiples of 90 degrees, mirrors) the pixels are permuted exactly
    (:func:`~pyg_implicit.nn.image_action.transform_image`); otherwise they are resampled with
    ``grid_sample`` (``align_corners=True``, ``mode``, zeros outside the image).
    """
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x: expected a square field image (B, d, H, H), got {tuple(x.shape)}")
    R = R.to(x)
    if not torch.allclose(R[2, :2], R.new_zeros(2), atol=1e-9) or not torch.allclose(R[:2, 2], R.new_zeros(2), atol=1e-9):
        raise ValueError("R: expected a transformation that preserves the plane z = 0")
    if grid_preserving(R):  # 90-degree turns and mirrors permute the pixels: exact
        moved = transform_image(x, R)
    else:
        n = x.shape[-1]
        coords = torch.linspace(-1.0, 1.0, n, dtype=x.dtype, device=x.device)
        px, py = torch.meshgrid(coords, coords, indexing="ij")  # output pixel (x, y) in normalised units
        source = torch.stack([px, py], dim=-1) @ R[:2, :2]  # R^{-1} p = R^T p, as rows: p^T R
        grid = source.flip(-1).unsqueeze(0).expand(x.shape[0], -1, -1, -1)  # grid_sample wants (W, H) = (y, x)
        moved = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=True)
    D = irreps_D(irreps, R)
    return torch.einsum("ij,bjhw->bihw", D.to(x), moved)
