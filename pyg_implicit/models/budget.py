"""Parameter-budget matching: compare models of different design at (nearly) equal size."""
from __future__ import annotations

from typing import Callable, Tuple

from torch import nn

__all__ = ["count_parameters", "match_budget"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def match_budget(build: Callable[[int], nn.Module], budget: int, max_width: int = 1024) -> Tuple[nn.Module, int]:
    """The ``build(width)`` whose parameter count is closest to ``budget`` (counts grow with width).

    Doubles the width until the budget is reached, then bisects, so no model much larger than
    the answer is ever built.
    """
    if budget < 1:
        raise ValueError(f"budget: expected a positive parameter count, got {budget!r}")
    high = 1
    while count_parameters(build(high)) < budget and high < max_width:
        high *= 2
    low = high // 2 + 1 if high > 1 else 1  # first width that may reach the budget
    while low < high:  # smallest width with count >= budget
        mid = (low + high) // 2
        if count_parameters(build(mid)) < budget:
            low = mid + 1
        else:
            high = mid
    candidates = [(abs(count_parameters(m) - budget), w, m) for w in {max(1, low - 1), low} for m in [build(w)]]
    _, width, model = min(candidates, key=lambda c: (c[0], c[1]))
    return model, width
