r"""A steerable CNN for images with implicit (or explicit-basis) kernels (paper sec. 3.5), in the layout of the G-CNN networks."""
from __future__ import annotations

from functools import partial
from typing import Optional, Union

import torch
from e3nn import nn as e3nn_nn
from torch import Tensor, nn
from torch.nn import functional as F

from ..checkpoint import saveable
from ..groups import Group, get_group
from ..nn.activation import activation as make_activation
from ..nn.invariants import InvariantSplit
from ..nn.norm import EquivariantBatchNorm
from ..irreps import IrrepsLike, as_irreps
from ..nn.basis_conv import BasisConv2d
from ..nn.dense_conv import ImplicitConv2d


@saveable
class SteerableImageCNN(nn.Module):
    r"""Seven steerable convolutions (:class:`~pyg_implicit.nn.dense_conv.ImplicitConv2d`; 3x3, the last 4x4) with
    equivariant batch norm and an equivariant nonlinearity, 2x2 max pooling of the field norms' pixels after
    the second (:math:`28 \to 26 \to 24 \to 12 \to 10 \to 8 \to 6 \to 4 \to 1`); the last layer
    returns ``num_classes`` invariant scalars. For C4 / D4 the logits are exactly invariant to
    90-degree rotations (and flips) of the input; for ``so2`` up to resampling. With
    ``invariant_group`` a subgroup :math:`K` of ``group``, the last layer's kernel is constrained by
    :math:`K` only: the hidden layers stay :math:`G`-steerable and the logits are invariant to
    :math:`K` alone (``group="d4", invariant_group="c4"``: mirror-equivariant features, logits that
    tell a digit from its mirror image).

    Pooling picks, per field, the pixel of largest norm in each 2x2 window (so fields stay fields).
    Dropout after every hidden layer drops whole fields of a pixel (all components of a field are
    zeroed together and the kept ones scaled by :math:`1/(1-p)`), the equivariant counterpart of the
    G-CNNs' element-wise dropout.

    Args:
        hidden_irreps (str or Irreps): Fields per pixel in the hidden layers.
        group (str or Group): A plane-preserving group (``c4``, ``d4``, ``so2``, ...). (default: ``"c4"``)
        num_classes (int): Output logits. (default: :obj:`10`)
        kernel_hidden_irreps (str or Irreps, optional): Hidden irreps of the kernels' G-MLP.
        dropout (float): Probability of dropping a field of a pixel after each hidden layer. (default: :obj:`0.0`)
        invariant_group (str or Group, optional): The subgroup of ``group`` the logits are invariant
            to. (default: ``group``)
        activation (str): Nonlinearity after every hidden layer: ``"gate"``
            (:class:`~pyg_implicit.nn.InvariantGate`: functions of the fields' :math:`G`-invariants
            scale them) or ``"orbit_elu"`` (:class:`~pyg_implicit.nn.OrbitELU`, finite groups and
            hidden irreps ``mul x (0e + 1o + 2e)``: each channel an ELU of its values on the
            group's orbits on the sphere, as the G-CNNs' ReLU acts on :math:`|G|` orientations).
            (default: ``"gate"``)
        batch_norm (str): ``"o3"`` (e3nn's ``BatchNorm``: ``0e`` fields centred, every other field
            divided by its RMS norm) or ``"group"`` (:class:`~pyg_implicit.nn.EquivariantBatchNorm`
            over ``group``: every :math:`G`-invariant component centred and given its own bias, e.g.
            under C4 the :math:`z` component of a ``1o`` field, every :math:`G`-stable block scaled
            apart). (default: ``"o3"``)
        kernel (str): ``"implicit"`` (:class:`~pyg_implicit.nn.dense_conv.ImplicitConv2d`, the
            paper's kernel G-MLP at the pixel centres) or ``"basis"``
            (:class:`~pyg_implicit.nn.basis_conv.BasisConv2d`: weights times an orthonormal basis of
            every steerable kernel on the grid; C4 / D4 only, no kernel keyword arguments): the same
            kernel space, parametrised explicitly. (default: ``"implicit"``)
        readout_irreps (str or Irreps, optional): With ``None`` the last kernel maps straight to
            ``num_classes`` invariant scalars, so the logits are a *linear* invariant map of the last
            hidden layer. Otherwise it maps to these fields, and the logits are a linear map of all
            their invariants under ``invariant_group``
            (:class:`~pyg_implicit.nn.invariants.InvariantSplit`: invariant components and the norms of
            the stable blocks): a nonlinear invariant readout, the counterpart of a G-CNN's max over
            its group axis. (default: :obj:`None`)
        **kernel_kwargs: Passed to every :class:`~pyg_implicit.nn.dense_conv.ImplicitConv2d`.

    Shapes:
        - **input:** :math:`(B, 1, 28, 28)` (one scalar field)
        - **output:** :math:`(B, \text{num\_classes})`
    """

    def __init__(
        self,
        hidden_irreps: IrrepsLike,
        group: Union[str, Group] = "c4",
        num_classes: int = 10,
        kernel_hidden_irreps: Optional[IrrepsLike] = None,
        dropout: float = 0.0,
        invariant_group: Optional[Union[str, Group]] = None,
        activation: str = "gate",
        batch_norm: str = "o3",
        kernel: str = "implicit",
        readout_irreps: Optional[IrrepsLike] = None,
        **kernel_kwargs,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.dropout = dropout
        if kernel_hidden_irreps is not None:
            kernel_kwargs["hidden_irreps"] = kernel_hidden_irreps
        hidden = as_irreps(hidden_irreps, "hidden_irreps")
        widths = [as_irreps("1x0e", "in")] + [hidden] * 6
        if kernel == "implicit":
            conv = partial(ImplicitConv2d, **kernel_kwargs)
        elif kernel == "basis":
            if kernel_kwargs:
                raise ValueError(f"kernel: 'basis' takes no kernel keyword arguments, got {sorted(kernel_kwargs)}")
            conv = BasisConv2d
        else:
            raise ValueError(f"kernel: expected 'implicit' or 'basis', got {kernel!r}")
        self.convs = nn.ModuleList(conv(a, b, 3, group) for a, b in zip(widths, widths[1:]))
        self.group = self.convs[0].group
        if batch_norm not in ("o3", "group"):
            raise ValueError(f"batch_norm: expected 'o3' or 'group', got {batch_norm!r}")
        norm = (lambda: e3nn_nn.BatchNorm(hidden)) if batch_norm == "o3" else (lambda: EquivariantBatchNorm(hidden, self.group))
        self.norms = nn.ModuleList(norm() for _ in range(6))
        self.acts = nn.ModuleList(make_activation(activation, hidden, self.group) for _ in range(6))
        invariant_group = self.group if invariant_group is None else get_group(invariant_group)
        if not invariant_group.is_subgroup_of(self.group):
            raise ValueError(f"invariant_group: expected a subgroup of {self.group.name}, got {invariant_group.name!r}")
        if readout_irreps is None:
            self.out = conv(hidden, f"{num_classes}x0e", 4, invariant_group)
            self.readout = None
        else:
            readout_irreps = as_irreps(readout_irreps, "readout_irreps")
            self.out = conv(hidden, readout_irreps, 4, invariant_group)
            self.invariants = InvariantSplit(readout_irreps, invariant_group)
            self.readout = nn.Linear(self.invariants.num_invariants, num_classes)
        self._field_dims = [ir.dim for mul, ir in hidden for _ in range(mul)]
        channel_field = [f for f, dim in enumerate(self._field_dims) for _ in range(dim)]
        self.register_buffer("_channel_field", torch.tensor(channel_field), persistent=False)

    def _pool(self, x: Tensor) -> Tensor:
        """2x2 max pooling of each field by its norm (the whole field moves with the chosen pixel)."""
        b, c, h, w = x.shape
        norms = torch.zeros(b, len(self._field_dims), h, w, dtype=x.dtype, device=x.device)
        norms = norms.index_add(1, self._channel_field, x.pow(2))  # squared norm of every field
        _, index = F.max_pool2d(norms, 2, return_indices=True)  # [B, fields, h/2, w/2], flat pixel indices
        index = index[:, self._channel_field].flatten(2)  # the chosen pixel of each channel's field
        return x.flatten(2).gather(2, index).view(b, c, h // 2, w // 2)

    def _field_dropout(self, x: Tensor) -> Tensor:
        """Zero each field of each pixel with probability ``dropout`` (training only), scale the rest."""
        if not self.training or self.dropout == 0.0:
            return x
        b, _, h, w = x.shape
        keep = torch.rand(b, len(self._field_dims), h, w, device=x.device) >= self.dropout
        return x * keep[:, self._channel_field].to(x.dtype) / (1.0 - self.dropout)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"x: expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        for i, (conv, norm, act) in enumerate(zip(self.convs, self.norms, self.acts)):
            x = conv(x).movedim(1, -1)
            x = self._field_dropout(act(norm(x)).movedim(-1, 1))
            if i == 1:
                x = self._pool(x)
        x = self.out(x).flatten(1)
        return x if self.readout is None else self.readout(self.invariants.invariants(x))
