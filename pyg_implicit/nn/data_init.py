"""Data-dependent initialisation: a flag for modules whose initial values the first training batch sets, and the rescaling they use."""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DataDependentInit", "match_second_moment"]


class DataDependentInit(nn.Module):
    """Mixin for modules that set initial values from their first forward pass in training mode.

    ``init_pending`` is a persistent buffer (a loaded model keeps the values it was saved with) and
    ``_init_pending`` its Python mirror, which ``forward`` reads without a device sync or a graph
    break.
    """

    def _set_init_pending(self, pending: bool) -> None:
        if "init_pending" not in self._buffers:
            self.register_buffer("init_pending", torch.tensor(pending))
        self.init_pending.fill_(pending)
        self._init_pending = pending

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if "init_pending" in self._buffers:  # a module may have nothing to set from the data (HarmonicEmbedding's batch norm)
            self._init_pending = bool(self.init_pending)


@torch.no_grad()
def match_second_moment(layer: nn.Module, out: Tensor, target: Tensor) -> float:
    """Scale ``layer``'s weights so that its output ``out`` gets the second moment of ``target``;
    returns the factor (applied to ``out`` by the caller, for this first batch)."""
    mean_square = float(out.pow(2).mean())
    factor = (float(target.pow(2).mean()) / mean_square) ** 0.5 if mean_square > 0 else 1.0
    layer.scale_weights_(factor)
    return factor
