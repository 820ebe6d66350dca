r"""Equivariance through a loss term (IEN, "Implicit Equivariance in Convolutional Networks").

Instead of constraining weights, penalise how far chosen layers of any ``nn.Module`` are from
equivariance on the training data: for random group elements :math:`g`,

.. math::
    \mathcal{L}_{eq} = \lambda(t) \frac{1}{|S|} \sum_{l \in S}
    \frac{\lVert \Phi_l(\rho_{in}(g)\, x) - \rho_l(g)\, \Phi_l(x) \rVert^2}{\lVert \Phi_l(x) - \overline{\Phi_l(x)} \rVert^2}

where :math:`\Phi_l` is the network up to layer :math:`l` (captured with forward hooks, so the
network is unchanged), :math:`\rho_{in}` acts on the input and :math:`\rho_l` on layer
:math:`l`'s output. Dividing by the spread of the features around their mean makes the term
scale-free without a shortcut: against :math:`\lVert \Phi_l(x) \rVert^2` a network can shrink
the ratio by adding a large constant to its features (an offset that batch norm removes again),
which we saw wreck the evaluation-mode accuracy. :math:`\lambda(t)` is a weight times a schedule
of the training step. The same mechanism trains a plain MLP to equivariance
(paper sec. 3.3): use :func:`irreps_action` for inputs and outputs.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..groups import Group, get_group, irreps_D
from ..irreps import IrrepsLike, as_irreps
from .image_action import grid_group, transform_group_map, transform_image

__all__ = ["EquivarianceLoss", "irreps_action", "image_rotations", "linear_warmup"]

Action = Callable[[Tensor, Any], Tensor]


def irreps_action(irreps: IrrepsLike) -> Action:
    r"""``(x, R) -> x D(R)^T``: the action of an O(3) matrix on features of ``irreps`` (last axis)."""
    irreps = as_irreps(irreps, "irreps")
    return lambda x, R: x @ irreps_D(irreps, R.to(x)).T


def image_rotations(group: Union[str, Group] = "c4", regular_channels: bool = False) -> Tuple[Callable[[int], list], Action]:
    r"""Elements of a grid group (``"c4"``, ``"d4"``, see :mod:`~pyg_implicit.nn.image_action`) and their action on ``[B, C, H, W]`` maps.

    With ``regular_channels`` the channels are read as ``[C / |H|, |H|]`` orientation fields that
    the element also permutes (the p4 / p4m regular representation), otherwise each channel is an
    invariant field that only moves with the pixels.

    Returns:
        ``(sample, action)``: ``sample(n)`` draws ``n`` elements (their indices in
        ``group.coset_representatives``, never the identity), ``action(x, g)`` applies one.
    """
    group = grid_group(group)
    order = int(group.order)

    def sample(n: int) -> list:
        return torch.randint(1, order, (n,)).tolist()  # the identity would add nothing

    def action(x: Tensor, g: int) -> Tensor:
        if not regular_channels:
            return transform_image(x, group.coset_representatives[g])
        b, c, h, w = x.shape
        return transform_group_map(x.view(b, c // order, order, h, w), g, group).reshape(b, c, h, w)

    return sample, action


def linear_warmup(steps: int) -> Callable[[int], float]:
    """Schedule ``t -> min(1, t / steps)``."""
    return lambda t: min(1.0, t / max(steps, 1))


class EquivarianceLoss(nn.Module):
    r"""IEN penalty on the outputs of chosen layers of ``model`` (see the module docstring).

    Args:
        model (nn.Module): Any network; it is called as ``model(x)``.
        input_action (callable): :math:`(x, g) \mapsto \rho_{in}(g) x`.
        layer_actions (dict): Submodule name (as in ``model.named_modules()``; ``""`` is the
            model's output) to its output action :math:`(y, g) \mapsto \rho_l(g) y`.
        sample (callable or Group or str): ``sample(n)`` returning ``n`` group elements, or a group
            of :mod:`pyg_implicit.groups` (Haar-random 3x3 matrices).
        weight (float): :math:`\lambda`. (default: :obj:`1.0`)
        schedule (callable, optional): Step -> multiplier of the weight (e.g. :func:`linear_warmup`).
        num_samples (int): Group elements per call, averaged. (default: :obj:`1`)

    Returns (forward):
        ``(output, penalty)``: ``model(x)`` on the untransformed input (use it for the task loss)
        and the weighted penalty. In training mode each call advances the schedule by one step.
    """

    def __init__(
        self,
        model: nn.Module,
        input_action: Action,
        layer_actions: Dict[str, Action],
        sample: Any,
        weight: float = 1.0,
        schedule: Optional[Callable[[int], float]] = None,
        num_samples: int = 1,
    ) -> None:
        super().__init__()
        modules = dict(model.named_modules())
        missing = [name for name in layer_actions if name not in modules]
        if missing or not layer_actions:
            raise ValueError(f"layer_actions: expected names among model.named_modules() ({list(modules)[:8]}...), got {missing or 'none'}")
        if isinstance(sample, (str, Group)):
            group = get_group(sample)
            sample = lambda n: list(group.sample(n))  # noqa: E731
        self.model, self.input_action, self.layer_actions, self.sample = model, input_action, dict(layer_actions), sample
        self.weight, self.schedule, self.num_samples = weight, schedule, num_samples
        self.step = 0
        self._modules_by_name = modules

    def _run(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        captured: Dict[str, Tensor] = {}
        hooks = [self._modules_by_name[name].register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
                 for name in self.layer_actions]  # fmt: skip
        try:
            out = self.model(x)
        finally:
            for hook in hooks:
                hook.remove()
        return out, captured

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        out, reference = self._run(x)
        penalty = out.new_zeros(())
        for g in self.sample(self.num_samples):
            _, moved = self._run(self.input_action(x, g))
            for name, act in self.layer_actions.items():
                expected = act(reference[name], g)
                spread = (reference[name] - reference[name].mean()).pow(2).mean()  # centred: a constant offset cannot hide errors
                penalty = penalty + (moved[name] - expected).pow(2).mean() / spread.clamp_min(1e-12)
        penalty = penalty / (self.num_samples * len(self.layer_actions))
        scale = self.weight * (self.schedule(self.step) if self.schedule is not None else 1.0)
        if self.training:
            self.step += 1
        return out, scale * penalty
