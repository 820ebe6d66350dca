r"""The N-body predictor: a backbone network predicts a displacement per particle."""
from __future__ import annotations

from torch import Tensor, nn

from ..checkpoint import saveable


@saveable
class NBodyPredictor(nn.Module):
    r"""Positions at the target frame: :math:`\hat x_i = x_i + f(x, v, l, A)_i`.

    ``backbone(x, pos, edge_index, edge_attr)`` returns one vector (``1x1o``) per particle; the
    model is equivariant to whatever group the backbone is (translations included).

    Args:
        backbone (Module): The network :math:`f`.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, data) -> Tensor:
        return data.pos + self.backbone(data.x, data.pos, data.edge_index, data.edge_attr)
