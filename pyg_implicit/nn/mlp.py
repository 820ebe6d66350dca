r"""The :math:`G`-equivariant MLP: equivariant linear layers alternated with equivariant nonlinearities."""
from __future__ import annotations

from typing import Union

import torch
from torch import nn

from ..groups import Group, get_group
from ..irreps import IrrepsLike, as_irreps
from .activation import activation as make_activation
from .linear import EquivariantLinear


class EquivariantMLP(nn.Module):
    r"""A :math:`G`-MLP :math:`x \mapsto \sigma(W_n \cdots \sigma(W_1 x + b_1) \cdots + b_n)`.

    Every :math:`W_i` is an :class:`EquivariantLinear` and :math:`\sigma` an equivariant
    nonlinearity (:class:`InvariantGate` of :math:`G` by default), so the MLP is :math:`G`-equivariant.

    Args:
        irreps_in (str or Irreps): Input irreps.
        irreps_hidden (str or Irreps): Irreps of every hidden layer.
        irreps_out (str or Irreps): Output irreps.
        num_layers (int): Number of linear layers :math:`n \ge 1`.
        group (str or Group): The symmetry group. (default: ``"o3"``)
        activation (str): ``"gate"``, ``"scalar_gate"`` or ``"quotient_elu"``
            (:func:`~pyg_implicit.nn.activation.activation`). (default: ``"gate"``)
        activate_last (bool): Apply :math:`\sigma` after the last layer too. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(*, \dim_{in})`
        - **output:** :math:`(*, \dim_{out})`
    """

    def __init__(
        self,
        irreps_in: IrrepsLike,
        irreps_hidden: IrrepsLike,
        irreps_out: IrrepsLike,
        num_layers: int,
        group: Union[str, Group] = "o3",
        activation: str = "gate",
        activate_last: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers: expected an int >= 1, got {num_layers!r}")
        self.irreps_in = as_irreps(irreps_in, "irreps_in")
        self.irreps_hidden = as_irreps(irreps_hidden, "irreps_hidden")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.group = get_group(group)
        dims = [self.irreps_in] + [self.irreps_hidden] * (num_layers - 1) + [self.irreps_out]
        layers = []
        for i in range(num_layers):
            layers.append(EquivariantLinear(dims[i], dims[i + 1], self.group))
            if i < num_layers - 1 or activate_last:
                layers.append(make_activation(activation, dims[i + 1], self.group))
        self.layers = nn.Sequential(*layers)

    def reset_parameters(self) -> None:
        for layer in self.layers:
            if hasattr(layer, "reset_parameters"):  # QuotientELU has no parameters
                layer.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_hidden} -> {self.irreps_out}, "
            f"layers={sum(isinstance(m, EquivariantLinear) for m in self.layers)}, group={self.group.name})"
        )

