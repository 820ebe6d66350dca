"""A flag for data-dependent initialisation: some initial values are set by the first training batch."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["DataDependentInit"]


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
        self._init_pending = bool(self.init_pending)
