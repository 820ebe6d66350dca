import pytest
import torch
from torch import nn

from pyg_implicit.models.gcnn import GCNN
from pyg_implicit.nn.equivariance_loss import EquivarianceLoss, image_rotations, irreps_action, linear_warmup
from pyg_implicit.nn.group_conv import GroupConv2d
from pyg_implicit.testing import equivariance_error


def test_penalty_is_zero_for_an_equivariant_network_and_positive_for_a_plain_one(float64):
    sample, action = image_rotations("c4")
    x = torch.randn(4, 1, 28, 28)
    p4 = GCNN("p4").eval()
    _, penalty = EquivarianceLoss(p4, action, {"": lambda y, g: y}, sample, num_samples=3)(x)  # invariant logits
    assert penalty < 1e-20
    z2 = GCNN("z2").eval()
    out, penalty = EquivarianceLoss(z2, action, {"": lambda y, g: y, "convs.3": action}, sample)(x)
    assert penalty > 1e-3 and torch.equal(out, z2(x))  # the output is that of the untransformed input


def test_regular_channel_action_matches_group_feature_maps(float64):
    """A lifting p4 conv, read as channels [C, 4], is equivariant under the regular action: zero penalty."""
    lift = GroupConv2d(1, 3, 3, "p4", lifting=True, padding=1)
    model = nn.Sequential(lift, nn.Flatten(1, 2))
    sample, image_action = image_rotations("c4")
    _, regular = image_rotations("c4", regular_channels=True)
    _, penalty = EquivarianceLoss(model, image_action, {"": regular}, sample, num_samples=3)(torch.randn(2, 1, 9, 9))
    assert penalty < 1e-20


def test_schedule_and_weight():
    model = nn.Conv2d(1, 2, 3)
    sample, action = image_rotations("c4")
    loss = EquivarianceLoss(model, action, {"": action}, sample, weight=2.0, schedule=linear_warmup(4))
    x = torch.randn(1, 1, 7, 7)
    first = loss(x)[1]
    assert first == 0 and loss.step == 1  # warm-up starts at zero weight
    loss.step = 10
    assert loss(x)[1] > 0
    with pytest.raises(ValueError, match="layer_actions"):
        EquivarianceLoss(model, action, {"nope": action}, sample)


def test_training_a_plain_mlp_to_equivariance():
    """The paper's alternative to a G-MLP (sec. 3.3): a plain MLP on vectors trained with the penalty alone."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 3))
    loss = EquivarianceLoss(mlp, irreps_action("2x1o"), {"": irreps_action("1x1o")}, "so3", num_samples=4)
    x = torch.randn(256, 6)
    R = torch.linalg.qr(torch.randn(3, 3))[0]
    R = R * torch.det(R)  # a rotation
    relative = lambda x: (equivariance_error(mlp, R[None], (x,), ["2x1o"], "1x1o") / mlp(x).abs().max()).item()  # noqa: E731
    before = relative(x)
    optimizer = torch.optim.Adam(mlp.parameters(), 3e-3)
    for _ in range(300):
        _, penalty = loss(x)
        optimizer.zero_grad()
        penalty.backward()
        optimizer.step()
    after = relative(torch.randn(256, 6))  # relative, so a collapsed (zero) network would not pass
    assert after < 0.1 * before
