r"""The learned :math:`G`-equivariant bilinear map :math:`B(x_1, x_2)` (a fully connected tensor product)."""
from __future__ import annotations

import math
import warnings
from typing import Union

import torch
from e3nn import o3
from torch import nn

from ..groups import Group, get_group
from ..irreps import IrrepsLike, as_irreps, check_features, e3nn_irreps, fields

_CHUNK_ELEMENTS = 1 << 22  # entries of the transient [rows, d2, d_out] block of _DenseBilinear


class _DenseBilinear(torch.autograd.Function):
    r""":math:`y_{eo} = \sum_{ab} x_{1,ea}\, x_{2,eb}\, T_{abo}` that saves only :math:`x_1, x_2, T`.

    Autograd would keep the per-row intermediate :math:`x_1 T` (``[E, d2, d_out]``) for the
    backward pass; here it is recomputed there, chunk by chunk, so memory per row is
    :math:`O(d_1 + d_2 + d_{out})`, at the price of one more matrix product. The backward is
    written with differentiable torch operations, so double backward works too.
    """

    @staticmethod
    def forward(ctx, x1: torch.Tensor, x2: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x1, x2, T)
        d1, d2, d_out = T.shape
        T = T.reshape(d1, d2 * d_out)
        out = x1.new_empty(x1.shape[0], d_out)
        for rows in _chunks(x1.shape[0], d2 * d_out):
            partial = (x1[rows] @ T).view(-1, d2, d_out)
            out[rows] = torch.einsum("eb,ebo->eo", x2[rows], partial)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x1, x2, T = ctx.saved_tensors
        d1, d2, d_out = T.shape
        T = T.reshape(d1, d2 * d_out)
        grad_x1, grad_x2, grad_T = torch.empty_like(x1), torch.empty_like(x2), torch.zeros_like(T)
        for rows in _chunks(x1.shape[0], d2 * d_out):
            partial = (x1[rows] @ T).view(-1, d2, d_out)  # recomputed
            grad_x2[rows] = torch.einsum("ebo,eo->eb", partial, grad_out[rows])
            outer = (x2[rows, :, None] * grad_out[rows, None, :]).reshape(-1, d2 * d_out)
            grad_x1[rows] = outer @ T.T
            grad_T = grad_T + x1[rows].T @ outer
        return grad_x1, grad_x2, grad_T.view(d1, d2, d_out)


def _chunks(n: int, width: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, width))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)] or [slice(0, 0)]


class EquivariantTensorProduct(nn.Module):
    r"""Fully connected :math:`G`-equivariant bilinear map with shared weights.

    .. math::
        B(x_1, x_2)_{w} = \sum_{u, v, k} W^{(p)}_{u v k w}\, C^{(p)}_k(x_{1,u}, x_{2,v})

    summed over the paths :math:`p = (\text{irrep}_1, \text{irrep}_2, \text{irrep}_{out})`, where
    :math:`C^{(p)}_k` runs over ``group.bilinear_basis`` (the Clebsch-Gordan coefficient for
    :math:`O(3)`; several maps per path for smaller groups). For groups containing :math:`SO(3)`
    this is ``e3nn.o3.FullyConnectedTensorProduct``.

    This is the last layer of every steerable kernel in the package: with :math:`x_1 = f_j`
    (the neighbour's features) and :math:`x_2 = h_{ij}` (the kernel network's last hidden
    activation), :math:`B(f_j, h_{ij}) = K(x_{ij}) f_j` without forming :math:`K`.
    :meth:`right` forms it.

    Args:
        irreps_in1 (str or Irreps): Irreps of :math:`x_1`.
        irreps_in2 (str or Irreps): Irreps of :math:`x_2`.
        irreps_out (str or Irreps): Output irreps.
        group (str or Group): The symmetry group. (default: ``"o3"``)

    Shapes:
        - **input:** :math:`x_1: (*, \dim_1)`, :math:`x_2: (*, \dim_2)`
        - **output:** :math:`(*, \dim_{out})`; :meth:`right`: :math:`(*, \dim_1, \dim_{out})`
    """

    def __init__(
        self,
        irreps_in1: IrrepsLike,
        irreps_in2: IrrepsLike,
        irreps_out: IrrepsLike,
        group: Union[str, Group] = "o3",
    ) -> None:
        super().__init__()
        self.irreps_in1 = as_irreps(irreps_in1, "irreps_in1")
        self.irreps_in2 = as_irreps(irreps_in2, "irreps_in2")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.group = get_group(group)
        self._dims = (self.irreps_in1.dim, self.irreps_in2.dim, self.irreps_out.dim)
        if self.group.contains_so3:
            self.e3nn = o3.FullyConnectedTensorProduct(
                *(e3nn_irreps(irreps, self.group) for irreps in (self.irreps_in1, self.irreps_in2, self.irreps_out)),
                compile_right=True,
            )
            self.weight_numel = self.e3nn.weight_numel
            self._check_paths([ins.i_out for ins in self.e3nn.instructions])
            return
        self.e3nn = None
        paths, fan_in = [], [0] * len(self.irreps_out)
        for i1, (mul1, ir1) in enumerate(self.irreps_in1):
            for i2, (mul2, ir2) in enumerate(self.irreps_in2):
                for j, (mul_out, ir_out) in enumerate(self.irreps_out):
                    n = self.group.bilinear_basis(ir1, ir2, ir_out).shape[0]
                    if n and mul1 and mul2 and mul_out:
                        paths.append((i1, i2, j, n))
                        fan_in[j] += mul1 * mul2 * n
        f1, f2, self._out_fields = fields(self.irreps_in1), fields(self.irreps_in2), fields(self.irreps_out)
        self._path_fields = tuple((f1[i1], f2[i2], self._out_fields[j]) for i1, i2, j, _ in paths)
        dtype = torch.get_default_dtype()
        for p, (i1, i2, j, n) in enumerate(paths):
            basis = self.group.bilinear_basis(self.irreps_in1[i1].ir, self.irreps_in2[i2].ir, self.irreps_out[j].ir)
            scale = math.sqrt(self.irreps_out[j].ir.dim / fan_in[j])
            self.register_buffer(f"basis_{p}", (scale * basis).to(dtype), persistent=False)  # [n, c, a, b]
        self.weight_shapes = [
            (self.irreps_in1[i1].mul, self.irreps_in2[i2].mul, n, self.irreps_out[j].mul) for i1, i2, j, n in paths
        ]
        self.weight_numel = sum(math.prod(s) for s in self.weight_shapes)
        self._check_paths([j for _, _, j, _ in paths])
        self.weight = nn.Parameter(torch.empty(self.weight_numel))
        self.reset_parameters()

    def _check_paths(self, reached: list) -> None:
        """No admissible path at all is an error (the output would be 0 for every input); output
        fields that no path reaches get a warning (they stay 0, which a layout may intend)."""
        if not reached and self.irreps_out.dim:
            raise ValueError(
                f"irreps_out: no {self.group.name}-equivariant bilinear map {self.irreps_in1} x {self.irreps_in2} -> "
                f"{self.irreps_out} exists (e.g. parity forbids it): the output would always be 0"
            )
        missing = [f"{mul}x{ir}" for j, (mul, ir) in enumerate(self.irreps_out) if mul and j not in set(reached)]
        if missing:
            warnings.warn(
                f"irreps_out: the fields {', '.join(missing)} of {self.irreps_out} are reached by no "
                f"{self.group.name}-equivariant path from {self.irreps_in1} x {self.irreps_in2} and stay 0",
                stacklevel=3,
            )

    def reset_parameters(self) -> None:
        with torch.no_grad():
            (self.e3nn.weight if self.e3nn is not None else self.weight).normal_()

    @torch.no_grad()
    def scale_weights_(self, factor: float) -> None:
        """Multiply every weight by ``factor`` (the map is linear in its weights: outputs scale too).

        Through ``.data``: a forward pass that already used the weights can still be differentiated."""
        (self.e3nn.weight if self.e3nn is not None else self.weight).data.mul_(factor)

    def _paths(self):
        """Per path: the input / output fields, the weights ``[u, v, k, w]`` and the basis ``[k, c, a, b]``."""
        offset = 0
        for p, (shape, (f1, f2, f_out)) in enumerate(zip(self.weight_shapes, self._path_fields)):
            w = self.weight[offset : offset + math.prod(shape)].view(shape)
            offset += math.prod(shape)
            yield f1, f2, f_out, w, getattr(self, f"basis_{p}")

    def tensor(self) -> torch.Tensor:
        r"""The bilinear map as a dense tensor :math:`T` ``[dim_1, dim_2, dim_out]`` (generic path).

        :math:`B(x_1, x_2)_o = \sum_{ij} x_{1,i}\, x_{2,j}\, T_{ijo}`, assembled from the weights and
        the cached bases; its size does not depend on the number of edges.
        """
        T = self.weight.new_zeros(self._dims)
        for f1, f2, f_out, w, basis in self._paths():
            block = torch.einsum("uvkw,kcab->uavbwc", w, basis)
            T[f1.start : f1.stop, f2.start : f2.stop, f_out.start : f_out.stop] = block.reshape(
                f1.stop - f1.start, f2.stop - f2.start, f_out.stop - f_out.start
            )
        return T

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        check_features(x1, self._dims[0], "x1", self.irreps_in1)
        check_features(x2, self._dims[1], "x2", self.irreps_in2)
        if self.e3nn is not None:
            return self.e3nn(x1, x2)
        batch = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
        x1 = x1.expand(*batch, -1).reshape(-1, x1.shape[-1])
        x2 = x2.expand(*batch, -1).reshape(-1, x2.shape[-1])
        T = self.tensor()
        # Contract T with the wider input first, so the transient block holds min(d1, d2) * d_out
        # numbers per row (x2 first with d2 < d1 would be the materialised kernel).
        if self._dims[1] <= self._dims[0]:
            out = _DenseBilinear.apply(x1, x2, T)
        else:
            out = _DenseBilinear.apply(x2, x1, T.transpose(0, 1))
        return out.reshape(*batch, self._dims[2])

    def right(self, x2: torch.Tensor) -> torch.Tensor:
        r"""The linear map :math:`x_1 \mapsto B(x_1, x_2)` as a matrix ``[*, dim_1, dim_out]``."""
        check_features(x2, self._dims[1], "x2", self.irreps_in2)
        if self.e3nn is not None:
            return self.e3nn.right(x2)
        d1, d2, d_out = self._dims
        return (x2 @ self.tensor().transpose(0, 1).reshape(d2, d1 * d_out)).view(*x2.shape[:-1], d1, d_out)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, "
            f"group={self.group.name}, weights={self.weight_numel})"
        )
