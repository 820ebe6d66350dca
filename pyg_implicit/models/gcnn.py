r"""The rotated-MNIST networks of Cohen & Welling (2016): Z2CNN and its p4 / p4m versions."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..checkpoint import saveable
from ..nn.group_conv import GroupConv2d, coset_max_pool
from ..nn.image_action import grid_group

DEFAULT_CHANNELS = {"z2": 20, "p4": 10, "p4m": 7}  # about equal parameter counts: 20^2 ~ 4 * 10^2 ~ 8 * 7^2


@saveable
class GCNN(nn.Module):
    r"""Seven 3x3 / 4x4 convolutions with batch norm, ReLU and dropout, 2x2 max pooling after the second.

    ``group="z2"`` is the plain CNN (Z2CNN); ``"p4"`` / ``"p4m"`` replace every convolution by a
    lifting and then group convolutions and max-pool the output over the point group :math:`H`
    (coset pooling), so the logits are invariant to 90-degree rotations (and mirrors) of the input.
    With ``invariant_group`` a subgroup :math:`K \subset H`, the output is pooled over :math:`K`
    only, :math:`\max_{k \in K} f(k)`, which is invariant to :math:`K` and not to the rest of
    :math:`H`: a p4m network with ``invariant_group="c4"`` is mirror-equivariant inside and its
    logits tell a digit from its mirror image (a mirrored 5 reads as a 2), as the labels of
    rotated MNIST require. Shapes follow the paper: 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> 6 -> 4 -> (4x4) 1.
    ``readout="mean"`` averages over the group axis instead, :math:`\frac{1}{|K|}\sum_{k \in K} f(k)`:
    then the logits are a *linear* invariant map of the last hidden layer, as in an implicit-kernel
    CNN whose last kernel outputs invariant scalars (an ablation of the max).

    Args:
        group (str): ``"z2"``, ``"p4"`` or ``"p4m"``.
        channels (int, optional): Channels per layer (per group element). (default: 20 / 10 / 7)
        num_classes (int): Output logits. (default: :obj:`10`)
        in_channels (int): Image channels. (default: :obj:`1`)
        dropout (float): Dropout probability after each hidden layer. (default: :obj:`0.3`)
        invariant_group (str, optional): The subgroup of the point group (``"c4"``, ``"c2"``, ...; for
            ``"p4"`` / ``"p4m"``) the logits are invariant to. (default: the whole point group)
        readout (str): ``"max"`` (coset max pooling, the paper's) or ``"mean"`` over the group axis
            (``"p4"`` / ``"p4m"`` only). (default: ``"max"``)

    Shapes:
        - **input:** :math:`(B, C_{in}, 28, 28)`
        - **output:** :math:`(B, \text{num\_classes})`
    """

    def __init__(self, group: str = "z2", channels: Optional[int] = None, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.3,
                 invariant_group: Optional[str] = None, readout: str = "max") -> None:
        super().__init__()
        if group not in DEFAULT_CHANNELS:
            raise ValueError(f"group: expected 'z2', 'p4' or 'p4m', got {group!r}")
        self.group = group
        c = channels or DEFAULT_CHANNELS.get(group, 0)
        if c < 1:
            raise ValueError(f"channels: expected a positive int, got {channels!r}")
        widths = [in_channels] + [c] * 6
        self.convs = nn.ModuleList(self._conv(a, b, 3, lifting=(i == 0)) for i, (a, b) in enumerate(zip(widths, widths[1:])))
        norm = nn.BatchNorm2d if group == "z2" else nn.BatchNorm3d  # group maps: statistics shared over the group axis
        self.norms = nn.ModuleList(norm(c) for _ in range(6))
        self.dropout = nn.Dropout(dropout)
        self.out = self._conv(c, num_classes, 4, lifting=False)
        if group != "z2":
            self.register_buffer("_pooled", self._pooled_elements(invariant_group), persistent=False)
        elif invariant_group is not None:
            raise ValueError(f"invariant_group: the Z2CNN has no point group to pool over, got {invariant_group!r}")
        if readout not in ("max", "mean") or (group == "z2" and readout != "max"):
            raise ValueError(f"readout: expected 'max' or 'mean' (a G-CNN's pooling over its group axis), got {readout!r} for group {group!r}")
        self.readout = readout

    def _pooled_elements(self, invariant_group: Optional[str]) -> Tensor:
        """Indices on the group axis of the elements of ``invariant_group`` (all of them by default)."""
        elements = self.out.group.coset_representatives
        if invariant_group is None:
            return torch.arange(len(elements))
        subgroup = grid_group(invariant_group)
        if not subgroup.is_subgroup_of(self.out.group):
            raise ValueError(f"invariant_group: expected a subgroup of {self.out.group.name}, got {subgroup.name!r}")
        return torch.nonzero(subgroup.contains(elements)).flatten()

    def _conv(self, a: int, b: int, k: int, lifting: bool) -> nn.Module:
        if self.group == "z2":
            return nn.Conv2d(a, b, k)
        return GroupConv2d(a, b, k, self.group, lifting=lifting)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-2:] != (28, 28):
            raise ValueError(f"x: expected images of shape (B, C, 28, 28), got {tuple(x.shape)}")
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = self.dropout(torch.relu(norm(conv(x))))
            if i == 1:
                x = nn.functional.max_pool2d(x.flatten(1, 2) if x.dim() == 5 else x, 2).view(*x.shape[:-2], 12, 12)
        x = self.out(x)
        if x.dim() == 5:
            x = coset_max_pool(x, self._pooled) if self.readout == "max" else x[:, :, self._pooled].mean(2)  # over the invariant subgroup
        return x.flatten(1)
