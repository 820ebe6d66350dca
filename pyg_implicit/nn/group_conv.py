r"""Regular group convolutions on the pixel grid (Cohen & Welling, 2016): p4, p4m and their subgroups.

The point group :math:`H` is a :class:`~pyg_implicit.groups.Group` that maps the pixel grid onto
itself: ``c4`` (p4, the 4 rotations by multiples of 90 degrees), ``d4`` (p4m, with the mirrors, 8
elements) or a subgroup of them. An element acts on an image (or a filter) by
:math:`(L_h f)(x) = f(h^{-1} x)` (:func:`~pyg_implicit.nn.image_action.transform_image`). Feature
maps on the group carry an extra axis of size :math:`|H|`, indexed by the elements of
``group.coset_representatives``:

* lifting (:math:`\mathbb{Z}^2 \to G`): :math:`[f \star \psi](h) = f \star L_h \psi`;
* group convolution (:math:`G \to G`): :math:`[f \star \psi](h) = \sum_{k \in H} f(k) \star L_h \psi(h^{-1} k)`;
* coset max pooling: :math:`\max_{h \in H} f(h)`, a function on :math:`\mathbb{Z}^2` again.

Equivariance: :math:`\Phi(L_g f) = L_g \Phi(f)` where :math:`L_g` on a group feature map moves
pixels and permutes the group axis, :math:`(L_g f)(h) = L_g f(g^{-1} h)`
(:func:`~pyg_implicit.nn.image_action.transform_group_map`). It is exact whenever rotating the input about its centre maps the
sampling grid onto itself: stride 1 with symmetric padding, any kernel size; with stride
:math:`s`, when :math:`H + 2p - k` is divisible by :math:`s`.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..groups import Group
from .image_action import grid_group, multiplication_table, transform_image

__all__ = ["GroupConv2d", "coset_max_pool"]


class GroupConv2d(nn.Module):
    r"""Group convolution on p4 / p4m (or a subgroup), lifting (:math:`\mathbb{Z}^2 \to G`) or group-to-group.

    The filter bank of the :math:`|H|` output orientations is assembled from one learned filter
    per (output, input) channel pair by :math:`L_h` (and, for group inputs, the permutation
    :math:`k \mapsto h^{-1}k` of the input's group axis), then applied with a single ``conv2d``.

    Args:
        in_channels (int): Input channels (per group element for group inputs).
        out_channels (int): Output channels per group element.
        kernel_size (int): Filter size.
        group (str or Group): The point group: ``"c4"``, ``"d4"`` (also by their wallpaper names
            ``"p4"``, ``"p4m"``) or another finite group that maps the grid onto itself. (default: ``"c4"``)
        lifting (bool): Input is an image ``[B, C, H, W]`` (:obj:`True`) or a group feature map
            ``[B, C, |H|, H, W]``. (default: :obj:`False`)
        stride, padding (int): As for ``conv2d``.
        bias (bool): One bias per output channel, shared over the group axis. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)` (lifting) or :math:`(B, C_{in}, |H|, H, W)`
        - **output:** :math:`(B, C_{out}, |H|, H', W')`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        group: Union[str, Group] = "c4",
        lifting: bool = False,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if not (isinstance(kernel_size, int) and kernel_size > 0):
            raise ValueError(f"kernel_size: expected a positive int, got {kernel_size!r}")
        self.group, self.lifting = grid_group(group), lifting
        self.order = int(self.group.order)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding = stride, padding
        in_orientations = 1 if lifting else self.order
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, in_orientations, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        table, inverse = multiplication_table(self.group)
        # index[h, k]: which learned input orientation feeds input orientation k for output orientation h
        index = torch.tensor([[table[inverse[h]][k] for k in range(self.order)] for h in range(self.order)])
        self.register_buffer("_input_permutation", index, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.weight[0].numel()
        nn.init.kaiming_uniform_(self.weight.view(self.out_channels, -1), a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def filters(self) -> Tensor:
        """The assembled filter bank ``[C_out * |H|, C_in * (1 or |H|), k, k]`` (output index ``c * |H| + h``)."""
        banks = []
        for h in range(self.order):
            w = self.weight if self.lifting else self.weight[:, :, self._input_permutation[h]]
            banks.append(transform_image(w, self.group.coset_representatives[h]))
        w = torch.stack(banks, dim=1)  # [C_out, |H|, C_in, in_orientations, k, k]
        return w.reshape(self.out_channels * self.order, -1, self.kernel_size, self.kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        expected = 4 if self.lifting else 5
        if x.dim() != expected or x.shape[1] != self.in_channels or (not self.lifting and x.shape[2] != self.order):
            shape = "(B, C_in, H, W)" if self.lifting else f"(B, C_in, {self.order}, H, W)"
            raise ValueError(f"x: expected shape {shape} with C_in = {self.in_channels}, got {tuple(x.shape)}")
        if not self.lifting:
            x = x.flatten(1, 2)
        out = F.conv2d(x, self.filters(), stride=self.stride, padding=self.padding)
        out = out.view(x.shape[0], self.out_channels, self.order, *out.shape[-2:])
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1, 1)
        return out

    def extra_repr(self) -> str:
        kind = "Z2 -> " if self.lifting else ""
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, {kind}{self.group.name}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")  # fmt: skip


def coset_max_pool(x: Tensor, elements: Optional[Tensor] = None) -> Tensor:
    r"""Max over the group axis: ``[B, C, |H|, H, W] -> [B, C, H, W]``, invariant to the point group's permutation (a :math:`\mathbb{Z}^2` feature map).

    ``elements`` (indices on the group axis of a subgroup :math:`K \subset H`) restricts the max to
    :math:`K`: invariant to :math:`K`, not to the rest of :math:`H`.
    """
    if x.dim() != 5:
        raise ValueError(f"x: expected a group feature map (B, C, |H|, H, W), got shape {tuple(x.shape)}")
    return (x if elements is None else x[:, :, elements]).max(dim=2).values
