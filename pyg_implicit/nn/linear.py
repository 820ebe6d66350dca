r"""The :math:`G`-equivariant linear layer between fields of restricted irreps."""
from __future__ import annotations

import math
from typing import List, Tuple, Union

import torch
from e3nn import o3
from torch import nn

from ..groups import Group, get_group
from ..irreps import Field, IrrepsLike, as_irreps, check_features, fields


def register_invariant_bias(module: nn.Module, irreps: o3.Irreps, group: Group) -> Tuple[Field, ...]:
    """Give ``module`` a bias in the :math:`G`-invariant subspace of each field of ``irreps``.

    Registers the invariant vectors of field ``q`` as buffer ``bias_basis_q`` and their
    coefficients (one per copy of the field) as the parameter ``module.bias`` (``None`` when no
    field has invariant vectors); returns the fields, for :func:`invariant_bias_vector`.
    """
    bias_fields = []
    for f, (mul, ir) in zip(fields(irreps), irreps):
        inv = group.invariant_basis(ir)  # [n, d]
        if inv.shape[0] and mul:
            module.register_buffer(f"bias_basis_{len(bias_fields)}", inv.to(torch.get_default_dtype()), persistent=False)
            bias_fields.append(f)
    n_bias = sum(f.mul * getattr(module, f"bias_basis_{q}").shape[0] for q, f in enumerate(bias_fields))
    module.bias = nn.Parameter(torch.zeros(n_bias)) if n_bias else None
    return tuple(bias_fields)


def fan_in_parameterisation(module: nn.Module, numels: List[int], fan_ins: List[int]) -> None:
    r"""Store ``module.weight`` at the scale of a ``torch.nn.Linear``: path :math:`p` (``numels[p]``
    consecutive entries) is drawn from :math:`\mathcal{N}(0, 1 / \text{fan\_in}_p)` by
    :meth:`reset_parameters`, and the basis that multiplies it carries no :math:`1/\sqrt{\text{fan\_in}}`.

    At initialisation the map equals e3nn's (unit weights, :math:`1/\sqrt{\text{fan\_in}}` in the
    forward pass); under one optimiser learning rate, Adam's step (about ``lr`` per weight) is then
    the same fraction of the weights' size as for the plain ``torch.nn.Linear`` layers of the same
    model, where e3nn's convention makes it :math:`\sqrt{\text{fan\_in}}` times smaller (8-50x in
    this package's models). Registers the per-entry initial scale as buffer ``weight_init_std``.
    State dicts of version 1 (the module's ``_version``; unit-scale weights) are converted on load.
    """
    std = torch.cat([torch.full((n,), f**-0.5) for n, f in zip(numels, fan_ins)]) if numels else torch.zeros(0)
    module.register_buffer("weight_init_std", std.to(torch.get_default_dtype()), persistent=False)
    module.register_load_state_dict_pre_hook(_load_fan_in_weights)


def _load_fan_in_weights(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict, *args) -> None:
    """Load-state-dict pre-hook: convert a version-1 state dict (weights at e3nn's unit scale) to
    the fan-in scale, in place, so that old checkpoints compute what they computed."""
    version = local_metadata.get("version")
    key = prefix + "weight"
    if version is not None and version < 2 and key in state_dict:
        state_dict[key] = state_dict[key] * module.weight_init_std.to(state_dict[key])


def invariant_bias_vector(module: nn.Module, bias_fields: Tuple[Field, ...], dim: int) -> torch.Tensor:
    """The bias ``[dim]`` registered by :func:`register_invariant_bias`: coefficients times invariant vectors."""
    b = module.bias.new_zeros(dim) if module.bias is not None else torch.zeros(dim)
    offset = 0
    for q, f in enumerate(bias_fields):
        inv = getattr(module, f"bias_basis_{q}")  # [n, d]
        coeff = module.bias[offset : offset + f.mul * inv.shape[0]].view(f.mul, inv.shape[0])
        offset += coeff.numel()
        b[f.start : f.stop] = (coeff @ inv).reshape(-1)
    return b


class EquivariantLinear(nn.Module):
    r"""Linear map :math:`y = W x + b` with :math:`W \rho_{in}(g) = \rho_{out}(g) W` for all :math:`g \in G`.

    For every pair of input and output irreps the admissible maps are spanned by
    ``group.linear_basis(ir_in, ir_out)``; :math:`W` is a learned combination of them, assembled
    once per forward pass. The bias lives in the :math:`G`-invariant subspace of each output irrep
    (only ``0e`` for :math:`O(3)`; e.g. the :math:`z` component of ``1o`` for :math:`SO(2)`). One
    parameterisation for every group (for :math:`O(3)` it spans what ``e3nn.o3.Linear`` spans):
    the state dict holds ``weight`` (path coefficients) and ``bias`` (invariant coefficients) whatever the group.

    Initialisation: every output component has unit variance for unit-variance inputs (e3nn's
    ``component`` normalisation), bias zero. The weights are stored at the scale of a
    ``torch.nn.Linear`` (:math:`\mathcal{N}(0, 1/\text{fan\_in})`, see :func:`fan_in_parameterisation`),
    not at e3nn's unit scale, so that one learning rate trains them and the model's plain layers alike.

    Args:
        irreps_in (str or Irreps): Input irreps.
        irreps_out (str or Irreps): Output irreps.
        group (str or Group): The symmetry group, see :func:`pyg_implicit.groups.get_group`.
        bias (bool): Learn a :math:`G`-invariant bias. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(*, \dim \rho_{in})`
        - **output:** :math:`(*, \dim \rho_{out})`
    """

    _version = 2  # 1: weights at e3nn's unit scale (converted on load)

    def __init__(self, irreps_in: IrrepsLike, irreps_out: IrrepsLike, group: Union[str, Group] = "o3", bias: bool = True) -> None:
        super().__init__()
        self.irreps_in = as_irreps(irreps_in, "irreps_in")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.group = get_group(group)
        self._dim_in, self._dim_out = self.irreps_in.dim, self.irreps_out.dim
        dtype = torch.get_default_dtype()
        in_slices, out_slices = self.irreps_in.slices(), self.irreps_out.slices()
        # One path per (input block, output block) with a non-empty basis.
        paths, fan_in = [], [0] * len(self.irreps_out)
        for i, (mul_in, ir_in) in enumerate(self.irreps_in):
            for j, (mul_out, ir_out) in enumerate(self.irreps_out):
                n = self.group.linear_basis(ir_in, ir_out).shape[0]
                if n and mul_in and mul_out:
                    paths.append((i, j, n))
                    fan_in[j] += mul_in * n
        self._slices = [(in_slices[i], out_slices[j]) for i, j, _ in paths]
        for p, (i, j, n) in enumerate(paths):
            basis = self.group.linear_basis(self.irreps_in[i].ir, self.irreps_out[j].ir)  # [n, d_out, d_in]
            scale = math.sqrt(self.irreps_out[j].ir.dim)
            self.register_buffer(f"basis_{p}", (scale * basis).to(dtype), persistent=False)
        self.weight_shapes = [(self.irreps_in[i].mul, self.irreps_out[j].mul, n) for i, j, n in paths]
        self.weight = nn.Parameter(torch.empty(sum(math.prod(s) for s in self.weight_shapes)))
        fan_in_parameterisation(self, [math.prod(s) for s in self.weight_shapes], [fan_in[j] for _, j, _ in paths])
        self.bias = None
        self._bias_fields = register_invariant_bias(self, self.irreps_out, self.group) if bias else ()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_().mul_(self.weight_init_std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @torch.no_grad()
    def scale_weights_(self, factor: float) -> None:
        """Multiply the weights (not the bias) by ``factor``: with a zero bias the output scales too.

        Through ``.data``: a forward pass that already used the weights can still be differentiated."""
        self.weight.data.mul_(factor)

    def matrix(self) -> torch.Tensor:
        """The assembled weight :math:`W^T` as a ``[dim_in, dim_out]`` matrix."""
        W = self.weight.new_zeros(self._dim_in, self._dim_out)
        offset = 0
        for p, ((s_in, s_out), shape) in enumerate(zip(self._slices, self.weight_shapes)):
            w = self.weight[offset : offset + math.prod(shape)].view(shape)
            offset += math.prod(shape)
            block = torch.einsum("uwk,kji->uiwj", w, getattr(self, f"basis_{p}"))
            W[s_in, s_out] = block.reshape(s_in.stop - s_in.start, s_out.stop - s_out.start)  # one path per block
        return W

    def bias_vector(self) -> torch.Tensor:
        """The assembled invariant bias ``[dim_out]``."""
        return invariant_bias_vector(self, self._bias_fields, self._dim_out).to(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features(x, self._dim_in, "x", self.irreps_in)
        return x @ self.matrix() + self.bias_vector()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in} -> {self.irreps_out}, group={self.group.name})"
