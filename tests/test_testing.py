import pytest
import torch

from pyg_implicit.groups import rotation_z
from pyg_implicit.testing import assert_equivariant, equivariance_error


class NormOfVector(torch.nn.Module):
    def forward(self, v):
        return v.norm(dim=-1, keepdim=True)


class TakeX(torch.nn.Module):
    """Not rotation equivariant: returns the x component as a scalar."""

    def forward(self, v):
        return v[:, :1]


def test_assert_equivariant_passes_and_fails(float64):
    v = torch.randn(10, 3)
    assert assert_equivariant(NormOfVector(), "o3", (v,), ("1x1o",), "1x0e").max() < 1e-12
    with pytest.raises(AssertionError, match="TakeX is not so2-equivariant"):
        assert_equivariant(TakeX(), "so2", (v,), ("1x1o",), "1x0e")
    # x is invariant under the mirror z -> -z
    assert_equivariant(TakeX(), "mirror", (v,), ("1x1o",), "1x0e")


def test_positions_are_translated_and_outputs_may_be_tuples(float64):
    pos = torch.randn(6, 3)

    def centre_and_spread(p):
        return p.mean(0, keepdim=True), (p - p.mean(0)).norm(dim=1)

    errors = equivariance_error(centre_and_spread, torch.stack([rotation_z(0.3)]), (pos,), ("cartesian_points",),
                                ("cartesian_points", None))  # fmt: skip
    assert errors.max() < 1e-12
