r"""Batch normalisation of fields, per :math:`G`-invariant component and per :math:`G`-stable block."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from ..groups import Group, get_group
from ..irreps import IrrepsLike, as_irreps, check_features
from .invariants import InvariantSplit


class EquivariantBatchNorm(nn.Module):
    r"""Batch normalisation that is :math:`G`-equivariant and sees what :math:`G` separates.

    With :math:`a_k` the :math:`G`-invariant components and :math:`P_i x` the :math:`G`-stable blocks
    of the input (:class:`~pyg_implicit.nn.InvariantSplit`),

    .. math::
        a_k \mapsto \gamma_k \frac{a_k - \mu_k}{\sqrt{\sigma_k^2 + \epsilon}} + \beta_k, \qquad
        P_i x \mapsto \gamma_i \frac{P_i x}{\sqrt{\mathbb{E}\|P_i x\|^2 / d_i + \epsilon}}

    with batch statistics in training and running averages in evaluation, as ``torch.nn.BatchNorm1d``
    does. The running averages are cumulative over the first :math:`1/\text{momentum}` batches
    (the first batch sets them) and exponential afterwards; ``momentum=None`` keeps them cumulative.
    With ``use_batch_statistics=False`` they normalise in training too: the map is then a fixed
    rescaling for every sample of a step, which keeps each node's magnitude and adds no batch noise
    (batch statistics add noise of a few per cent to every feature, which caps the precision of a
    regression: measured on the N-body task). For :math:`O(3)` this is e3nn's ``BatchNorm``: ``0e`` centred and scaled, every
    other field divided by its root-mean-square norm. For a subgroup each invariant component and
    each stable block gets its own statistics: under :math:`SO(2)` the :math:`z` component of a
    vector is centred and scaled apart from its horizontal part (in the N-body task vertical
    velocities of RMS 6 sit beside horizontal ones of RMS 0.3). Centring only the invariant
    components, and scaling whole blocks, keeps the map equivariant.

    Args:
        irreps (str or Irreps): Irreps of the input and output.
        group (str or Group): The symmetry group. (default: ``"o3"``)
        eps (float): Added to the variances. (default: :obj:`1e-5`)
        momentum (float, optional): Update rate of the running statistics; :obj:`None` for a
            cumulative average. (default: :obj:`0.1`)
        affine (bool): Learn :math:`\gamma, \beta`. (default: :obj:`True`)
        use_batch_statistics (bool): Normalise with batch statistics in training. (default: :obj:`True`)
        center (bool): Subtract the mean of the invariant components. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(N, \dim)`
        - **output:** :math:`(N, \dim)`
    """

    def __init__(
        self,
        irreps: IrrepsLike,
        group: Union[str, Group] = "o3",
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        use_batch_statistics: bool = True,
        center: bool = True,
    ) -> None:
        super().__init__()
        self.irreps_in = self.irreps_out = as_irreps(irreps, "irreps")
        self.group = get_group(group)
        self.split = InvariantSplit(self.irreps_in, self.group)
        self.eps, self.momentum, self.use_batch_statistics, self.center = eps, momentum, use_batch_statistics, center
        n_inv, n_blocks = self.split.num_invariant, self.split.num_blocks
        self.register_buffer("running_mean", torch.zeros(n_inv))
        self.register_buffer("running_var", torch.ones(n_inv))
        self.register_buffer("running_block_mean_square", torch.ones(n_blocks))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        if affine:
            self.weight = nn.Parameter(torch.ones(n_inv))
            self.bias = nn.Parameter(torch.zeros(n_inv))
            self.block_weight = nn.Parameter(torch.ones(n_blocks))
        else:
            self.weight = self.bias = self.block_weight = None
        self._dim = self.irreps_in.dim

    def reset_parameters(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.running_block_mean_square.fill_(1.0)
        self.num_batches_tracked.zero_()
        if self.weight is not None:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)
            nn.init.ones_(self.block_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_features(x, self._dim, "x", self.irreps_in)
        a, z = self.split.split(x.reshape(-1, self._dim))
        if self.training and a.shape[0] > 0:
            mean = a.mean(0) if self.center else torch.zeros_like(a[0])
            var = (a - mean).pow(2).mean(0)
            block_ms = self.split.block_mean_square(z).mean(0)
            with torch.no_grad():
                self.num_batches_tracked += 1
                rate = self.num_batches_tracked.to(mean.dtype).reciprocal()  # a tensor: no host sync
                rate = rate if self.momentum is None else rate.clamp_min(self.momentum)
                for running, batch in ((self.running_mean, mean), (self.running_var, var), (self.running_block_mean_square, block_ms)):
                    running.lerp_(batch.detach().to(running.dtype), rate.to(running.dtype))
        if not (self.training and self.use_batch_statistics and a.shape[0] > 0):
            mean, var, block_ms = self.running_mean, self.running_var, self.running_block_mean_square
        a = (a - mean) * (var + self.eps).rsqrt()
        scale = (block_ms + self.eps).rsqrt()
        if self.weight is not None:
            a = a * self.weight + self.bias
            scale = scale * self.block_weight
        return self.split.merge(a, z * self.split.expand(scale)).reshape(x.shape)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.irreps_in}, group={self.group.name})"



def running_batch_norm(irreps: IrrepsLike, group: Union[str, Group], momentum: Optional[float] = 0.01) -> EquivariantBatchNorm:
    """The normalisation the blocks and models use: running statistics in training too (no batch noise)."""
    return EquivariantBatchNorm(irreps, group, momentum=momentum, use_batch_statistics=False)
