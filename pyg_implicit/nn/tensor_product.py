r"""The learned :math:`G`-equivariant bilinear map :math:`B(x_1, x_2)` (a fully connected tensor product)."""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Optional, Union

import torch
from torch import nn

from ..groups import Group, get_group
from ..irreps import IrrepsLike, as_irreps, check_features, fields
from .linear import fan_in_parameterisation

_CHUNK_ELEMENTS = 1 << 20  # entries of the transient [rows, d2, d_out] blocks of _DenseBilinear and _GatheredBilinear


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


class _SlotLayout(NamedTuple):
    r"""Edges sorted by the row of :math:`x_1` they read and grouped in slots of ``width`` edges.

    A row with :math:`n` edges fills :math:`\lceil n / w \rceil` consecutive slots. The k-th edge in
    sorted order is edge ``order[k]``; it sits in slot ``slot[k]`` at column ``col[k]``; slot ``s``
    belongs to row ``slot_row[s]``. ``chunks`` are ``(slots, edges)`` slices of consecutive slots and
    their sorted edges, processed one at a time."""

    order: torch.Tensor  # [E]
    slot: torch.Tensor  # [E], non-decreasing
    col: torch.Tensor  # [E]
    slot_row: torch.Tensor  # [S]
    width: int
    chunks: list


def _slot_layout(index: torch.Tensor, num_rows: int, d1: int, d2: int, d_out: int) -> _SlotLayout:
    r"""The slot width :math:`w` minimises the work :math:`S(w)\,(d_1 + w)` in units of
    :math:`d_2 d_{out}` multiply-adds: each slot contracts its row with :math:`T` once
    (:math:`d_1`) and multiplies :math:`w` edge rows, padding included, by the result. Chunks hold
    about ``_CHUNK_ELEMENTS`` numbers of transient blocks (:math:`P` ``[slots, d2, d_out]``, padded
    edges ``[slots, w, d2 + d_out]``)."""
    degree = torch.bincount(index, minlength=num_rows)
    host_degree = degree.cpu()  # the width is chosen on the host: one transfer, not one per candidate
    max_degree = max(1, int(host_degree.max()))
    candidates = {max_degree} | {1 << k for k in range(max_degree.bit_length())}
    cost = lambda w: int(((host_degree + w - 1) // w).sum()) * (d1 + w)  # noqa: E731
    width = min(sorted(candidates), key=cost)
    slots_per_row = (degree + width - 1) // width
    order = torch.argsort(index, stable=True)
    row = index[order]
    rank = torch.arange(index.numel(), device=index.device) - (torch.cumsum(degree, 0) - degree)[row]
    slot = (torch.cumsum(slots_per_row, 0) - slots_per_row)[row] + torch.div(rank, width, rounding_mode="floor")
    slot_row = torch.repeat_interleave(torch.arange(num_rows, device=index.device), slots_per_row)
    num_slots = slot_row.numel()
    step = max(1, _CHUNK_ELEMENTS // (d2 * d_out + width * (d2 + d_out)))
    starts = list(range(0, num_slots, step)) + [num_slots]
    edges = torch.searchsorted(slot, torch.tensor(starts, device=index.device)).tolist()  # first sorted edge of each
    chunks = [(slice(a, b), slice(ea, eb)) for a, b, ea, eb in zip(starts, starts[1:], edges, edges[1:])]
    return _SlotLayout(order, slot, rank % width, slot_row, width, chunks)


def _padded(x: torch.Tensor, layout: _SlotLayout, slots: slice, edges: slice) -> torch.Tensor:
    """The rows of the sorted edges ``edges`` (of ``x`` ``[E, d]``, in edge order) in their slots
    ``[slots, w, d]``, zero padded."""
    out = x.new_zeros(slots.stop - slots.start, layout.width, x.shape[1])
    out[layout.slot[edges] - slots.start, layout.col[edges]] = x[layout.order[edges]]
    return out


def _scatter_unpadded(out: torch.Tensor, x: torch.Tensor, layout: _SlotLayout, slots: slice, edges: slice) -> None:
    """The inverse of :func:`_padded`: writes the edges' rows of ``x`` ``[slots, w, d]`` into ``out``
    ``[E, d]`` (in edge order)."""
    out[layout.order[edges]] = x[layout.slot[edges] - slots.start, layout.col[edges]]


class _GatheredBilinear(torch.autograd.Function):
    r""":math:`y_{eo} = \sum_{ab} x_{1, s_e a}\, x_{2,eb}\, T_{abo}` without gathering :math:`x_1`.

    :math:`x_1` lives on the :math:`N` source nodes and :math:`x_2` on the :math:`E` edges. The map is
    linear in :math:`x_1`, so each source node is contracted with :math:`T` once, giving the
    :math:`d_2 \times d_{out}` matrix :math:`P_s = x_{1,s} T`, and the edges of that node are
    multiplied by it in one matrix product (edges grouped by source in slots, :class:`_SlotLayout`).
    Work: :math:`\approx N d_1 d_2 d_{out} + E d_2 d_{out}` multiply-adds instead of
    :math:`E d_1 d_2 d_{out}`: for :math:`E / N = 10` and :math:`d_1 = 144`, about 8x less, all in
    matrix products. Only the inputs are saved; slots are padded and the :math:`P_s` formed one
    chunk at a time (recomputed in backward), so memory is :math:`O(E (d_1 + d_2 + d_{out}))` plus
    a bounded block. The backward is written with differentiable operations (double backward works).
    """

    @staticmethod
    def forward(ctx, x1: torch.Tensor, index: torch.Tensor, x2: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        d1, d2, d_out = T.shape
        layout = _slot_layout(index, x1.shape[0], d1, d2, d_out)
        ctx.save_for_backward(x1, x2, T, layout.order, layout.slot, layout.col, layout.slot_row)
        ctx.width, ctx.chunks = layout.width, layout.chunks  # plain ints and slices, reused in backward
        T2 = T.reshape(d1, d2 * d_out)
        out = x2.new_empty(x2.shape[0], d_out)
        for slots, edges in layout.chunks:
            P = (x1[layout.slot_row[slots]] @ T2).view(-1, d2, d_out)  # once per source node (slot)
            _scatter_unpadded(out, torch.bmm(_padded(x2, layout, slots, edges), P), layout, slots, edges)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x1, x2, T, *saved = ctx.saved_tensors
        layout = _SlotLayout(*saved, ctx.width, ctx.chunks)
        d1, d2, d_out = T.shape
        T2 = T.reshape(d1, d2 * d_out)
        grad_x2, grad_x1, grad_T = torch.empty_like(x2), torch.zeros_like(x1), torch.zeros_like(T2)
        for slots, edges in layout.chunks:
            rows = layout.slot_row[slots]
            P = (x1[rows] @ T2).view(-1, d2, d_out)  # recomputed
            X2, G = _padded(x2, layout, slots, edges), _padded(grad_out, layout, slots, edges)
            _scatter_unpadded(grad_x2, torch.bmm(G, P.transpose(1, 2)), layout, slots, edges)
            grad_P = torch.bmm(X2.transpose(1, 2), G).view(-1, d2 * d_out)
            grad_x1 = grad_x1.index_add(0, rows, grad_P @ T2.T)
            grad_T = torch.addmm(grad_T, x1[rows].T, grad_P)
        return grad_x1, None, grad_x2, grad_T.view(d1, d2, d_out)


class EquivariantTensorProduct(nn.Module):
    r"""Fully connected :math:`G`-equivariant bilinear map with shared weights.

    .. math::
        B(x_1, x_2)_{w} = \sum_{u, v, k} W^{(p)}_{u v k w}\, C^{(p)}_k(x_{1,u}, x_{2,v})

    summed over the paths :math:`p = (\text{irrep}_1, \text{irrep}_2, \text{irrep}_{out})`, where
    :math:`C^{(p)}_k` runs over ``group.bilinear_basis`` (the Clebsch-Gordan coefficient for
    :math:`O(3)`; several maps per path for smaller groups). For groups containing :math:`SO(3)`
    this is the function class of ``e3nn.o3.FullyConnectedTensorProduct`` (one weight per path and
    channel triple); every group has the same parameterisation and state-dict keys.

    It is evaluated through the dense tensor :math:`T` (:meth:`tensor`), assembled once per call
    from the weights and the cached bases. Given a row index (a convolution: :math:`x_1` on the
    nodes, :math:`x_2` on the edges), :math:`x_1` is contracted with :math:`T` once per node and the
    edges of each node are multiplied by the result (:class:`_GatheredBilinear`): all matrix
    products, about :math:`N d_1 d_2 d_{out} + E d_2 d_{out}` multiply-adds. For :math:`O(3)` this
    measured 2-3.5x faster than e3nn's sparse per-edge tensor product (``BENCHMARKS.md``).

    This is the last layer of every steerable kernel in the package: with :math:`x_1 = f_j`
    (the neighbour's features) and :math:`x_2 = h_{ij}` (the kernel network's last hidden
    activation), :math:`B(f_j, h_{ij}) = K(x_{ij}) f_j` without forming :math:`K`.
    :meth:`right` forms it.

    Initialisation: every output component has unit variance for unit-variance inputs (e3nn's
    ``component`` normalisation), with the weights stored at the scale of a ``torch.nn.Linear``
    (:func:`~pyg_implicit.nn.linear.fan_in_parameterisation`).

    Args:
        irreps_in1 (str or Irreps): Irreps of :math:`x_1`.
        irreps_in2 (str or Irreps): Irreps of :math:`x_2`.
        irreps_out (str or Irreps): Output irreps.
        group (str or Group): The symmetry group. (default: ``"o3"``)
        path_weights (str): ``"full"``: an independent weight :math:`W^{(p)}_{uvkw}` for every
            channel triple and basis map. ``"factorized"``: :math:`W^{(p)}_{uvkw} = U^{(p)}_{uvw}\, c^{(p)}_{vk}`,
            each channel :math:`v` of :math:`x_2` (a kernel feature) choosing its own combination of the
            path's basis maps while the channel mixing :math:`u \to w` is shared by them:
            :math:`\sum_p (uvw + vn_p)` weights instead of :math:`\sum_p uvwn_p`. The count then grows
            with the number of admissible paths only, not with the basis maps of each (up to 19 for
            SO(2) at :math:`l \le 2`): for ``16x0e+16x1o+16x2e`` with ``8x0e+8x1o+8x2e`` features,
            SO(2) 56k against 289k full, O(3) 23k. (default: ``"full"``)

    Shapes:
        - **input:** :math:`x_1: (*, \dim_1)`, :math:`x_2: (*, \dim_2)`
        - **output:** :math:`(*, \dim_{out})`; :meth:`right`: :math:`(*, \dim_1, \dim_{out})`
    """

    _version = 2  # 1: weights at e3nn's unit scale (converted on load)

    def __init__(
        self,
        irreps_in1: IrrepsLike,
        irreps_in2: IrrepsLike,
        irreps_out: IrrepsLike,
        group: Union[str, Group] = "o3",
        path_weights: str = "full",
    ) -> None:
        super().__init__()
        if path_weights not in ("full", "factorized"):
            raise ValueError(f"path_weights: expected 'full' or 'factorized', got {path_weights!r}")
        self.path_weights = path_weights
        self.irreps_in1 = as_irreps(irreps_in1, "irreps_in1")
        self.irreps_in2 = as_irreps(irreps_in2, "irreps_in2")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        self.group = get_group(group)
        self._dims = (self.irreps_in1.dim, self.irreps_in2.dim, self.irreps_out.dim)
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
            scale = math.sqrt(self.irreps_out[j].ir.dim)
            self.register_buffer(f"basis_{p}", (scale * basis).to(dtype), persistent=False)  # [n, c, a, b]
        self.weight_shapes = [
            (self.irreps_in1[i1].mul, self.irreps_in2[i2].mul, n, self.irreps_out[j].mul) for i1, i2, j, n in paths
        ]
        self._check_paths([j for _, _, j, _ in paths])
        if path_weights == "full":
            numels = [math.prod(s) for s in self.weight_shapes]
            self.basis_weight = None
        else:
            numels = [u * v * w for u, v, _, w in self.weight_shapes]  # U [u, v, w]
            self.basis_weight = nn.Parameter(torch.empty(sum(v * n for _, v, n, _ in self.weight_shapes)))  # c [v, k]
        self.weight = nn.Parameter(torch.empty(sum(numels)))
        fan_in_parameterisation(self, numels, [fan_in[j] for _, _, j, _ in paths])
        self.weight_numel = sum(p.numel() for p in self.parameters())
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
            self.weight.normal_().mul_(self.weight_init_std)  # factorized: U carries the fan-in, c is N(0, 1)
            if self.basis_weight is not None:
                self.basis_weight.normal_()

    @torch.no_grad()
    def scale_weights_(self, factor: float) -> None:
        """Multiply every weight by ``factor`` (the map is linear in its weights: outputs scale too).

        Through ``.data``: a forward pass that already used the weights can still be differentiated."""
        self.weight.data.mul_(factor)

    def _paths(self):
        """Per path: the input / output fields, the weights ``[u, v, k, w]`` and the basis ``[k, c, a, b]``."""
        offset, basis_offset = 0, 0
        for p, ((u, v, n, w), (f1, f2, f_out)) in enumerate(zip(self.weight_shapes, self._path_fields)):
            if self.basis_weight is None:
                weight = self.weight[offset : offset + u * v * n * w].view(u, v, n, w)
                offset += u * v * n * w
            else:
                mixing = self.weight[offset : offset + u * v * w].view(u, v, w)
                combination = self.basis_weight[basis_offset : basis_offset + v * n].view(v, n)
                weight = torch.einsum("uvw,vk->uvkw", mixing, combination)
                offset, basis_offset = offset + u * v * w, basis_offset + v * n
            yield f1, f2, f_out, weight, getattr(self, f"basis_{p}")

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

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        r""":math:`B(x_1, x_2)`; with ``index``, :math:`B(x_{1}[\text{index}], x_2)`.

        The second form is a convolution's message :math:`K(x_{ij}) f_j = B(f_j, h_{ij})` with
        :math:`x_1 = f` on the nodes and :math:`x_2 = h` on the edges (``index`` the source node of each
        edge): :math:`x_1` is then contracted once per node rather than once per edge
        (:class:`_GatheredBilinear`), which is what makes a subgroup's dense bilinear map cheap.
        """
        check_features(x1, self._dims[0], "x1", self.irreps_in1)
        check_features(x2, self._dims[1], "x2", self.irreps_in2)
        if index is not None:
            if index.shape != x2.shape[:1] or x1.dim() != 2 or x2.dim() != 2:
                raise ValueError(f"index: expected one row index of x1 per row of x2 {tuple(x2.shape[:1])}, got {tuple(index.shape)}")
            if x1.shape[0] < index.numel() and not torch.compiler.is_compiling():
                return _GatheredBilinear.apply(x1, index, x2, self.tensor())
            x1 = x1[index]
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
        d1, d2, d_out = self._dims
        return (x2 @ self.tensor().transpose(0, 1).reshape(d2, d1 * d_out)).view(*x2.shape[:-1], d1, d_out)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, "
            f"group={self.group.name}, weights={self.weight_numel}" + (", factorized)" if self.basis_weight is not None else ")")
        )
